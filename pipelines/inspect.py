"""`cmtp inspect DIR`: what a run kept, what it dropped and why, read from its Parquet shards and report.json.

Reading is columnar and streamed: counts come from Parquet metadata and the one or two columns they need,
samples from a seeded reservoir over record batches, so a run of any size is inspected in bounded memory.
Works on unlabeled runs (pairs) and labeled runs (records with `pos`/`neg` lists). A shard that is corrupt, empty
or lacks the columns of a run, and a report.json that is cut short, are refused in one line naming the file.
"""
from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq


class InspectError(ValueError):
    """A directory that is not a run, or a file of it that cannot be read; one line naming the file."""


@contextmanager
def reading(path: str, error: type[ValueError] = InspectError) -> Iterator[None]:
    """Turn a failure to read `path` (corrupt, empty, truncated, unreadable) into `error`, one line naming the file,
    instead of a traceback from deep inside pyarrow or json."""
    try:
        yield
    except error:
        raise
    except (pa.ArrowException, OSError, ValueError) as cause:  # json's and pyarrow's errors are ValueErrors
        raise error(f"{path}: cannot read it: {' '.join(str(cause).split())}") from None


def check_columns(shards: list[str], columns: list[str], error: type[ValueError] = InspectError) -> None:
    """Refuse a shard that is not Parquet or lacks one of `columns`: it is not a shard of a cmtp run."""
    for shard in shards:
        with reading(shard, error):
            names = pq.ParquetFile(shard).schema_arrow.names
        missing = [column for column in columns if column not in names]
        if missing:
            raise error(f"{shard}: not a shard of a cmtp run: no column {', '.join(missing)}")


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
        with reading(shard):
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=4096):
                yield from batch.to_pylist()


class _Reservoir:
    """n rows drawn uniformly from a stream (Algorithm R), returned in stream order: the same stream and seed,
    the same rows."""

    def __init__(self, n: int, rng: random.Random):
        self._n, self._rng, self._seen = n, rng, 0
        self._chosen: list[tuple[int, dict]] = []

    def add(self, row: dict) -> None:
        if len(self._chosen) < self._n:
            self._chosen.append((self._seen, row))
        else:
            j = self._rng.randint(0, self._seen)
            if j < self._n:
                self._chosen[j] = (self._seen, row)
        self._seen += 1

    def rows(self) -> list[dict]:
        return [row for _, row in sorted(self._chosen, key=lambda item: item[0])]

    @property
    def seen(self) -> int:
        """How many rows the stream held: every row offered, not only the ones drawn."""
        return self._seen


def _count(shards: list[str], columns: list[str]) -> Counter:
    counts: Counter = Counter()
    for shard in shards:
        with reading(shard):
            table = pq.read_table(shard, columns=columns)
        if table.num_rows:
            grouped = table.group_by(columns).aggregate([([], "count_all")])
            for row in grouped.to_pylist():
                counts[tuple(row[c] for c in columns)] += row["count_all"]
    return counts


def _shard_summary(shards: list[str]) -> dict:
    rows = 0
    for shard in shards:
        with reading(shard):
            rows += pq.ParquetFile(shard).metadata.num_rows
    return {"shards": len(shards), "rows": rows, "bytes": sum(os.path.getsize(s) for s in shards)}


def _report(path: str) -> dict:
    """report.json as a dict ({} when absent); InspectError when it is cut short or not a report (a finished run's
    report has its sources, totals, checks and the verdict)."""
    if not os.path.lexists(path):
        return {}
    if not os.path.isfile(path):
        raise InspectError(f"{path}: not a file")
    with reading(path), open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    sources = report.get("sources") if isinstance(report, dict) else None
    if not (isinstance(sources, dict) and all(isinstance(row, dict) for row in sources.values())):
        raise InspectError(f"{path}: not a cmtp report (`sources` must map each source to an object)")
    missing = [key for key in ("totals", "checks", "balanced") if key not in report]
    if missing:
        raise InspectError(f"{path}: not a cmtp report (no {', '.join(missing)})")
    return report


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


def _funnel(report: dict, path: str) -> dict[str, list[tuple[str, int]]]:
    """The report's funnel ({} without sources); InspectError for a report that lacks a count the funnel needs."""
    if not report.get("sources"):
        return {}
    try:
        return funnel(report)
    except (KeyError, TypeError, AttributeError) as error:
        raise InspectError(f"{path}: not a complete cmtp report ({type(error).__name__}: {error})") from None


def inspect_run(run_dir: str, selection: Selection = Selection()) -> dict[str, Any]:
    """The summary, funnel, histograms and samples of a run directory, as one dict."""
    data, rejects = _shards(run_dir, "data"), _shards(run_dir, "rejects")
    report_path = os.path.join(run_dir, "report.json")
    if not data and not rejects and not os.path.isfile(report_path):
        raise InspectError(f"{run_dir}: no data/, rejects/ or report.json; is it the --out of a `cmtp run`?")
    report = _report(report_path)
    steps = _funnel(report, report_path)
    check_columns(data + rejects, ["source"])
    labeled = bool(data) and "pos" in pq.ParquetFile(data[0]).schema_arrow.names
    kind_column = "task" if labeled else "kind"
    check_columns(data, [kind_column])
    check_columns(rejects, ["stage", "reason"])
    kept_by = _count(data, ["source", kind_column]) if data else Counter()
    dropped_by = _count(rejects, ["source", "stage", "reason"]) if rejects else Counter()
    pattern = re.compile(selection.grep) if selection.grep else None
    kept_sample: list[dict] = []
    reject_samples: dict[str, list[dict]] = {}
    # rows the selection matched, of those searched: kept rows are not searched for a --stage or --reason, and
    # nothing is without samples
    matched: dict[str, Optional[int]] = {"kept": None, "rejects": None}
    if selection.samples > 0:
        if not (selection.stage or selection.reason):
            kept = _Reservoir(selection.samples, random.Random(selection.seed))
            for row in _rows(data):
                if _matches(row, selection, pattern, labeled):
                    kept.add(row)
            kept_sample = kept.rows()
            matched["kept"] = kept.seen
        by_reason: dict[tuple[str, str], _Reservoir] = {}  # one pass over the rejects, a reservoir per reason
        for row in _rows(rejects):
            if _matches(row, selection, pattern, labeled):
                key = (row["stage"], row["reason"])
                if key not in by_reason:
                    by_reason[key] = _Reservoir(selection.samples, random.Random(f"{selection.seed}:{key[0]}:{key[1]}"))
                by_reason[key].add(row)
        reject_samples = {f"{stage}/{reason}": by_reason[(stage, reason)].rows() for stage, reason in sorted(by_reason)}
        matched["rejects"] = sum(reservoir.seen for reservoir in by_reason.values())
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
        "funnel": steps,
        "score_histograms": {s: h for s, h in histograms.items() if h},
        "threshold": (report.get("scorer") or {}).get("threshold"),
        "consistency": {key: (report.get("scorer") or {}).get(key) for key in ("k", "pool_size")}
        if (report.get("scorer") or {}).get("mode") == "consistency" else None,
        "samples": {"kept": kept_sample, "rejects": reject_samples},
        "matched": matched,
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
        setting = (f" (threshold {threshold})" if threshold is not None else
                   f" (cosine; kept by rank <= {result['consistency']['k']} in a pool of "
                   f"{result['consistency']['pool_size']})" if result.get("consistency") else "")
        lines.append(f"\nscores, {source}{setting}:")
        for low, n in sorted(histogram.items(), key=lambda item: float(item[0])):
            mark = " <" if threshold is not None and float(low) <= threshold < float(low) + 0.05 else ""
            lines.append(f"  {float(low):5.2f} {n:>8,} {_bar(n, most)}{mark}")
    samples = result["samples"]
    matched = result.get("matched", {})  # an empty sample says so, rather than printing nothing
    if samples["kept"]:
        lines.append(f"\nkept, {len(samples['kept'])} sampled:")
        for row in samples["kept"]:
            lines.append(_row_line(row, full))
    elif matched.get("kept") == 0:
        lines.append("\nkept: 0 rows matched")
    for name, rows in samples["rejects"].items():
        lines.append(f"\ndropped {name}, {len(rows)} sampled:")
        for row in rows:
            lines.append(_row_line(row, full) + f"\n      why: {_short(row.get('detail'), full)}  at {row.get('file')} "
                                                 f"{row.get('position')}")
    if matched.get("rejects") == 0:
        lines.append("\ndropped: 0 rows matched")
    return "\n".join(lines)


def _row_line(row: dict, full: bool) -> str:
    score = f" score {row['score']:.3f}" if row.get("score") is not None else ""
    score += f" rank {row['rank']}" if row.get("rank") is not None else ""
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


