"""Writing records as bounded Parquet shards (the kept rows and the rejects of a run)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems


class WriteParquetShards(beam.PTransform):
    """Records (NamedTuples) to `DIR/part-SSSSS-of-NNNNN.parquet`, zstd-compressed, under the given schema.

    Shards are bounded, not counted. Beam's Parquet writer turns each bundle's rows into Arrow tables of
    `row_group_bytes` (a row group each) and its file sink writes a bundle to one shard, however large,
    unless the sink has a capacity: here a shard closes after `shard_bytes // row_group_bytes` row groups
    and the next opens (FileBasedSinkWriter.at_capacity). So a large bundle never becomes one huge file,
    and no step groups every row to fix a shard count. `num_shards` > 0 asks for that fixed count instead
    (one grouping of all rows by shard).
    """

    def __init__(self, directory: str, schema: pa.Schema, shard_bytes: int = 512 << 20,
                 row_group_bytes: int = 64 << 20, num_shards: int = 0):
        super().__init__()
        self._prefix = FileSystems.join(directory, "part")
        self._schema = schema
        self._row_groups_per_shard = max(1, shard_bytes // row_group_bytes)
        self._row_group_bytes, self._num_shards = row_group_bytes, num_shards

    def expand(self, records):
        write = beam.io.WriteToParquet(
            self._prefix,
            self._schema,
            row_group_buffer_size=self._row_group_bytes,
            codec="zstd",
            file_name_suffix=".parquet",
            num_shards=self._num_shards,
            shard_name_template="-SSSSS-of-NNNNN",
        )
        if not self._num_shards:  # the sink honours a capacity but WriteToParquet does not expose it
            write._sink.max_records_per_shard = self._row_groups_per_shard  # records of the sink: row groups
        return records | "AsDict" >> beam.Map(lambda record: record._asdict()) | "Write" >> write
