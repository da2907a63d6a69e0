"""The contract every cleaning stage keeps, and the fold that runs a list of them.

A stage is a PTransform from rows to `Staged`: the rows it keeps (`pairs`), the rows it drops as `Reject`s
(`rejects`) and its own counts for the report (`stats`: ((name, source, stage, reason), n)). A ParDo's
`.with_outputs(REJECTS, STATS, main="pairs")` has the same three names, and is a stage as it is.

`Clean` folds a list of `Stage`s over a collection: each stage takes the rows the one before kept. Its rejects
are gathered; from the first dedup stage on they also settle their survivors (a pair a dedup reject names may be
dropped by any later stage: transforms/survivor_state.py). The fold counts what went into each stage and what
came out, so the report has a per-stage ledger (`in == kept + rejected`) that no pipeline wires by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Union

import apache_beam as beam

from cmtp.transforms.report import STAGE, STATS
from cmtp.transforms.survivor_state import SettleSurvivors

PAIRS, REJECTS = "pairs", "rejects"


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
    as `(rows, those rejects)`. `units`: how many ledger units a kept row holds (1 a row; a labeled record holds
    its judgments), so a stage that regroups rows still balances in its own units.
    """

    label: str
    transform: beam.PTransform
    dedup_steps: int = 0
    reads: Optional[str] = None
    units: Optional[Callable[[object], int]] = None
    kept: str = PAIRS  # the name of its kept output: "records" for assembly, whose kept rows are records


class Clean(beam.PTransform):
    """Fold `stages` over the rows: the rows the last stage kept (`pairs`), every stage's rejects, dedup ones
    settled against their survivor's fate (`rejects`), and every stage's counts plus its ledger events (`stats`)."""

    def __init__(self, stages: list[Stage]):
        super().__init__()
        labels = [stage.label for stage in stages]
        if len(set(labels)) != len(labels):
            raise ValueError(f"stage labels repeat: {labels}")
        self._stages = stages

    def expand(self, rows):
        rejects, late, stats, rejects_of = [], [], [], {}
        hops = 0  # dedup steps so far: rejects from the first one on settle their survivors
        stats.append(_counted(rows, "Cleaning in", None, "", "in"))
        for stage in self._stages:
            given = rows if stage.reads is None else (rows, rejects_of[stage.reads])
            out = given | stage.label >> stage.transform
            rows, rejects_of[stage.label] = out[stage.kept], out[REJECTS]
            hops += stage.dedup_steps
            (late if hops else rejects).append(out[REJECTS])
            stats.append(out[STATS])
            stats.append(_counted(rows, f"{stage.label} kept", stage.units, stage.label, "kept"))
            stats.append(_counted(out[REJECTS], f"{stage.label} rejected", None, stage.label, "rejected"))
        if late:
            settled = late | "FromDedupOn" >> beam.Flatten() | "SettleSurvivors" >> SettleSurvivors(hops)
            rejects.append(settled[REJECTS])
            stats.append(settled[STATS])
        return Staged(rows, rejects | "Rejects" >> beam.Flatten(pipeline=rows.pipeline),
                      stats | "Stats" >> beam.Flatten())


class OnlyWhere(beam.PTransform):
    """A stage applied to the rows `where` holds for; the other rows pass it untouched (kept)."""

    def __init__(self, where: Callable[[object], bool], stage: beam.PTransform):
        super().__init__()
        self._where, self._stage = where, stage

    def expand(self, rows):
        where = self._where
        rest, chosen = rows | "Where" >> beam.Partition(lambda row, _: int(bool(where(row))), 2)
        out = chosen | "Apply" >> self._stage
        return Staged((out[PAIRS], rest) | "WithTheRest" >> beam.Flatten(), out[REJECTS], out[STATS])


def stage_order(stages: list[Stage]) -> list[str]:
    """The labels in the order the fold runs them: the report's ledger lists its stages so."""
    return [stage.label for stage in stages]


def _counted(rows: beam.PCollection, label: str, units: Optional[Callable[[object], int]], stage: str,
             what: str) -> beam.PCollection:
    """((STAGE, "", stage, what), n): the rows (or their units) of one stage's output, summed before any Flatten.
    The fold's input is counted as the first stage's `in`; every later stage's `in` is the one before's kept."""
    units = units or (lambda row: 1)
    return (
        rows
        | f"{label} units" >> beam.Map(lambda row: units(row))
        | f"{label} sum" >> beam.CombineGlobally(sum)
        | f"{label} event" >> beam.Map(lambda n: ((STAGE, "", stage, what), n))
    )
