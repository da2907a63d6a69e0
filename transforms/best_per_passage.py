"""One pair per passage, chosen after scoring: every pair of a passage is scored and the passage keeps its best
passing pair, so no passage is lost because the pair dedup chose first failed the scorer (stage `dedup`, reason
`duplicate_passage`).

Near dedup (scope passage) still runs before the scorer, on one pair per passage (`FirstPerPassage`: the best by
SurvivorOrder); the other pairs of each passage go round it to the scorer. When near dedup drops a passage's
first pair, `BestPerPassage` drops the passage's other pairs too, naming that first pair (its own reject says
which near duplicate stands for it).
"""
from __future__ import annotations

import math

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Pair, Reject
from cmtp.transforms.exact_dedup import content_key
from cmtp.transforms.report import STATS
from cmtp.transforms.shards import GroupInShards
from cmtp.transforms.stage import ASIDE, PAIRS, REJECTS
from cmtp.transforms.survivor import SurvivorOrder

REASON = "duplicate_passage"


class _First(beam.DoFn):
    def __init__(self, order: SurvivorOrder):
        self._order = order

    def process(self, element):
        pairs = list(element[1])  # one passage's pairs; identity below needs one materialized copy
        first = min(pairs, key=self._order.key)
        yield first
        for pair in pairs:
            if pair is not first:
                yield beam.pvalue.TaggedOutput(ASIDE, pair)


class FirstPerPassage(beam.PTransform):
    """A stage: pairs -> the best pair of each passage by SurvivorOrder (`pairs`, for near dedup) and the passage's
    other pairs (`aside`, for the scorer); it rejects nothing."""

    def __init__(self, order: SurvivorOrder, within_source: bool = False, shards: int = 16):
        super().__init__()
        self._order, self._within, self._shards = order, within_source, shards

    def expand(self, pairs):
        within = self._within
        return (
            pairs
            | "ByPassage" >> beam.Map(lambda pair: (content_key(pair, "passage", within), pair))
            | "Group" >> GroupInShards(self._shards)
            | "First" >> beam.ParDo(_First(self._order)).with_outputs(ASIDE, REJECTS, STATS, main=PAIRS)
        )


def strength(pair: Pair) -> tuple[float, float]:
    """How well the pair's query matches its passage, best first when negated: the consistency margin, then the
    cosine (unscored pairs tie, and SurvivorOrder decides)."""
    return (pair.margin if pair.margin is not None else -math.inf, pair.score if pair.score is not None else -math.inf)


def _how(best: Pair, pair: Pair) -> str:
    where = f"{best.id} ({best.file} {best.position})"
    if best.margin is not None and pair.margin is not None:
        return f"same passage as {where}, whose query matches it better (margin {best.margin:+.4f} vs {pair.margin:+.4f})"
    if best.score is not None and pair.score is not None:
        return f"same passage as {where}, whose query matches it better (cosine {best.score:.4f} vs {pair.score:.4f})"
    return f"same text as {where}"


class _Choose(beam.DoFn):
    def __init__(self, order: SurvivorOrder):
        self._order = order

    def _key(self, pair: Pair) -> tuple:
        margin, score = strength(pair)
        return (-margin, -score, *self._order.key(pair))

    def process(self, element):
        _, grouped = element
        pairs = list(grouped["pairs"])
        if not pairs:
            return
        set_aside = min(grouped["set_aside"], default=None)  # the passage's first pair, dropped by near dedup
        best = None if set_aside is not None else min(pairs, key=self._key)
        for pair in pairs:
            if pair is best:
                yield pair
                continue
            Metrics.counter("dedup", REASON).inc()
            if set_aside is not None:
                first, file, position = set_aside
                survivor, detail = first, f"same text as {first} ({file} {position})"
            else:
                survivor, detail = best.id, _how(best, pair)
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair.id, source=pair.source, stage="dedup", reason=REASON, detail=detail, file=pair.file,
                position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage, score=pair.score,
                rank=pair.rank, margin=pair.margin, survivor=survivor))


class BestPerPassage(beam.PTransform):
    """Scored pairs, or (scored pairs, near-dedup rejects of FirstPerPassage's pairs) -> the best pair of each
    passage (`pairs`) and the others (`rejects`, `duplicate_passage`, naming the pair kept in their place)."""

    def __init__(self, order: SurvivorOrder, within_source: bool = False, shards: int = 16):
        super().__init__()
        self._order, self._within, self._shards = order, within_source, shards

    def expand(self, inputs):
        pairs, set_aside = inputs if isinstance(inputs, tuple) else (inputs, None)
        within = self._within
        keyed = {"pairs": pairs | "ByPassage" >> beam.Map(lambda pair: (content_key(pair, "passage", within), pair))}
        if set_aside is None:
            keyed["set_aside"] = pairs.pipeline | "NoneSetAside" >> beam.Create([])
        else:
            keyed["set_aside"] = set_aside | "SetAsideByPassage" >> beam.Map(
                lambda r: (content_key(r, "passage", within), (r.id, r.file, r.position)))
        return (
            keyed
            | "Group" >> GroupInShards(self._shards)
            | "Choose" >> beam.ParDo(_Choose(self._order)).with_outputs(REJECTS, STATS, main=PAIRS)
        )
