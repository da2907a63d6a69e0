"""`cmtp inspect DIR`: what a run kept, what it dropped and why, read from its Parquet shards and report.json.

Reading is columnar and streamed: counts come from Parquet metadata and the one or two columns they need,
samples from a seeded reservoir over record batches, so a run of any size is inspected in bounded memory.
Works on unlabeled runs (pairs) and labeled runs (records with `pos`/`neg` lists).
"""
from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import pyarrow.parquet as pq


class InspectError(ValueError):
    """A directory that is not a run; the message says what is missing."""


@dataclass(frozen=True)
class Selection:
    """Which rows to sample: every field that is set must match."""

    source: Optional[str] = None
    kind: Optional[str] = None  # pair kind (unlabeled) or task (labeled)
    stage: Optional[str] = None  # rejects only
    reason: Optional[str] = None  # rejects only
    min_score: Optional[float] = None
    max_score: Optional[float] = None
    grep: Optional[str] = None  # a regular expression over the row's texts
    samples: int = 5
    seed: int = 1


def _shards(run_dir: str, sub: str) -> list[str]:
    folder = os.path.join(run_dir, sub)
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.endswith(".parquet")) if os.path.isdir(folder) else []


def _texts(row: dict) -> list[str]:
    texts = [row.get(key) for key in ("query", "passage", "text")]
    texts += list(row.get("pos") or []) + list(row.get("neg") or [])
    return [t for t in texts if isinstance(t, str)]


def _matches(row: dict, selection: Selection, pattern: Optional[re.Pattern], labeled: bool) -> bool:
    kind = row.get("task") if labeled and "task" in row else row.get("kind")
    if selection.source and row.get("source") != selection.source:
        return False
    if selection.kind and kind != selection.kind:
        return False
    if selection.stage and row.get("stage") != selection.stage:
        return False
    if selection.reason and row.get("reason") != selection.reason:
        return False
    score = row.get("score")
    if selection.min_score is not None and (score is None or score < selection.min_score):
        return False
    if selection.max_score is not None and (score is None or score > selection.max_score):
        return False
    return not pattern or any(pattern.search(text) for text in _texts(row))


def _rows(shards: list[str]) -> Iterator[dict]:
    for shard in shards:
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=4096):
            yield from batch.to_pylist()


def _reservoir(rows: Iterator[dict], n: int, rng: random.Random) -> list[dict]:
    """n rows drawn uniformly from the stream (Algorithm R), in stream order; the same stream and seed, the
    same rows."""
    chosen: list[tuple[int, dict]] = []
    for i, row in enumerate(rows):
        if len(chosen) < n:
            chosen.append((i, row))
        else:
            j = rng.randint(0, i)
            if j < n:
                chosen[j] = (i, row)
    return [row for _, row in sorted(chosen, key=lambda item: item[0])]


def _count(shards: list[str], columns: list[str]) -> Counter:
    counts: Counter = Counter()
    for shard in shards:
        table = pq.read_table(shard, columns=columns)
        if table.num_rows:
            grouped = table.group_by(columns).aggregate([([], "count_all")])
            for row in grouped.to_pylist():
                counts[tuple(row[c] for c in columns)] += row["count_all"]
    return counts


def _shard_summary(shards: list[str]) -> dict:
    return {"shards": len(shards), "rows": sum(pq.ParquetFile(s).metadata.num_rows for s in shards),
            "bytes": sum(os.path.getsize(s) for s in shards)}


def funnel(report: dict) -> dict[str, list[tuple[str, int]]]:
    """Per source (and "total"): the row count entering the run, then after each stage that dropped rows."""
    labeled = report.get("pipeline") == "labeled"
    out = {}
    rows = {**report.get("sources", {}), "total": {**report.get("totals", {}), "dropped": report.get("dropped", {})}}
    for source, row in rows.items():
        if labeled:
            steps = [("rows read", row["records_read"]), ("judgments extracted", row["judgments_extracted"])]
            left = row["judgments_extracted"]
            stages = ("resolve", "filter", "dedup", "assemble")
        else:
            steps = [("records read", row["records_read"]), ("pairs extracted", row["pairs_extracted"])]
            left = row["pairs_extracted"]
            stages = ("filter", "dedup", "semantic")
        for stage in stages:
            dropped = sum(row.get("dropped", {}).get(stage, {}).values())
            if dropped:
                left -= dropped
                steps.append((f"after {stage}", left))
        steps.append(("kept", row["judgments_kept"] if labeled else row["pairs_kept"]))
        out[source] = steps
    return out


def inspect_run(run_dir: str, selection: Selection = Selection()) -> dict[str, Any]:
    """The summary, funnel, histograms and samples of a run directory, as one dict."""
    data, rejects = _shards(run_dir, "data"), _shards(run_dir, "rejects")
    report_path = os.path.join(run_dir, "report.json")
    if not data and not rejects and not os.path.isfile(report_path):
        raise InspectError(f"{run_dir}: no data/, rejects/ or report.json; is it the --out of a `cmtp run`?")
    report = json.load(open(report_path, encoding="utf-8")) if os.path.isfile(report_path) else {}
    labeled = bool(data) and "pos" in pq.ParquetFile(data[0]).schema_arrow.names
    kind_column = "task" if labeled else "kind"
    kept_by = _count(data, ["source", kind_column]) if data else Counter()
    dropped_by = _count(rejects, ["source", "stage", "reason"]) if rejects else Counter()
    pattern = re.compile(selection.grep) if selection.grep else None
    rng = random.Random(selection.seed)
    kept_rows = (row for row in _rows(data) if _matches(row, selection, pattern, labeled))
    kept_sample = _reservoir(kept_rows, selection.samples, rng) if not (selection.stage or selection.reason) else []
    reject_samples: dict[str, list[dict]] = {}
    reasons = sorted({(stage, reason) for (_, stage, reason) in dropped_by})
    for stage, reason in reasons:
        if (selection.stage and stage != selection.stage) or (selection.reason and reason != selection.reason):
            continue
        rows = (row for row in _rows(rejects) if row["stage"] == stage and row["reason"] == reason
                and _matches(row, selection, pattern, labeled))
        picked = _reservoir(rows, selection.samples, random.Random(f"{selection.seed}:{stage}:{reason}"))
        if picked:
            reject_samples[f"{stage}/{reason}"] = picked
    histograms = {source: row.get("mined_score_histogram" if labeled else "score_histogram", {})
                  for source, row in report.get("sources", {}).items()}
    return {
        "run": os.path.abspath(run_dir),
        "pipeline": report.get("pipeline", "labeled" if labeled else "unlabeled"),
        "balanced": report.get("balanced"),
        "data": _shard_summary(data),
        "rejects": _shard_summary(rejects),
        "kept_by_source_and_" + kind_column: {f"{s}/{k}": n for (s, k), n in sorted(kept_by.items())},
        "dropped_by_source_stage_reason": {f"{s}/{st}/{r}": n for (s, st, r), n in sorted(dropped_by.items())},
        "funnel": funnel(report) if report.get("sources") else {},
        "score_histograms": {s: h for s, h in histograms.items() if h},
        "threshold": (report.get("scorer") or {}).get("threshold"),
        "samples": {"kept": kept_sample, "rejects": reject_samples},
    }


def _bar(n: int, most: int, width: int = 40) -> str:
    return "#" * max(1, round(width * n / most)) if n else ""


def _short(text: Any, full: bool, width: int = 80) -> str:
    text = "" if text is None else str(text).replace("\n", " / ")
    return text if full or len(text) <= width else text[:width - 1] + "…"


def render(result: dict, full: bool = False) -> str:
    """The inspection as terminal text."""
    lines = [f"run {result['run']} ({result['pipeline']}; report balanced: {result['balanced']})"]
    for name in ("data", "rejects"):
        part = result[name]
        lines.append(f"{name}: {part['rows']:,} rows in {part['shards']} shards, {part['bytes'] / 1e6:.1f} MB")
    key = next(k for k in result if k.startswith("kept_by_source_and_"))
    lines.append(f"\nkept by source and {key.rsplit('_', 1)[1]}:")
    lines += [f"  {name:40} {n:>10,}" for name, n in result[key].items()]
    if result["funnel"]:
        lines.append("\nfunnel:")
    for source, steps in result["funnel"].items():
        lines.append(f"  {source}: " + " -> ".join(f"{label} {n:,}" for label, n in steps))
    lines.append("\ndropped by source / stage / reason:")
    lines += [f"  {name:60} {n:>10,}" for name, n in result["dropped_by_source_stage_reason"].items()]
    for source, histogram in result["score_histograms"].items():
        most = max(histogram.values())
        threshold = result["threshold"]
        lines.append(f"\nscores, {source}" + (f" (threshold {threshold})" if threshold is not None else "") + ":")
        for low, n in sorted(histogram.items(), key=lambda item: float(item[0])):
            mark = " <" if threshold is not None and float(low) <= threshold < float(low) + 0.05 else ""
            lines.append(f"  {float(low):5.2f} {n:>8,} {_bar(n, most)}{mark}")
    samples = result["samples"]
    if samples["kept"]:
        lines.append(f"\nkept, {len(samples['kept'])} sampled:")
        for row in samples["kept"]:
            lines.append(_row_line(row, full))
    for name, rows in samples["rejects"].items():
        lines.append(f"\ndropped {name}, {len(rows)} sampled:")
        for row in rows:
            lines.append(_row_line(row, full) + f"\n      why: {_short(row.get('detail'), full)}  at {row.get('file')} "
                                                 f"{row.get('position')}")
    return "\n".join(lines)


def _row_line(row: dict, full: bool) -> str:
    score = f" score {row['score']:.3f}" if row.get("score") is not None else ""
    head = f"  [{row.get('source')}/{row.get('task') or row.get('kind') or ''}{score}] {row.get('id')}"
    if "pos" in row:
        body = (f"\n      query: {_short(row['query'], full)}\n      pos: "
                + " | ".join(_short(p, full, 60) for p in row["pos"])
                + "\n      neg: " + " | ".join(_short(n, full, 60) for n in row["neg"]))
    elif row.get("query") is not None or row.get("passage") is not None:
        body = f"\n      query: {_short(row.get('query'), full)}\n      passage: {_short(row.get('passage'), full)}"
    else:
        body = f"\n      text: {_short(row.get('text'), full)}"
    return head + body


