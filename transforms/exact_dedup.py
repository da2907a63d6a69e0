"""Exact dedup: pairs whose normalized (query, passage) are identical keep one survivor (stage `dedup`)."""
from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Pair, Reject
from cmtp.transforms.survivor import SurvivorOrder

REJECTS = "rejects"


def content_key(pair: Pair) -> bytes:
    return hashlib.blake2b(f"{pair.query}\x1f{pair.passage}".encode("utf-8"), digest_size=16).digest()


class _KeepOne(beam.DoFn):
    def __init__(self, order: SurvivorOrder):
        self._order = order

    def process(self, element):
        _, pairs = element
        best = min(pairs, key=self._order.key)  # the grouped iterable is re-iterable and may be lazily paged
        best_key = self._order.key(best)
        for pair in pairs:
            if self._order.key(pair) == best_key:
                yield pair
            else:
                Metrics.counter("dedup", "exact_duplicate").inc()
                yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                    id=pair.id, source=pair.source, stage="dedup", reason="exact_duplicate",
                    detail=f"same text as {best.id} ({best.file} {best.position})", file=pair.file,
                    position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage))


class ExactDedup(beam.PTransform):
    """Pairs -> one survivor per identical (query, passage) (main) and the other copies (`rejects`)."""

    def __init__(self, order: SurvivorOrder):
        super().__init__()
        self._order = order

    def expand(self, pairs):
        return (
            pairs
            | "ByContent" >> beam.Map(lambda pair: (content_key(pair), pair))
            | "Group" >> beam.GroupByKey()
            | "KeepOne" >> beam.ParDo(_KeepOne(self._order)).with_outputs(REJECTS, main="pairs")
        )
