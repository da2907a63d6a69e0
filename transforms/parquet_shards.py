"""Writing records as bounded Parquet shards (the kept rows and the rejects of a run)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from cmtp.transforms.shards import at_bundle_end


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
        write = beam.io.WriteToParquetBatched(
            self._prefix,
            self._schema,
            codec="zstd",
            file_name_suffix=".parquet",
            num_shards=self._num_shards,
            shard_name_template="-SSSSS-of-NNNNN",
        )
        if not self._num_shards:  # the sink honours a capacity but WriteToParquet does not expose it
            write._sink.max_records_per_shard = self._row_groups_per_shard  # records of the sink: row groups
        return records | "RowGroups" >> beam.ParDo(_RowGroups(self._schema, self._row_group_bytes)) | "Write" >> write


def _text_size(record) -> int:
    """The characters of a record's texts and lists of texts: what its row weighs in a row group, roughly."""
    size = 0
    for value in record:
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, (list, tuple)):
            size += sum(len(item) for item in value if isinstance(item, str))
    return size


class _RowGroups(beam.DoFn):
    """Records -> Arrow tables of about `row_group_bytes` of text each (a row group each), built a column at a time
    from the bundle's records: Beam's own WriteToParquet turns every record into a dict first and appends it a
    value at a time, which cost more than the rest of the write."""

    def __init__(self, schema: pa.Schema, row_group_bytes: int):
        self._schema, self._row_group_bytes = schema, row_group_bytes

    def start_bundle(self):
        self._rows, self._bytes = [], 0

    def process(self, record):
        self._rows.append(record)
        self._bytes += _text_size(record)
        if self._bytes >= self._row_group_bytes:
            yield self._table()

    def finish_bundle(self):
        if self._rows:
            yield at_bundle_end(self._table())

    def _table(self) -> pa.Table:
        columns = zip(*self._rows)
        self._rows, self._bytes = [], 0
        return pa.Table.from_arrays([pa.array(column, type=field.type) for column, field in zip(columns, self._schema)],
                                    schema=self._schema)
