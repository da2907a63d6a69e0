"""Dedup rejects settled against their survivor's final state: the survivor a dedup step names can itself be
dropped later (by a later dedup step, the semantic filter, record assembly), so each dedup reject follows its
survivor's trail to the pair that stands for it in the output, or says where that trail was dropped."""
from __future__ import annotations

from typing import Iterable, Optional

import apache_beam as beam

from cmtp.schemas import Reject
from cmtp.transforms.flatten_rows import FlattenRows
from cmtp.transforms.report import STATS, CountingDoFn
from cmtp.transforms.shards import GroupInShards

SETTLED = "settled"
SHARDS = 16  # the rejects are a fraction of the pairs; each hop moves them in this many groups
DROPPED = "dedup_survivor_dropped"


def _fate(reject: Reject) -> tuple[str, Reject]:
    """(id, the reject without its texts): what became of that id, small enough to shuffle once per hop."""
    return reject.id, reject._replace(query=None, passage=None, text=None)


def _first(fates: Iterable[Reject]) -> Optional[Reject]:
    """One fate per id (an id is dropped once); the smallest location settles a tie deterministically."""
    return min(fates, key=lambda r: (r.stage, r.reason, r.file, r.position, r.detail), default=None)


def _settle(trail: tuple[Reject, ...], pointer: str, fate: Optional[Reject]) -> Reject:
    """The dedup reject `trail[0]`, whose survivor was dropped by each later dedup reject of `trail` in turn, with
    the end of the trail: `pointer` kept (`fate` None) or dropped by `fate`."""
    reject, hops = trail[0], trail[1:]
    if not hops and fate is None:
        return reject
    steps = [f"{hop.id} was then dropped as {hop.reason} of {hop.survivor}" for hop in hops]
    end = (f"{pointer} is kept" if fate is None
           else f"{fate.id} was then dropped at {fate.stage}: {fate.reason} ({fate.detail})")
    return reject._replace(detail="; ".join([reject.detail, *steps, end]), survivor=pointer if fate is None else None)


class _Follow(CountingDoFn):
    """One hop: dedup rejects keyed by the survivor they point at meet that survivor's own reject, if it has one."""

    def process(self, element):
        pointer, grouped = element
        fate = _first(grouped["fate"])
        for trail in grouped["trail"]:
            if fate is not None and fate.stage == "dedup":
                yield fate.survivor, (*trail, fate)  # its survivor was deduped in turn: follow that one's survivor
                continue
            yield beam.pvalue.TaggedOutput(SETTLED, _settle(trail, pointer, fate))
            self.count("", DROPPED, int(fate is not None))


class SettleSurvivors(beam.PTransform):
    """Rejects of dedup and of every later stage -> the same rejects, each dedup one naming the pair kept in its
    place or saying at which stage its survivor was dropped (`rejects`), and how many were (`stats`).

    `hops` is the number of dedup steps: a survivor is only ever deduped by a later step, so a trail ends within
    that many hops. A reject whose survivor is its own id (an identical copy) is not that survivor's fate.
    """

    def __init__(self, hops: int):
        super().__init__()
        self._hops = hops

    def expand(self, rejects):
        later, dedup = rejects | "ByStage" >> beam.Partition(lambda r, _: int(r.stage == "dedup"), 2)
        fates = (
            (later, dedup | "NotCopies" >> beam.Filter(lambda r: r.survivor != r.id))
            | "Fates" >> FlattenRows()
            | "FateById" >> beam.Map(_fate)
        )
        trails = dedup | "BySurvivor" >> beam.Map(lambda r: (r.survivor, (r,)))
        settled, stats = [later], []
        for hop in range(self._hops):
            followed = (
                {"trail": trails, "fate": fates}
                | f"Join{hop}" >> GroupInShards(SHARDS)
                | f"Follow{hop}" >> beam.ParDo(_Follow()).with_outputs(SETTLED, STATS, main="trails")
            )
            trails = followed.trails  # empty after the last hop; a reject left in it would unbalance the report
            settled.append(followed[SETTLED])
            stats.append(followed[STATS])
        return {"rejects": settled | "Settled" >> FlattenRows(),
                STATS: stats | "Counts" >> beam.Flatten(pipeline=rejects.pipeline)}
