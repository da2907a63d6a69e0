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
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from cmtp.transforms.shards import ShardingDoFn, at_bundle_end, text_shard

STATS = "stats"
STAGE = "stage"  # a cleaning stage's ledger event: ((STAGE, "", label, "in" | "kept" | "rejected" | "aside"), n)
HISTOGRAM_BIN = 0.05


def stat(source: str, name: str, count: int = 1) -> beam.pvalue.TaggedOutput:
    """A producer's own count, emitted on the `stats` output: ((name, source, "", ""), count)."""
    return beam.pvalue.TaggedOutput(STATS, ((name, source, "", ""), count))


class CountingDoFn(beam.DoFn):
    """A DoFn that counts into its bundle (`self.count(source, name, n)`) and gives each count out once, on the
    `stats` output, when the bundle finishes: a count a row costs a dict update, not an element to shuffle and sum.
    A subclass that has its own start_bundle or finish_bundle calls these too."""

    def start_bundle(self):
        self._counts: Counter = Counter()

    def count(self, source: str, name: str, n: int = 1) -> None:
        self._counts[(name, source, "", "")] += n

    def finish_bundle(self):
        return _bundle_counts(self._counts, STATS)


def _bundle_counts(counts: Counter, tag: Optional[str]) -> Iterable:
    """A bundle's counts as the windowed values finish_bundle must give out, (key, n) each."""
    for key, n in counts.items():
        yield at_bundle_end((key, n), tag)


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


@dataclass(frozen=True)
class Ledger:
    """What a pipeline's report counts, in its own words: the unit cleaning keeps or drops (pairs, or judgments),
    what a parsed record becomes, what a written row is, and which tallies a source's row carries."""

    unit: str  # "pairs" | "judgments"
    made_by: str  # who states how many units they made: "extractors" | "readers"
    rows: str  # a source's input rows in its balance check: "records" | "rows"
    parsed_into: tuple[str, ...]  # a parsed record ends as one of these (or as an extract reject)
    kept_rows: str  # the ledger field the written data rows are checked against
    histogram: tuple[str, str]  # (event name, report field) of the score histogram
    extra_fields: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # tallies by type kept in a source's row
    unique_ids_key: Optional[str] = None  # a header key that says whether ids are promised unique (default yes)
    tasks: bool = False  # a summary per task ("task" events)

    @property
    def fields(self) -> tuple[str, ...]:
        return ("records_read", "read_rejects", "records_parsed", "extract_rejects", *self.parsed_into,
                f"{self.unit}_made", f"{self.unit}_extracted", f"{self.unit}_dropped", f"{self.unit}_kept",
                *self.extra_fields)


PAIR_LEDGER = Ledger("pairs", "extractors", "records", ("records_with_pairs",), "pairs_kept",
                     ("score", "score_histogram"),
                     groups=("pii_masked", "flagged", "pairs_capped"), unique_ids_key="exact_pair_dedup")
JUDGMENT_LEDGER = Ledger("judgments", "readers", "rows", ("texts_parsed", "rows_with_judgments"), "records_kept",
                         ("mined_score", "mined_score_histogram"),
                         extra_fields=("records_kept", "negatives_mined", "negatives_short"), tasks=True)


def assemble(counts: Iterable[tuple[tuple[str, str, str, str], int]], header: dict[str, Any],
             ledger: Ledger = PAIR_LEDGER) -> dict[str, Any]:
    """The report dict from the summed counts; `checks` holds each balance and whether it holds.

    Records read -> parsed -> what they became; units (pairs or judgments) extracted -> kept or dropped (reject
    rows), each balance checked per source and in total; the written shards against the ledger; each cleaning
    stage's own ledger (`in == kept + rejected`, in the order the pipeline ran them); and, for the labeled
    ledger, a summary per task."""
    unit = ledger.unit
    per_source: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    tasks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    stages: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    run_counters: dict[str, int] = defaultdict(int)  # counts of the whole run, not of a source
    for (name, source, stage, reason), n in counts:
        if name == "task":
            tasks[source][stage] += n
        elif name == STAGE:
            stages[stage][reason] += n
        elif not source:
            run_counters[name] += n
        elif name == "reject":
            entry = per_source[source]
            entry.setdefault("dropped", defaultdict(lambda: defaultdict(int)))[stage][reason] += n
            entry[_ledger_field(stage, f"{unit}_dropped")] += n
        elif name == ledger.histogram[0]:
            per_source[source].setdefault(ledger.histogram[1], defaultdict(int))[stage] += n
        elif ":" in name:  # a tally by type: "pii_masked:phone", "flagged:passage_flagged_abuse"
            group, key = name.split(":", 1)
            per_source[source].setdefault(group, defaultdict(int))[key] += n
        else:
            per_source[source][name] += n
    sources, t, dropped = _per_source_rows(per_source, ledger.fields, ledger.histogram[1], ledger.groups)

    parsed_into = " + ".join(ledger.parsed_into)
    checks = {
        "records_read == read_rejects + records_parsed": t["records_read"] == t["read_rejects"] + t["records_parsed"],
        f"records_parsed == extract_rejects + {parsed_into}":
            t["records_parsed"] == t["extract_rejects"] + sum(t[field] for field in ledger.parsed_into),
        f"{unit}_extracted == {unit} made by {ledger.made_by}": t[f"{unit}_extracted"] == t[f"{unit}_made"],
        f"{unit}_extracted == {unit}_kept + {unit}_dropped":
            t[f"{unit}_extracted"] == t[f"{unit}_kept"] + t[f"{unit}_dropped"],
        **_written_checks(run_counters, (ledger.kept_rows, t[ledger.kept_rows]),
                          (f"read_rejects + extract_rejects + {unit}_dropped",
                           t["read_rejects"] + t["extract_rejects"] + t[f"{unit}_dropped"]),
                          # an id is a hash of the pair's content: copies share it unless exact pair dedup is on
                          unique_ids=header.get(ledger.unique_ids_key, True) if ledger.unique_ids_key else True),
        **_near_dedup_checks(run_counters),
    }
    for source, row in sources.items():
        checks[f"{source}: {ledger.rows} and {unit} balance"] = (
            row["records_read"] == row["read_rejects"] + row["extract_rejects"]
            + sum(row[field] for field in ledger.parsed_into)
            and row[f"{unit}_extracted"] == row[f"{unit}_made"] == row[f"{unit}_kept"] + row[f"{unit}_dropped"])
    stage_rows = _stage_rows(header.get("stages", []), stages)
    for row in stage_rows:
        aside = " + aside" if "aside" in row else ""
        checks[f"stage {row['stage']}: in == kept + rejected{aside}"] = (
            row["in"] == row["kept"] + row["rejected"] + row.get("aside", 0))
    report = {
        **header,
        "totals": t,
        "dropped": {s: dict(sorted(r.items())) for s, r in sorted(dropped.items())},
        "sources": sources,
    }
    if stage_rows:
        report["stages"] = stage_rows
    if ledger.tasks:
        report["tasks"] = {task: dict(sorted(row.items())) for task, row in sorted(tasks.items())}
    return {**report, "counters": dict(sorted(run_counters.items())), "checks": checks,
            "balanced": all(checks.values())}


def assemble_labeled(counts: Iterable[tuple[tuple[str, str, str, str], int]], header: dict[str, Any]) -> dict[str, Any]:
    """`assemble` with the labeled run's ledger (judgments, records and tasks)."""
    return assemble(counts, header, JUDGMENT_LEDGER)


def _stage_rows(order: list[str], events: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Each cleaning stage's ledger in the order the pipeline ran them: what went in (counted where it is not
    simply what the stage before kept), what it kept, what it rejected, and what it set aside for a later stage
    (only where it sets rows aside)."""
    rows, kept = [], 0
    for label in order:
        counts = events.get(label, {})
        row = {"stage": label, "in": counts.get("in", kept), "kept": counts.get("kept", 0),
               "rejected": counts.get("rejected", 0)}
        if "aside" in counts:
            row["aside"] = counts.get("aside", 0)
        rows.append(row)
        kept = row["kept"]
    return rows


class _Written(beam.PTransform):
    """Per-stream counts -> summed -> one report dict by `assemble` -> written as JSON to `path`."""

    def __init__(self, header: dict[str, Any], ledger: Ledger, path: str):
        super().__init__()
        self._header, self._ledger, self._path = header, ledger, path

    def expand(self, events):
        return (
            events
            | "AllCounts" >> beam.Flatten()
            | "Sum" >> beam.CombinePerKey(sum)
            | "Gather" >> beam.combiners.ToList()
            | "Assemble" >> beam.Map(assemble, self._header, self._ledger)
            | "Write" >> beam.Map(_write_json, self._path)
        )


class _CountKeys(beam.DoFn):
    """Rows -> (key, n) for the keys `keys(row)` gives, counted within each bundle and given out at its end."""

    def __init__(self, keys):
        self._keys = keys

    def start_bundle(self):
        self._counts: Counter = Counter()

    def process(self, row):
        for key, n in self._keys(row):
            self._counts[key] += n

    def finish_bundle(self):
        return _bundle_counts(self._counts, None)


def _counted(rows: beam.PCollection, label: str, keys) -> beam.PCollection:
    """(key, n) for the keys `keys(row)` gives over `rows`, summed per key before it meets any other stream."""
    return rows | f"{label}Keys" >> beam.ParDo(_CountKeys(keys)) | f"Sum{label}" >> beam.CombinePerKey(sum)


ID_SHARDS = 64


class _IdsByShard(ShardingDoFn):
    """Rows -> (shard, [ids]) per bundle: the ids travel a shard's list at a time."""

    def process(self, row):
        yield from self.lists.add(text_shard(row.id, ID_SHARDS), row.id)


def _repeats(element) -> int:
    """A shard's id lists -> how many of its ids appear more than once."""
    counts = Counter(row_id for ids in element[1] for row_id in ids)
    return sum(n > 1 for n in counts.values())


def _repeated_ids(rows: beam.PCollection) -> beam.PCollection:
    """(("repeated_ids", "", "", ""), n): how many ids more than one kept row carries (a run counter, 0 when none)."""
    return (
        rows
        | "KeptIds" >> beam.ParDo(_IdsByShard())
        | "ByShard" >> beam.GroupByKey()
        | "Repeated" >> beam.Map(_repeats)
        | "CountRepeated" >> beam.CombineGlobally(sum)
        | "RepeatedIds" >> beam.Map(lambda n: (("repeated_ids", "", "", ""), n))
    )


def _write_json(report: dict[str, Any], path: str) -> None:
    with FileSystems.create(path) as out:
        out.write(json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"))


def _pair_keys(kept: bool):
    """Report events of one unlabeled pair, kept or rejected: its score bin, and (kept) its row and flags."""
    def keys(row):
        if kept:
            yield ("pairs_kept", row.source, "", ""), 1
            for flag in (row.flags or "").split(";"):
                if flag:
                    yield (f"flagged:{flag.split(':', 1)[0]}", row.source, "", ""), 1
        if row.score is not None:
            yield ("score", row.source, _score_bin(row.score), ""), 1
    return keys


def _record_keys(record):
    """Report events of one labeled record: its judgments kept, its tallies per task, its mined scores' bins."""
    given = len(record.neg) - record.mined
    yield ("records_kept", record.source, "", ""), 1
    yield ("judgments_kept", record.source, "", ""), len(record.pos) + given
    for stage, n in (("records", 1), ("positives", len(record.pos)), ("negatives_given", given),
                     ("negatives_mined", record.mined), ("with_instruction", int(bool(record.instruction)))):
        yield ("task", record.task, stage, ""), n
    for score in record.mined_scores:
        yield ("mined_score", record.source, _score_bin(score), ""), 1


class WriteReport(beam.PTransform):
    """Count what every stage produced and write `report.json`, by `ledger` (PAIR_LEDGER: the unlabeled run's,
    JUDGMENT_LEDGER: the labeled run's).

    `streams`: `stats` (producers' own counts), `records` (parsed records), `extracted` (the units made), `kept`
    (the rows written) and `rejects`.
    """

    def __init__(self, path: str, header: dict[str, Any], ledger: Ledger = PAIR_LEDGER):
        super().__init__()
        self._path, self._header, self._ledger = path, header, ledger

    def expand(self, streams: dict[str, beam.PCollection]):
        unit = self._ledger.unit
        unlabeled = self._ledger is PAIR_LEDGER
        # Each stream is summed on its own before anything is flattened: FnApiRunner holds a Flatten's inputs in
        # memory, and flattening the kept pairs with the rejects held every row of the run (4.4 GB at 1M pairs).
        events = [
            streams["stats"] | "SumStats" >> beam.CombinePerKey(sum),
            _counted(streams["records"], "Records", lambda r: [(("records_parsed", r.source, "", ""), 1)]),
            _counted(streams["extracted"], "Extracted", lambda p: [((f"{unit}_extracted", p.source, "", ""), 1)]),
            _counted(streams["kept"], "Kept", _pair_keys(kept=True) if unlabeled else _record_keys),
            _counted(streams["rejects"], "Rejects", lambda r: [(("reject", r.source, r.stage, r.reason), 1)]),
            _repeated_ids(streams["kept"]),
        ]
        if unlabeled:
            events.append(_counted(streams["rejects"], "RejectScores", _pair_keys(kept=False)))
        return tuple(events) | _Written(self._header, self._ledger, self._path)
