"""Near-duplicate removal: MinHash signatures over character n-grams, LSH bands grouped by key.

A pair is dropped when it shares an LSH bucket with a better pair (SurvivorOrder) whose
estimated Jaccard similarity to it reaches the threshold; its reject names the best such pair.
The LSH shape favours recall (candidates are verified afterwards, so a false candidate costs
one comparison while a missed one costs a duplicate in the output). Every step is keyed: the largest thing a worker
holds is one bucket's members (streamed), never the dataset. This is one pass of the
"drop if a better neighbour exists" rule, not full connected components: with A better than B
better than C, the chain A~B~C keeps A alone, but A~C plus B~C keeps A and B (they share no bucket).
"""
from __future__ import annotations

import hashlib
from typing import Iterable

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from cmtp.schemas import Pair, Reject
from cmtp.transforms.survivor import SurvivorOrder

REJECTS = "rejects"


FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive and negative areas around the Jaccard threshold.

    Equal weights (datasketch's default) make only ~40% of pairs exactly at the threshold candidates
    (0.8, 128 permutations -> 9x13); 0.1/0.9 gives 14x9: ~87% at 0.8, ~97% at 0.85, and the extra
    candidates below the threshold are removed by verification.
    """
    return _optimal_param(threshold, num_perm, FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)


def shingles(text: str, n: int) -> set[str]:
    """Character n-grams of the text without whitespace; a text shorter than n is its own single shingle
    (so it can only match an identical text)."""
    compact = "".join(text.lower().split())
    if len(compact) <= n:
        return {compact}
    return {compact[i:i + n] for i in range(len(compact) - n + 1)}


class MinHasher:
    """MinHash signatures with fixed permutations, cut into LSH band keys."""

    def __init__(self, ngram: int, num_perm: int, threshold: float, seed: int):
        self.ngram, self.num_perm, self.seed, self.threshold = ngram, num_perm, seed, threshold
        self.bands, self.rows = lsh_shape(threshold, num_perm)
        template = MinHash(num_perm=num_perm, seed=seed)  # drawing the permutations once is most of the set-up cost
        self._permutations, self._scheme = template.permutations, template.scheme

    def signature(self, text: str) -> np.ndarray:
        minhash = MinHash(num_perm=self.num_perm, seed=self.seed, permutations=self._permutations,
                          scheme=self._scheme)
        minhash.update_batch([s.encode("utf-8") for s in shingles(text, self.ngram)])
        return minhash.hashvalues

    def band_keys(self, values: np.ndarray) -> list[bytes]:
        return [
            bytes([band]) + hashlib.blake2b(values[band * self.rows:(band + 1) * self.rows].tobytes(),
                                            digest_size=12).digest()
            for band in range(self.bands)
        ]


class _BandKeys(beam.DoFn):
    def __init__(self, hasher: MinHasher, order: SurvivorOrder, scope: str):
        self._hasher, self._order, self._scope = hasher, order, scope

    def process(self, pair: Pair):
        text = pair.passage if self._scope == "passage" else pair.query if self._scope == "query" else (
            pair.query + "\n" + pair.passage)
        rank = self._order.key(pair)
        signature = self._hasher.signature(text)
        for key in self._hasher.band_keys(signature):
            yield key, (rank, signature)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


class _Losers(beam.DoFn):
    """For a bucket with several members: (member id, best member's rank) for each member but the best
    whose estimated Jaccard with the best reaches the threshold."""

    def __init__(self, threshold: float):
        self._threshold = threshold

    def process(self, bucket: tuple[bytes, Iterable[tuple]]):
        _, members = bucket
        best_rank, best_signature = min(members, key=lambda member: member[0])
        for rank, signature in members:
            if rank != best_rank and estimated_jaccard(signature, best_signature) >= self._threshold:
                yield rank[3], best_rank  # rank[3] is the pair id (SurvivorOrder.key)


class _Decide(beam.DoFn):
    def process(self, element):
        _, grouped = element
        better = list(grouped["better"])
        for pair in grouped["pair"]:
            if not better:
                yield pair
                continue
            best = min(better)
            Metrics.counter("dedup", "near_duplicate").inc()
            yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                id=pair.id, source=pair.source, stage="dedup", reason="near_duplicate",
                detail=f"near duplicate of {best[3]} ({best[4]} {best[5]})", file=pair.file, position=pair.position,
                kind=pair.kind, query=pair.query, passage=pair.passage))


class NearDedup(beam.PTransform):
    """Pairs -> pairs with no better near-duplicate (main) and near-duplicate rejects (`rejects`).

    Expects ids to be unique, which exact dedup guarantees (the id is a hash of the content).
    """

    def __init__(self, order: SurvivorOrder, ngram: int, num_perm: int, threshold: float, seed: int,
                 scope: str = "passage"):
        super().__init__()
        self._order = order
        self._hasher = MinHasher(ngram, num_perm, threshold, seed)
        self._scope = scope

    def expand(self, pairs):
        better = (
            pairs
            | "BandKeys" >> beam.ParDo(_BandKeys(self._hasher, self._order, self._scope))
            | "Buckets" >> beam.GroupByKey()
            | "Losers" >> beam.ParDo(_Losers(self._hasher.threshold))
            | "BestPerLoser" >> beam.CombinePerKey(min)
        )
        by_id = pairs | "ById" >> beam.Map(lambda pair: (pair.id, pair))
        return (
            {"pair": by_id, "better": better}
            | "Join" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_Decide()).with_outputs(REJECTS, main="pairs")
        )
