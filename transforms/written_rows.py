"""Rows really written: each finished shard's row count read back from its Parquet footer, summed into a run counter
for the report to check against the rows the ledger says were kept."""
from __future__ import annotations

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def parquet_rows(path: str) -> int:
    """The row count in the file's footer; opened through Beam's filesystems, so gs:// and s3:// work too."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return pq.ParquetFile(handle).metadata.num_rows


class CountWrittenRows(beam.PTransform):
    """The file names a Parquet write emits once its shards are in place -> ((counter, "", "", ""), total rows):
    a run counter of the report, 0 when nothing was written."""

    def __init__(self, counter: str):
        super().__init__()
        self._counter = counter

    def expand(self, file_names):
        counter = self._counter
        return (
            file_names
            | "Rows" >> beam.Map(parquet_rows)
            | "Total" >> beam.CombineGlobally(sum)
            | "AsStat" >> beam.Map(lambda n: ((counter, "", "", ""), n))
        )
