"""Exact dedup: pairs whose normalized (query, passage), or whose normalized passage, are identical keep one
survivor (stage `dedup`)."""
from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.metrics import Metrics

from cmtp.schemas import Pair, Reject
from cmtp.transforms.normalize import dedup_form
from cmtp.transforms.report import STATS
from cmtp.transforms.shards import GroupInShards
from cmtp.transforms.stage import PAIRS, REJECTS
from cmtp.transforms.survivor import SurvivorOrder


def content_key(pair: Pair, scope: str = "pair", within_source: bool = False) -> bytes:
    """The hash copies share: of the texts with punctuation width folded (normalization keeps `，` as written, and
    real answers are written once with `，` and once with `,`)."""
    text = dedup_form(pair.passage) if scope == "passage" else f"{dedup_form(pair.query)}\x1f{dedup_form(pair.passage)}"
    if within_source:
        text = f"{pair.source}\x1f{text}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class _KeepOne(beam.DoFn):
    """A group of identical texts -> its best pair, and every other pair as a reject naming it.

    Copies that tie with the best on the whole survivor key (one id from one record, e.g. a DuReader record
    whose two selected documents hold one paragraph) are the same row twice: one is kept, the others rejected.
    """

    def __init__(self, order: SurvivorOrder, reason: str):
        self._order, self._reason = order, reason

    def process(self, element):
        _, pairs = element
        best = min(pairs, key=self._order.key)  # the grouped iterable is re-iterable and may be lazily paged
        best_key = self._order.key(best)
        kept = False
        for pair in pairs:
            copy = self._order.key(pair) == best_key
            if copy and not kept:
                kept = True
                yield pair
                continue
            Metrics.counter("dedup", self._reason).inc()
            where = f"({best.file} {best.position})"
            detail = (f"another copy of {best.id} from the same record {where}" if copy
                      else f"same text as {best.id} {where}")
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair.id, source=pair.source, stage="dedup", reason=self._reason, detail=detail, file=pair.file,
                position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage, survivor=best.id))


class ExactDedup(beam.PTransform):
    """Pairs -> one survivor per identical (query, passage), or per identical passage with scope "passage" (main),
    and the other copies (`rejects`, reason `exact_duplicate` or `duplicate_passage`). `shards`: how many groups the
    pairs move in (transforms/shards.py `GroupInShards`)."""

    def __init__(self, order: SurvivorOrder, scope: str = "pair", within_source: bool = False, shards: int = 16):
        super().__init__()
        self._order, self._scope, self._within, self._shards = order, scope, within_source, shards

    def expand(self, pairs):
        scope, within = self._scope, self._within
        reason = "duplicate_passage" if scope == "passage" else "exact_duplicate"
        return (
            pairs
            | "ByContent" >> beam.Map(lambda pair: (content_key(pair, scope, within), pair))
            | "Group" >> GroupInShards(self._shards)
            | "KeepOne" >> beam.ParDo(_KeepOne(self._order, reason)).with_outputs(REJECTS, STATS, main=PAIRS)
        )
