"""`cmtp export RUN_DIR --format flagembedding --out FILE_OR_DIR`: a labeled run as FlagEmbedding fine-tuning data.

FlagEmbedding reads JSON lines `{"query": str, "pos": [str], "neg": [str]}`, with an optional `"prompt": str`
(the query instruction), and draws each batch from one file, so each task goes to its own `<task>.jsonl`.
The instruction is stored apart from the query in the run and applied here only: as `prompt` (the default),
prefixed to the query (`--instruction prefix`, for trainers that take no prompt), or not at all. FlagEmbedding
samples a batch's negatives from `neg` and fails on an empty list, so records without negatives are left out
unless asked for, and counted.
"""
from __future__ import annotations

import glob
import json
import os
from collections import Counter
from typing import IO, Iterator

import pyarrow.parquet as pq

FORMATS = ("flagembedding",)
INSTRUCTION_MODES = ("prompt", "prefix", "none")


class ExportError(ValueError):
    """A run directory or output that cannot be exported; the message says what to change."""


def _records(run_dir: str) -> Iterator[dict]:
    shards = sorted(glob.glob(os.path.join(run_dir, "data", "*.parquet")))
    if not shards:
        raise ExportError(f"{run_dir}: no data/*.parquet; is it the --out of a `cmtp run`?")
    for shard in shards:
        table = pq.ParquetFile(shard)
        if "pos" not in table.schema_arrow.names:
            raise ExportError(f"{shard}: not a labeled run (no `pos` column); export reads `pipeline: labeled` runs")
        for batch in table.iter_batches(batch_size=4096, columns=["id", "query", "pos", "neg", "instruction", "task"]):
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


def export_flagembedding(run_dir: str, out: str, instruction: str = "prompt",
                         keep_without_neg: bool = False) -> dict:
    """Write one JSONL per task (records in id order) to `out`, a directory, or a `.jsonl` file when the run
    has one task; returns {task: {"written": n, "without_neg": m, "path": p}}."""
    by_task: dict[str, list[tuple[str, dict]]] = {}
    skipped: Counter = Counter()
    for record in _records(run_dir):
        if not record["neg"] and not keep_without_neg:
            skipped[record["task"]] += 1
            continue
        by_task.setdefault(record["task"], []).append((record["id"], flagembedding_row(record, instruction)))
    tasks = sorted(set(by_task) | set(skipped))
    if out.endswith(".jsonl"):
        if len(tasks) > 1:
            raise ExportError(f"--out {out}: the run has {len(tasks)} tasks ({', '.join(tasks)}), one file each; "
                              "give a directory")
        paths = {task: out for task in tasks}
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    else:
        os.makedirs(out, exist_ok=True)
        paths = {task: os.path.join(out, f"{task}.jsonl") for task in tasks}
    summary = {}
    for task in tasks:
        rows = sorted(by_task.get(task, []), key=lambda item: item[0])
        with open(paths[task], "w", encoding="utf-8") as handle:
            _write_lines(handle, (row for _, row in rows))
        summary[task] = {"written": len(rows), "without_neg": skipped[task], "path": paths[task]}
    return summary


def _write_lines(handle: IO[str], rows) -> None:
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
