"""The end every pipeline shares: kept rows and rejects written as sharded Parquet, read back and counted, and
the report that checks the ledger against them."""
from __future__ import annotations

from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from cmtp.pipelines.config import LoadedConfig
from cmtp.schemas import REJECT_SCHEMA
from cmtp.transforms.parquet_shards import WriteParquetShards
from cmtp.transforms.progress import Progress
from cmtp.transforms.report import Ledger, WriteReport
from cmtp.transforms.written_rows import CountWrittenRows


def write_outputs(loaded: LoadedConfig, out_dir: str, schema: pa.Schema, streams: dict[str, Any],
                  header: dict[str, Any], ledger: Ledger, local: bool) -> None:
    """Write `streams["kept"]` (as `schema`) and `streams["rejects"]` under `out_dir`, and `report.json` from every
    stream (`stats` a list of count collections; `records`, `extracted`: see WriteReport)."""
    kept, rejects = streams["kept"], streams["rejects"]
    what = ledger.kept_rows.split("_")[0]  # pairs, records
    if local:
        kept = kept | "ProgressKept" >> Progress(f"{what} kept")
    output = loaded.config.output.write_args()
    written = kept | f"Write{what.title()}" >> WriteParquetShards(FileSystems.join(out_dir, "data"), schema, **output)
    written_rejects = rejects | "WriteRejects" >> WriteParquetShards(FileSystems.join(out_dir, "rejects"),
                                                                    REJECT_SCHEMA, **output)
    stats = [*streams["stats"], written | "CountWritten" >> CountWrittenRows("rows_written"),
             written_rejects | "CountWrittenRejects" >> CountWrittenRows("reject_rows_written")]
    counted = {**streams, "stats": stats | "AllStats" >> beam.Flatten(), "kept": kept}
    counted | "Report" >> WriteReport(FileSystems.join(out_dir, "report.json"), header, ledger)
