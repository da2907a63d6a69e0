"""The run report: double-entry counts proving every record and every pair is accounted for.

Readers and the extractor state what they produced (`records_read` per file, `pairs_made` per
record); the report counts again what arrived downstream (records parsed, pairs, kept rows, reject
rows) and checks the two ledgers agree. A runner that loses rows fails the check instead of
producing a smaller dataset quietly.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from cmtp.schemas import Reject

STATS = "stats"
HISTOGRAM_BIN = 0.05


def stat(source: str, name: str, count: int = 1) -> beam.pvalue.TaggedOutput:
    """A producer's own count, emitted on the `stats` output: ((name, source, "", ""), count)."""
    return beam.pvalue.TaggedOutput(STATS, ((name, source, "", ""), count))


def _score_bin(score: float) -> str:
    return f"{math.floor(score / HISTOGRAM_BIN) * HISTOGRAM_BIN:.2f}"


def assemble(counts: Iterable[tuple[tuple[str, str, str, str], int]], header: dict[str, Any]) -> dict[str, Any]:
    """The report dict from the summed counts; `checks` holds each balance and whether it holds."""
    per_source: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    run_counters: dict[str, int] = defaultdict(int)  # counts of the whole run, not of a source
    for (name, source, stage, reason), n in counts:
        if not source:
            run_counters[name] += n
            continue
        entry = per_source[source]
        if name == "reject":
            entry.setdefault("dropped", defaultdict(lambda: defaultdict(int)))[stage][reason] += n
            entry["read_rejects" if stage == "read" else "extract_rejects" if stage == "extract" else "pairs_dropped"] += n
        elif name == "score":
            entry.setdefault("score_histogram", defaultdict(int))[stage] += n
        elif ":" in name:  # a tally by type: "pii_masked:phone", "flagged:passage_flagged_abuse"
            group, key = name.split(":", 1)
            entry.setdefault(group, defaultdict(int))[key] += n
        else:
            entry[name] += n

    fields = ("records_read", "read_rejects", "records_parsed", "extract_rejects", "records_with_pairs",
              "pairs_made", "pairs_extracted", "pairs_dropped", "pairs_kept")
    sources, totals, dropped = {}, dict.fromkeys(fields, 0), defaultdict(lambda: defaultdict(int))
    for source in sorted(per_source):
        entry = per_source[source]
        row = {field: entry[field] for field in fields}
        row["dropped"] = {s: dict(sorted(r.items())) for s, r in sorted(entry.get("dropped", {}).items())}
        row["score_histogram"] = dict(sorted(entry.get("score_histogram", {}).items()))
        for group in ("pii_masked", "flagged", "pairs_capped"):
            if group in entry:
                row[group] = dict(sorted(entry[group].items())) if isinstance(entry[group], dict) else entry[group]
        sources[source] = row
        for field in fields:
            totals[field] += row[field]
        for stage, reasons in row["dropped"].items():
            for reason, n in reasons.items():
                dropped[stage][reason] += n

    t = totals
    checks = {
        "records_read == read_rejects + records_parsed": t["records_read"] == t["read_rejects"] + t["records_parsed"],
        "records_parsed == extract_rejects + records_with_pairs":
            t["records_parsed"] == t["extract_rejects"] + t["records_with_pairs"],
        "pairs_extracted == pairs made by extractors": t["pairs_extracted"] == t["pairs_made"],
        "pairs_extracted == pairs_kept + pairs_dropped": t["pairs_extracted"] == t["pairs_kept"] + t["pairs_dropped"],
    }
    for source, row in sources.items():
        checks[f"{source}: records and pairs balance"] = (
            row["records_read"] == row["read_rejects"] + row["extract_rejects"] + row["records_with_pairs"]
            and row["pairs_extracted"] == row["pairs_made"] == row["pairs_kept"] + row["pairs_dropped"])
    return {
        **header,
        "totals": totals,
        "dropped": {s: dict(sorted(r.items())) for s, r in sorted(dropped.items())},
        "sources": sources,
        "counters": dict(sorted(run_counters.items())),
        "checks": checks,
        "balanced": all(checks.values()),
    }


def _write_json(report: dict[str, Any], path: str) -> None:
    with FileSystems.create(path) as out:
        out.write(json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"))


class WriteReport(beam.PTransform):
    """Count what every stage produced and write `report.json`."""

    def __init__(self, path: str, header: dict[str, Any]):
        super().__init__()
        self._path, self._header = path, header

    def expand(self, streams: dict[str, beam.PCollection]):
        def reject_key(r: Reject):
            return ("reject", r.source, r.stage, r.reason), 1

        def score_keys(row):
            if row.score is not None:
                yield ("score", row.source, _score_bin(row.score), ""), 1

        def flag_keys(pair):
            for flag in (pair.flags or "").split(";"):
                if flag:
                    yield (f"flagged:{flag.split(':', 1)[0]}", pair.source, "", ""), 1

        events = (
            streams["stats"],
            streams["records"] | "CountRecords" >> beam.Map(lambda r: (("records_parsed", r.source, "", ""), 1)),
            streams["pairs"] | "CountPairs" >> beam.Map(lambda p: (("pairs_extracted", p.source, "", ""), 1)),
            streams["kept"] | "CountKept" >> beam.Map(lambda p: (("pairs_kept", p.source, "", ""), 1)),
            streams["rejects"] | "CountRejects" >> beam.Map(reject_key),
            (streams["kept"], streams["rejects"]) | "Scored" >> beam.Flatten() | "ScoreBins" >> beam.FlatMap(score_keys),
            streams["kept"] | "CountFlags" >> beam.FlatMap(flag_keys),
        )
        return (
            events
            | "AllCounts" >> beam.Flatten()
            | "Sum" >> beam.CombinePerKey(sum)
            | "Gather" >> beam.combiners.ToList()
            | "Assemble" >> beam.Map(assemble, self._header)
            | "Write" >> beam.Map(_write_json, self._path)
        )
