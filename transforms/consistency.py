"""Consistency filtering: a pair is kept when its own passage ranks in the top k for its query among a fixed pool
of other passages of the run (E5's CCPairs filter), instead of when its cosine clears an absolute cut.

An absolute cosine means something different for every model and every kind of pair: a question with little word
overlap with its paragraph scores low in absolute terms yet still beats nearly every other passage. The rank asks
the relative question.

- The pool: `pool_size` distinct passages of the pairs that reach the scorer, the ones with the smallest seeded
  hash (`PoolSample`, a CombineFn). The sample is a function of the set of pairs, not of their order or bundling,
  so it is the same on every runner. Each pool passage carries the queries it is paired with in the run (up to
  `QUERIES_PER_PASSAGE`), so a query is never ranked against its own other positives.
- The score of (query, passage): the cosine of their embeddings plus `lexical_weight` times the share of the
  query's idf mass (character bigrams, idf from the pool) found in the passage. Dense embeddings of
  small models miss named entities and numbers ("沃夫424"); the lexical term is the classic hybrid fix, computed
  against the pool with one sparse product per batch.
- rank = 1 + the pool passages that score strictly higher for the query; margin = own score - the best pool
  passage's. A pool passage identical to the pair's own passage or to its query, or paired with the same query, is
  not a rival.

Ranks depend only on the pair and the pool, never on which other pairs share its batch; the one exception is
float32 noise: an embedding's last bits move with the batch it was encoded in, so a pool passage that ties the
pair's own score within ~1e-7 may fall on either side (one pair in about 3,000 against 2,048 rivals moved by one
rank between a local and a multi-process run).
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Optional, Sequence

import apache_beam as beam
import numpy as np
from scipy import sparse

from cmtp.transforms.normalize import dedup_form

QUERIES_PER_PASSAGE = 16  # a pool passage's own queries kept to exclude them; a passage with more is rare
_NOT_WORD = re.compile(r"[\W_]+")


def text_key(text: str) -> bytes:
    """A text's identity as exact dedup sees it (punctuation width folded)."""
    return hashlib.blake2b(dedup_form(text).encode("utf-8"), digest_size=12).digest()


def grams(text: str) -> set[str]:
    """Character bigrams of the text, lowercased, spaces and punctuation removed (a one-character text is its own
    gram). Bigrams beat unigrams plus bigrams, and adding trigrams, on real pairs (docs/quality.md)."""
    chars = _NOT_WORD.sub("", text.lower())
    return {chars[i:i + 2] for i in range(len(chars) - 1)} or {chars}


class PoolEntry(NamedTuple):
    rank_key: bytes  # blake2b(seed, passage key): the pool is the pool_size smallest
    passage: str
    queries: tuple[bytes, ...]  # keys of the queries the passage is paired with (the smallest few)


class PoolSample(beam.CombineFn):
    """Pairs -> the `size` distinct passages with the smallest seeded hash, each with its queries' keys, sorted.

    The accumulator is a dict of at most 2 x size entries, pruned to the smallest `size`: associative and
    commutative, so any bundling or merge order gives the same pool.
    """

    def __init__(self, size: int, seed: int):
        self._size, self._seed = size, seed

    def create_accumulator(self) -> dict:
        return {}

    def _prune(self, accumulator: dict) -> dict:
        if len(accumulator) <= 2 * self._size:
            return accumulator
        return dict(sorted(accumulator.items())[:self._size])

    def add_input(self, accumulator: dict, pair) -> dict:
        passage_key = text_key(pair.passage)
        rank_key = hashlib.blake2b(passage_key, digest_size=12, key=str(self._seed).encode()).digest()
        entry = accumulator.get(rank_key)
        query = text_key(pair.query)
        if entry is None:
            accumulator[rank_key] = (pair.passage, (query,))
        elif query not in entry[1]:
            # identical passages of two pairs may differ in punctuation width: keep the smaller text, the same on any runner
            accumulator[rank_key] = (min(entry[0], pair.passage), tuple(sorted({*entry[1], query}))[:QUERIES_PER_PASSAGE])
        return self._prune(accumulator)

    def merge_accumulators(self, accumulators: Iterable[dict]) -> dict:
        merged: dict = {}
        for accumulator in accumulators:
            for rank_key, (passage, queries) in accumulator.items():
                if rank_key in merged:
                    other, known = merged[rank_key]
                    merged[rank_key] = (min(other, passage), tuple(sorted({*known, *queries}))[:QUERIES_PER_PASSAGE])
                else:
                    merged[rank_key] = (passage, queries)
            merged = self._prune(merged)
        return merged

    def extract_output(self, accumulator: dict) -> list[PoolEntry]:
        return [PoolEntry(rank_key, passage, queries)
                for rank_key, (passage, queries) in sorted(accumulator.items())[:self._size]]

    def of(self, pairs: Iterable) -> list[PoolEntry]:
        """The pool of these pairs (anything with `query` and `passage`), in one process: what the CombineFn gives."""
        accumulator = self.create_accumulator()
        for pair in pairs:
            accumulator = self.add_input(accumulator, pair)
        return self.extract_output(accumulator)


@dataclass
class Pool:
    """The pool's passage embeddings and lexical index, built once (`Pool.build`) and shared by every batch."""

    vectors: np.ndarray  # (n, dim) float32, L2-normalized
    passage_index: dict  # passage key -> row
    query_rows: dict  # query key -> rows of the pool passages paired with that query
    vocabulary: dict  # gram -> column
    idf: np.ndarray  # per column
    unseen_idf: float  # idf of a gram no pool passage holds
    matrix: sparse.csr_matrix  # (n, columns) 1 where the passage holds the gram

    @classmethod
    def build(cls, entries: Sequence[PoolEntry], vectors: np.ndarray) -> "Pool":
        vocabulary: dict = {}
        rows, columns = [], []
        passage_index, query_rows = {}, {}
        for row, entry in enumerate(entries):
            passage_index[text_key(entry.passage)] = row
            for query in entry.queries:
                query_rows.setdefault(query, []).append(row)
            for gram in grams(entry.passage):
                rows.append(row)
                columns.append(vocabulary.setdefault(gram, len(vocabulary)))
        n = len(entries)
        matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                                   shape=(n, len(vocabulary)))
        frequency = np.asarray(matrix.sum(axis=0)).ravel()
        idf = np.log1p(n / (frequency + 0.5)).astype(np.float32)
        return cls(np.asarray(vectors, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 1), np.float32),
                   passage_index, query_rows, vocabulary, idf, float(math.log1p(n / 0.5)), matrix)

    def __len__(self) -> int:
        return len(self.passage_index)

    def query_weights(self, query: str) -> tuple[dict, float]:
        """The query's grams with their idf, and their sum (a gram no pool passage holds weighs the most)."""
        weights = {}
        for gram in grams(query):
            column = self.vocabulary.get(gram)
            weights[gram] = self.unseen_idf if column is None else float(self.idf[column])
        return weights, sum(weights.values()) or 1.0

    @staticmethod
    def lexical(query_weights: tuple[dict, float], passage: str) -> float:
        """Share of the query's idf mass (its `query_weights`) whose grams the passage holds."""
        weights, total = query_weights
        chars = _NOT_WORD.sub("", passage.lower())
        return sum(weight for gram, weight in weights.items() if gram in chars) / total

    def lexical_against_pool(self, query_weights: Sequence[tuple[dict, float]]) -> np.ndarray:
        """(queries, len(pool)): each query's lexical score against every pool passage, one sparse product."""
        rows, columns, values, totals = [], [], [], []
        for i, (weights, total) in enumerate(query_weights):
            for gram, weight in weights.items():
                column = self.vocabulary.get(gram)
                if column is not None:
                    rows.append(i)
                    columns.append(column)
                    values.append(weight)
            totals.append(total)
        weighted = sparse.csr_matrix((np.asarray(values, dtype=np.float32), (rows, columns)),
                                     shape=(len(query_weights), len(self.vocabulary)))
        return (weighted @ self.matrix.T).toarray() / np.asarray(totals, np.float32)[:, None]


class Ranked(NamedTuple):
    cosine: np.ndarray  # (n,) each pair's cosine
    rank: np.ndarray  # (n,) int: 1 + pool passages scoring strictly higher
    margin: np.ndarray  # (n,) own score - the best rival's (nan when no rival is left)


def rank_in_pool(query_vectors: np.ndarray, passage_vectors: np.ndarray, queries: Sequence[str],
                 passages: Sequence[str], pool: Pool, lexical_weight: float) -> Ranked:
    """Each pair's cosine, and its passage's rank and margin for its query against the pool."""
    query_vectors = np.asarray(query_vectors, dtype=np.float32)
    cosine = np.einsum("ij,ij->i", query_vectors, np.asarray(passage_vectors, dtype=np.float32)).astype(np.float64)
    own = cosine.copy()
    rivals = (query_vectors @ pool.vectors.T).astype(np.float64) if len(pool) else np.zeros((len(queries), 0))
    if lexical_weight:
        weights = [pool.query_weights(query) for query in queries]
        own += lexical_weight * np.array([pool.lexical(w, p) for w, p in zip(weights, passages)])
        if len(pool):
            rivals += lexical_weight * pool.lexical_against_pool(weights)
    for i, (query, passage) in enumerate(zip(queries, passages)):
        query_key = text_key(query)
        # not rivals: the passage itself, the query's own text (sentence-pair data: a query is another pair's
        # passage), and passages the run pairs with this query
        for row in (pool.passage_index.get(text_key(passage)), pool.passage_index.get(query_key),
                    *pool.query_rows.get(query_key, ())):
            if row is not None:
                rivals[i, row] = -np.inf
    rank = 1 + (rivals > own[:, None]).sum(axis=1)
    best = rivals.max(axis=1, initial=-np.inf)
    margin = np.where(np.isfinite(best), own - best, np.nan)
    return Ranked(cosine, rank.astype(np.int64), margin)


def margin_or_none(value: float) -> Optional[float]:
    return None if math.isnan(value) else float(value)
