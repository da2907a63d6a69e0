"""The run report: double-entry counts proving every record and every pair is accounted for.

Readers and the extractor state what they produced (`records_read` per file, `pairs_made` per
record); the report counts again what arrived downstream (records parsed, pairs, kept rows, reject
rows) and checks the two ledgers agree, and that the shards really hold those rows (their footers
read back after the write) with no id twice. A runner that loses rows fails the check instead of
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


def _per_source_rows(per_source: dict, fields: tuple[str, ...], histogram: str, groups: tuple[str, ...]):
    """Each source's row of `fields`, its drops by stage and reason, its histogram and tallies by type; the totals
    of the fields; and the drops summed over sources."""
    sources, totals, dropped = {}, dict.fromkeys(fields, 0), defaultdict(lambda: defaultdict(int))
    for source in sorted(per_source):
        entry = per_source[source]
        row: dict[str, Any] = {field: entry[field] for field in fields}
        row["dropped"] = {s: dict(sorted(r.items())) for s, r in sorted(entry.get("dropped", {}).items())}
        row[histogram] = dict(sorted(entry.get(histogram, {}).items()))
        for group in groups:
            if group in entry:
                row[group] = dict(sorted(entry[group].items())) if isinstance(entry[group], dict) else entry[group]
        sources[source] = row
        for field in fields:
            totals[field] += row[field]
        for stage, reasons in row["dropped"].items():
            for reason, n in reasons.items():
                dropped[stage][reason] += n
    return sources, totals, dropped


def _ledger_field(stage: str, dropped: str) -> str:
    """The ledger column a reject of `stage` counts in: records that gave no pair (read; extract and generate,
    a record whose queries could not be generated) or pairs dropped by a cleaning stage."""
    return "read_rejects" if stage == "read" else "extract_rejects" if stage in ("extract", "generate") else dropped


def _near_dedup_checks(counters: dict[str, int]) -> dict[str, bool]:
    """Near dedup's components converged: no node still changing in the last round allowed (a run that reached the
    bound would keep duplicates quietly otherwise)."""
    if "near_dedup_unsettled" not in counters:
        return {}
    return {"near dedup converged: near_dedup_unsettled == 0": counters["near_dedup_unsettled"] == 0}


def _written_checks(counters: dict[str, int], kept: tuple[str, int], rejects: tuple[str, int],
                    unique_ids: bool = True) -> dict[str, bool]:
    """The data as written against the ledger: no id twice (where the run promises unique ids), and as many rows
    in the shards (read back from their footers after the write) as the ledger kept and rejected. `kept` and
    `rejects` are (what, how many)."""
    checks = {"no id repeated in the written data": counters["repeated_ids"] == 0} if unique_ids else {}
    return {
        **checks,
        f"rows_written == {kept[0]}": counters["rows_written"] == kept[1],
        f"reject_rows_written == {rejects[0]}": counters["reject_rows_written"] == rejects[1],
    }


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
            entry[_ledger_field(stage, "pairs_dropped")] += n
        elif name == "score":
            entry.setdefault("score_histogram", defaultdict(int))[stage] += n
        elif ":" in name:  # a tally by type: "pii_masked:phone", "flagged:passage_flagged_abuse"
            group, key = name.split(":", 1)
            entry.setdefault(group, defaultdict(int))[key] += n
        else:
            entry[name] += n

    fields = ("records_read", "read_rejects", "records_parsed", "extract_rejects", "records_with_pairs",
              "pairs_made", "pairs_extracted", "pairs_dropped", "pairs_kept")
    sources, totals, dropped = _per_source_rows(per_source, fields, "score_histogram",
                                                ("pii_masked", "flagged", "pairs_capped"))

    t = totals
    checks = {
        "records_read == read_rejects + records_parsed": t["records_read"] == t["read_rejects"] + t["records_parsed"],
        "records_parsed == extract_rejects + records_with_pairs":
            t["records_parsed"] == t["extract_rejects"] + t["records_with_pairs"],
        "pairs_extracted == pairs made by extractors": t["pairs_extracted"] == t["pairs_made"],
        "pairs_extracted == pairs_kept + pairs_dropped": t["pairs_extracted"] == t["pairs_kept"] + t["pairs_dropped"],
        **_written_checks(run_counters, ("pairs_kept", t["pairs_kept"]),
                          ("read_rejects + extract_rejects + pairs_dropped",
                           t["read_rejects"] + t["extract_rejects"] + t["pairs_dropped"]),
                          # an id is a hash of the pair's content: copies share it unless exact pair dedup is on
                          unique_ids=header.get("exact_pair_dedup", True)),
        **_near_dedup_checks(run_counters),
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


LABELED_FIELDS = ("records_read", "read_rejects", "records_parsed", "extract_rejects", "texts_parsed",
                  "rows_with_judgments", "judgments_made", "judgments_extracted", "judgments_dropped",
                  "judgments_kept", "records_kept", "negatives_mined", "negatives_short")


def assemble_labeled(counts: Iterable[tuple[tuple[str, str, str, str], int]], header: dict[str, Any]) -> dict[str, Any]:
    """The labeled run's report: rows read -> parsed -> lookup texts or judgment rows; judgments -> kept (in
    records) or dropped (reject rows), each balance checked per source and in total; and a summary per task."""
    per_source: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    tasks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    run_counters: dict[str, int] = defaultdict(int)
    for (name, source, stage, reason), n in counts:
        if name == "task":
            tasks[source][stage] += n
        elif not source:
            run_counters[name] += n
        elif name == "reject":
            entry = per_source[source]
            entry.setdefault("dropped", defaultdict(lambda: defaultdict(int)))[stage][reason] += n
            entry[_ledger_field(stage, "judgments_dropped")] += n
        elif name == "mined_score":
            per_source[source].setdefault("mined_score_histogram", defaultdict(int))[stage] += n
        else:
            per_source[source][name] += n
    sources, totals, dropped = _per_source_rows(per_source, LABELED_FIELDS, "mined_score_histogram", ())
    t = totals
    checks = {
        "records_read == read_rejects + records_parsed": t["records_read"] == t["read_rejects"] + t["records_parsed"],
        "records_parsed == extract_rejects + texts_parsed + rows_with_judgments":
            t["records_parsed"] == t["extract_rejects"] + t["texts_parsed"] + t["rows_with_judgments"],
        "judgments_extracted == judgments made by readers": t["judgments_extracted"] == t["judgments_made"],
        "judgments_extracted == judgments_kept + judgments_dropped":
            t["judgments_extracted"] == t["judgments_kept"] + t["judgments_dropped"],
        **_written_checks(run_counters, ("records_kept", t["records_kept"]),
                          ("read_rejects + extract_rejects + judgments_dropped",
                           t["read_rejects"] + t["extract_rejects"] + t["judgments_dropped"])),
        **_near_dedup_checks(run_counters),
    }
    for source, row in sources.items():
        checks[f"{source}: rows and judgments balance"] = (
            row["records_read"] == row["read_rejects"] + row["extract_rejects"] + row["texts_parsed"]
            + row["rows_with_judgments"]
            and row["judgments_extracted"] == row["judgments_made"] == row["judgments_kept"] + row["judgments_dropped"])
    return {
        **header,
        "totals": totals,
        "dropped": {s: dict(sorted(r.items())) for s, r in sorted(dropped.items())},
        "sources": sources,
        "tasks": {task: dict(sorted(row.items())) for task, row in sorted(tasks.items())},
        "counters": dict(sorted(run_counters.items())),
        "checks": checks,
        "balanced": all(checks.values()),
    }


class WriteLabeledReport(beam.PTransform):
    """Count what every stage of the labeled pipeline produced and write `report.json`."""

    def __init__(self, path: str, header: dict[str, Any]):
        super().__init__()
        self._path, self._header = path, header

    def expand(self, streams: dict[str, beam.PCollection]):
        def record_keys(record):
            given = len(record.neg) - record.mined
            yield ("records_kept", record.source, "", ""), 1
            yield ("judgments_kept", record.source, "", ""), len(record.pos) + given
            for stage, n in (("records", 1), ("positives", len(record.pos)), ("negatives_given", given),
                             ("negatives_mined", record.mined), ("with_instruction", int(bool(record.instruction)))):
                yield ("task", record.task, stage, ""), n
            for score in record.mined_scores:
                yield ("mined_score", record.source, _score_bin(score), ""), 1

        events = (  # each stream summed on its own before the Flatten (see WriteReport)
            streams["stats"] | "SumStats" >> beam.CombinePerKey(sum),
            _counted(streams["records"], "Rows", lambda r: [(("records_parsed", r.source, "", ""), 1)]),
            _counted(streams["judgments"], "Judgments", lambda j: [(("judgments_extracted", j.source, "", ""), 1)]),
            _counted(streams["kept"], "Kept", record_keys),
            _counted(streams["rejects"], "Rejects", lambda r: [(("reject", r.source, r.stage, r.reason), 1)]),
            _repeated_ids(streams["kept"]),
        )
        return events | _Written(assemble_labeled, self._header, self._path)


class _Written(beam.PTransform):
    """Per-stream counts -> summed -> one report dict by `assemble` -> written as JSON to `path`."""

    def __init__(self, assemble_fn, header: dict[str, Any], path: str):
        super().__init__()
        self._assemble, self._header, self._path = assemble_fn, header, path

    def expand(self, events):
        return (
            events
            | "AllCounts" >> beam.Flatten()
            | "Sum" >> beam.CombinePerKey(sum)
            | "Gather" >> beam.combiners.ToList()
            | "Assemble" >> beam.Map(self._assemble, self._header)
            | "Write" >> beam.Map(_write_json, self._path)
        )


def _counted(rows: beam.PCollection, label: str, keys) -> beam.PCollection:
    """(key, n) for the keys `keys(row)` gives over `rows`, summed per key before it meets any other stream."""
    return rows | f"{label}Keys" >> beam.FlatMap(keys) | f"Sum{label}" >> beam.CombinePerKey(sum)


def _repeated_ids(rows: beam.PCollection) -> beam.PCollection:
    """(("repeated_ids", "", "", ""), n): how many ids more than one kept row carries (a run counter, 0 when none)."""
    return (
        rows
        | "KeptIds" >> beam.Map(lambda row: (row.id, 1))
        | "RowsPerId" >> beam.CombinePerKey(sum)
        | "Repeated" >> beam.Map(lambda id_rows: int(id_rows[1] > 1))
        | "CountRepeated" >> beam.CombineGlobally(sum)
        | "RepeatedIds" >> beam.Map(lambda n: (("repeated_ids", "", "", ""), n))
    )


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

        # Each stream is summed on its own before anything is flattened: FnApiRunner holds a Flatten's inputs in
        # memory, and flattening the kept pairs with the rejects held every row of the run (4.4 GB at 1M pairs).
        events = (
            streams["stats"] | "SumStats" >> beam.CombinePerKey(sum),
            _counted(streams["records"], "Records", lambda r: [(("records_parsed", r.source, "", ""), 1)]),
            _counted(streams["pairs"], "Pairs", lambda p: [(("pairs_extracted", p.source, "", ""), 1)]),
            _counted(streams["kept"], "Kept", lambda p: [(("pairs_kept", p.source, "", ""), 1)]),
            _counted(streams["rejects"], "Rejects", lambda r: [reject_key(r)]),
            _counted(streams["kept"], "KeptScores", score_keys),
            _counted(streams["rejects"], "RejectScores", score_keys),
            _counted(streams["kept"], "Flags", flag_keys),
            _repeated_ids(streams["kept"]),
        )
        return events | _Written(assemble, self._header, self._path)
