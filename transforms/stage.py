"""The contract every cleaning stage keeps, and the fold that runs a list of them.

A stage is a PTransform from rows to `Staged`: the rows it keeps (`pairs`), the rows it drops as `Reject`s
(`rejects`) and its own counts for the report (`stats`: ((name, source, stage, reason), n)). A ParDo's
`.with_outputs(REJECTS, STATS, main="pairs")` has the same three names, and is a stage as it is. A stage that
routes some rows round the next stages (one pair per passage goes to near dedup, the passage's other pairs wait
for the scorer) gives them on a fourth output, `aside`, and names the stage after which they rejoin.

`clean` folds a list of `Stage`s over a collection: each stage takes the rows the one before kept. Its rejects
are gathered; from the first dedup stage on they also settle their survivors (a pair a dedup reject names may be
dropped by any later stage: transforms/survivor_state.py). The fold counts what went into each stage and what
came out, so the report has a per-stage ledger (`in == kept + rejected + aside`) that no pipeline wires by hand.
The stages are applied under their own labels at the top of the pipeline, so a runner's job graph shows them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Union

import apache_beam as beam

from cmtp.transforms.flatten_rows import FlattenRows
from cmtp.transforms.report import STAGE, STATS
from cmtp.transforms.shards import at_bundle_end
from cmtp.transforms.survivor_state import SettleSurvivors

PAIRS, REJECTS, ASIDE = "pairs", "rejects", "aside"


class Staged(NamedTuple):
    """What a stage returns: kept rows, rejects and counts. Indexable by name too (`out["rejects"]`), like the
    outputs of a ParDo with tagged outputs."""

    pairs: beam.PCollection
    rejects: beam.PCollection
    stats: beam.PCollection

    def __getitem__(self, key: Union[int, str]):
        return getattr(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline's cleaning.

    `dedup_steps`: how many times a survivor trail can pass through this stage's rejects (0 for a stage whose
    rejects name no survivor). `reads`: the label of an earlier stage whose rejects this one takes with its rows,
    as `(rows, those rejects)`. `aside_until`: the label of a later stage after which the rows of this stage's
    `aside` output rejoin the others. `units`: how many ledger units a kept row holds (1 a row; a labeled record
    holds its judgments), so a stage that regroups rows still balances in its own units. `kept`: the name of its
    kept output ("records" for assembly, whose kept rows are records).
    """

    label: str
    transform: beam.PTransform
    dedup_steps: int = 0
    reads: Optional[str] = None
    aside_until: Optional[str] = None
    units: Optional[Callable[[object], int]] = None
    kept: str = PAIRS


def clean(rows: beam.PCollection, stages: list[Stage]) -> Staged:
    """Fold `stages` over `rows`: the rows the last stage kept, every stage's rejects (dedup ones settled against
    their survivor's fate), and every stage's counts plus its ledger events."""
    _check(stages)
    rejects, late, stats, rejects_of, waiting = [], [], [], {}, {}
    hops = 0  # dedup steps so far: rejects from the first one on settle their survivors
    counted_in = False  # whether `rows` is a collection no stage has counted as its output yet
    for stage in stages:
        label = stage.label
        if not counted_in:  # the first stage, or one after rows rejoined: else its input is the last one's kept
            stats.append(_counted(rows, f"{label} in", None, label, "in"))
        given = rows if stage.reads is None else (rows, rejects_of[stage.reads])
        out = given | label >> stage.transform
        rows, rejects_of[label] = out[stage.kept], out[REJECTS]
        hops += stage.dedup_steps
        (late if hops else rejects).append(out[REJECTS])
        stats.append(out[STATS])
        stats.append(_counted(rows, f"{label} kept", stage.units, label, "kept"))
        stats.append(_counted(out[REJECTS], f"{label} rejected", None, label, "rejected"))
        if stage.aside_until:
            waiting.setdefault(stage.aside_until, []).append(out[ASIDE])
            stats.append(_counted(out[ASIDE], f"{label} aside", None, label, "aside"))
        counted_in = stage.units is None  # a kept count in other units is not the next stage's input
        if label in waiting:
            rows = (rows, *waiting.pop(label)) | f"{label} and the rows set aside" >> FlattenRows()
            counted_in = False
    if late:
        settled = late | "FromDedupOn" >> FlattenRows() | "SettleSurvivors" >> SettleSurvivors(hops)
        rejects.append(settled[REJECTS])
        stats.append(settled[STATS])
    return Staged(rows, rejects | "CleaningRejects" >> FlattenRows(rows.pipeline),
                  stats | "CleaningStats" >> beam.Flatten())


def _check(stages: list[Stage]) -> None:
    """Labels are unique, and a stage reads the rejects of, or sets rows aside until, a stage that exists where it
    must: before it, or after it."""
    labels = [stage.label for stage in stages]
    if len(set(labels)) != len(labels):
        raise ValueError(f"stage labels repeat: {labels}")
    for i, stage in enumerate(stages):
        if stage.reads is not None and stage.reads not in labels[:i]:
            raise ValueError(f"stage {stage.label} reads {stage.reads}, which does not run before it")
        if stage.aside_until is not None and stage.aside_until not in labels[i + 1:]:
            raise ValueError(f"stage {stage.label} sets rows aside until {stage.aside_until}, which does not run "
                             "after it")


class SetAside(beam.PTransform):
    """A stage: the rows `goes_on` holds for go on (`pairs`); the others wait (`aside`) until the stage its `Stage`
    names. It rejects nothing."""

    def __init__(self, goes_on: Callable[[object], bool]):
        super().__init__()
        self._goes_on = goes_on

    def expand(self, rows):
        goes_on = self._goes_on

        def route(row):
            yield row if goes_on(row) else beam.pvalue.TaggedOutput(ASIDE, row)

        return rows | "Route" >> beam.FlatMap(route).with_outputs(ASIDE, REJECTS, STATS, main=PAIRS)


def stage_order(stages: list[Stage]) -> list[str]:
    """The labels in the order the fold runs them: the report's ledger lists its stages so."""
    return [stage.label for stage in stages]


class _Count(beam.DoFn):
    """Counts a collection's rows (or their units) in each bundle and emits one ((STAGE, "", stage, what), n) at the
    bundle's end: no per-row output and no shuffle of its own; the report's sum of every count adds them up."""

    def __init__(self, key: tuple, units: Optional[Callable[[object], int]]):
        self._key, self._units, self._n = key, units, 0

    def start_bundle(self):
        self._n = 0

    def process(self, row):
        self._n += 1 if self._units is None else self._units(row)
        return ()

    def finish_bundle(self):
        if self._n:
            yield at_bundle_end((self._key, self._n))


def _counted(rows: beam.PCollection, label: str, units: Optional[Callable[[object], int]], stage: str,
             what: str) -> beam.PCollection:
    """((STAGE, "", stage, what), n) per bundle: the rows (or their units) of one stage's input or output; a
    collection with no rows gives no event (the report reads a missing count as 0). Counting in the bundle, not
    with a Map and a combine per counter, keeps the ledger's cost near nothing: global sums per counter cost the
    pipeline 1.18x at 10k pairs (docs/benchmarks.md)."""
    return rows | f"{label} count" >> beam.ParDo(_Count((STAGE, "", stage, what), units))
