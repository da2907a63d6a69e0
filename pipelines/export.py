"""`cmtp export RUN_DIR --format flagembedding --out FILE_OR_DIR`: a labeled run as FlagEmbedding fine-tuning data.

FlagEmbedding reads JSON lines `{"query": str, "pos": [str], "neg": [str]}`, with an optional `"prompt": str`
(the query instruction), and draws each batch from one file, so each task goes to its own `<task>.jsonl`.
The instruction is stored apart from the query in the run and applied here only: as `prompt` (the default),
prefixed to the query (`--instruction prefix`, for trainers that take no prompt), or not at all. FlagEmbedding
samples a batch's negatives from `neg` and fails on an empty list, so records without negatives are left out
unless asked for, and counted.

An existing output file is never replaced unless `overwrite` is set (`--overwrite`), as for `cmtp run`; a shard
that is corrupt or not of a labeled run is refused in one line naming it, before anything is written. Each
file is written beside its final name and renamed into place, so a failed export leaves no half file.
"""
from __future__ import annotations

import glob
import json
import os
from collections import Counter
from typing import IO, Iterator

import pyarrow.parquet as pq

from cmtp.pipelines.inspect import check_columns, reading

FORMATS = ("flagembedding",)
INSTRUCTION_MODES = ("prompt", "prefix", "none")
COLUMNS = ["id", "query", "pos", "neg", "instruction", "task"]


class ExportError(ValueError):
    """A run directory or output that cannot be exported; the message says what to change."""


def _records(run_dir: str) -> Iterator[dict]:
    shards = sorted(glob.glob(os.path.join(run_dir, "data", "*.parquet")))
    if not shards:
        raise ExportError(f"{run_dir}: no data/*.parquet; is it the --out of a `cmtp run`?")
    for shard in shards:
        with reading(shard, ExportError):
            names = pq.ParquetFile(shard).schema_arrow.names
        if "pos" not in names:
            raise ExportError(f"{shard}: not a labeled run (no `pos` column); export reads `pipeline: labeled` runs")
    check_columns(shards, COLUMNS, ExportError)
    for shard in shards:
        with reading(shard, ExportError):
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=4096, columns=COLUMNS):
                yield from batch.to_pylist()


def flagembedding_row(record: dict, instruction: str = "prompt") -> dict:
    """One FlagEmbedding training example from a labeled record."""
    query, prompt = record["query"], record["instruction"]
    if prompt and instruction == "prefix":
        query = prompt + query
    row = {"query": query, "pos": list(record["pos"]), "neg": list(record["neg"])}
    if prompt and instruction == "prompt":
        row["prompt"] = prompt
    return row


def _targets(out: str, tasks: list[str], overwrite: bool) -> dict[str, str]:
    """Each task's output file under `out` (a directory, or one `.jsonl` for a one-task run); ExportError for an
    existing file unless `overwrite`, or an `out` of the wrong kind. Creates the folder."""
    if out.endswith(".jsonl"):
        if len(tasks) > 1:
            raise ExportError(f"--out {out}: the run has {len(tasks)} tasks ({', '.join(tasks)}), one file each; "
                              "give a directory")
        paths, folder = {task: out for task in tasks}, os.path.dirname(os.path.abspath(out))
    else:
        if os.path.exists(out) and not os.path.isdir(out):
            raise ExportError(f"--out {out}: is a file; give a directory, or a .jsonl for a one-task run")
        paths, folder = {task: os.path.join(out, f"{task}.jsonl") for task in tasks}, out
    for path in paths.values():
        if os.path.isdir(path):
            raise ExportError(f"--out {path}: is a folder; give a file name")
        if os.path.exists(path) and not overwrite:
            raise ExportError(f"--out {path}: already exists; pass --overwrite to replace it")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ExportError(f"--out {folder}: cannot create the folder: {error.strerror or error}") from None
    return paths


def _write(path: str, rows: Iterator[dict]) -> None:
    """Write rows as JSON lines beside `path`, then rename into place: never a half file under the final name."""
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            _write_lines(handle, rows)
        os.replace(partial, path)
    except OSError as error:
        if os.path.exists(partial):
            os.remove(partial)
        raise ExportError(f"--out {path}: cannot write it: {error.strerror or error}") from None


def export_flagembedding(run_dir: str, out: str, instruction: str = "prompt",
                         keep_without_neg: bool = False, overwrite: bool = False) -> dict:
    """Write one JSONL per task (records in id order) to `out`, a directory, or a `.jsonl` file when the run
    has one task, refusing to replace an existing file unless `overwrite`; returns
    {task: {"written": n, "without_neg": m, "path": p}}."""
    by_task: dict[str, list[tuple[str, dict]]] = {}
    skipped: Counter = Counter()
    for record in _records(run_dir):
        if not record["neg"] and not keep_without_neg:
            skipped[record["task"]] += 1
            continue
        by_task.setdefault(record["task"], []).append((record["id"], flagembedding_row(record, instruction)))
    tasks = sorted(set(by_task) | set(skipped))
    paths = _targets(out, tasks, overwrite)
    summary = {}
    for task in tasks:
        rows = sorted(by_task.get(task, []), key=lambda item: item[0])
        _write(paths[task], (row for _, row in rows))
        summary[task] = {"written": len(rows), "without_neg": skipped[task], "path": paths[task]}
    return summary


def _write_lines(handle: IO[str], rows) -> None:
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
