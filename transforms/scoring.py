"""Semantic filter: the two sides' sentence embeddings, batched, with the model loaded once per worker; a pair is
kept by an absolute cosine threshold (the paper's mode) or by its passage's rank in a pool (consistency mode,
transforms/consistency.py).

Scoring and deciding are apart: every scored pair keeps its `score` (the cosine), `scorer`, and in consistency
mode its `rank` and `margin`, kept or not, so a user can re-threshold and plot. Inside a batch, texts are de-duplicated per role, sorted by length and
encoded in slices (less padding for transformer backends), then put back in order. A CUDA
out-of-memory error halves the slice and retries it, down to one text, instead of failing the bundle.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from cmtp.schemas import Pair, Reject
from cmtp.transforms.consistency import Pool, PoolEntry, PoolSample, margin_or_none, rank_in_pool
from cmtp.transforms.embedders import Embedder, load_embedder
from cmtp.transforms.report import STATS
from cmtp.transforms.stage import PAIRS, REJECTS, Staged


def _is_out_of_memory(error: BaseException) -> bool:
    return type(error).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(error)


def _free_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def encode_sorted(embedder: Embedder, texts: Sequence[str], role: str, slice_size: int) -> tuple[np.ndarray, int]:
    """Embeddings of `texts` in their order: encoded shortest first in slices; on out-of-memory the slice halves
    and the same texts are tried again. Returns the vectors and the slice size that worked last."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts, start = [], 0
    while start < len(order):
        chunk = [texts[i] for i in order[start:start + slice_size]]
        try:
            parts.append(embedder.encode(chunk, role))
        except Exception as error:  # noqa: BLE001 - only out-of-memory is retried, the rest re-raised
            if not _is_out_of_memory(error) or slice_size == 1:
                raise
            _free_cuda_cache()
            slice_size = max(1, slice_size // 2)
            continue
        start += len(chunk)
    vectors = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    out = np.empty_like(vectors)
    out[order] = vectors
    return out, slice_size


def embed_pairs(embedder: Embedder, queries: Sequence[str], passages: Sequence[str],
                slice_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-aligned query and passage embeddings: each distinct text encoded once in its role."""
    vectors = []
    for role, texts in (("query", queries), ("passage", passages)):
        distinct = sorted(set(texts))
        encoded, slice_size = encode_sorted(embedder, distinct, role, slice_size)
        row = {text: i for i, text in enumerate(distinct)}
        vectors.append(encoded[[row[text] for text in texts]])
    return vectors[0], vectors[1]


def cosine_scores(embedder: Embedder, queries: Sequence[str], passages: Sequence[str], slice_size: int) -> np.ndarray:
    """Cosine of each (query, passage)."""
    query_vectors, passage_vectors = embed_pairs(embedder, queries, passages, slice_size)
    return np.einsum("ij,ij->i", query_vectors, passage_vectors)


if TYPE_CHECKING:
    from cmtp.pipelines.config import ConsistencyConfig, ScoringConfig

_MODELS = shared.Shared()  # one model per worker process, shared by the pool encoder and the scorer


class _Loaded(beam.DoFn):
    def __init__(self, backend: str, settings: Mapping[str, object], slice_size: int):
        self._backend, self._settings, self._slice_size = backend, dict(settings), slice_size
        self._embedder: Embedder | None = None

    def setup(self):
        # never per bundle or element
        tag = repr((self._backend, sorted(self._settings.items())))
        self._embedder = _MODELS.acquire(lambda: _Handle(load_embedder(self._backend, **self._settings)), tag=tag).embedder


class _Handle:
    """Shared.acquire needs a weak-referenceable object."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder


class _EncodePool(_Loaded):
    """The sampled pool passages -> the Pool (embeddings and lexical index), once; and its size as a stat."""

    def process(self, entries: list[PoolEntry]):
        vectors, _ = encode_sorted(self._embedder, [entry.passage for entry in entries], "passage", self._slice_size)
        yield beam.pvalue.TaggedOutput(STATS, (("scorer_pool_passages", "", "", ""), len(entries)))
        yield Pool.build(entries, vectors)


class _ScoreBatch(_Loaded):
    def __init__(self, backend: str, settings: Mapping[str, object], slice_size: int, threshold: Optional[float],
                 consistency: Optional["ConsistencyConfig"]):
        super().__init__(backend, settings, slice_size)
        self._threshold, self._consistency = threshold, consistency

    def process(self, batch: list[Pair], pool: Optional[Pool] = None):
        queries, passages = [p.query for p in batch], [p.passage for p in batch]
        query_vectors, passage_vectors = embed_pairs(self._embedder, queries, passages, self._slice_size)
        Metrics.counter("semantic", "scored").inc(len(batch))
        if self._consistency is None:
            cosines = np.einsum("ij,ij->i", query_vectors, passage_vectors)
            for pair, cosine in zip(batch, cosines):
                yield from self._by_threshold(pair, float(cosine))
            return
        ranked = rank_in_pool(query_vectors, passage_vectors, queries, passages, pool, self._consistency.lexical_weight)
        for pair, cosine, rank, margin in zip(batch, ranked.cosine, ranked.rank, ranked.margin):
            yield from self._by_rank(pair, float(cosine), int(rank), margin_or_none(margin), len(pool))

    def _by_threshold(self, pair: Pair, cosine: float):
        # Float32 results depend on the batch's shapes: the same pair in another batch may differ by ~1e-7, so a
        # decision can only flip for a pair that close to the threshold.
        if cosine >= self._threshold:
            yield pair._replace(score=cosine, scorer=self._embedder.name)
            return
        Metrics.counter("semantic", "below_threshold").inc()
        yield beam.pvalue.TaggedOutput(REJECTS, _reject(pair, "below_threshold", f"cosine {cosine:.4f} < {self._threshold}",
                                                        cosine))

    def _by_rank(self, pair: Pair, cosine: float, rank: int, margin: Optional[float], pool_size: int):
        if rank <= self._consistency.k:
            yield pair._replace(score=cosine, scorer=self._embedder.name, rank=rank, margin=margin)
            return
        Metrics.counter("semantic", "below_top_k").inc()
        detail = (f"its passage ranks {rank} for its query among {pool_size} pool passages (k {self._consistency.k}); "
                  f"margin {margin:+.4f}, cosine {cosine:.4f}")
        yield beam.pvalue.TaggedOutput(REJECTS, _reject(pair, "below_top_k", detail, cosine, rank, margin))


def _reject(pair: Pair, reason: str, detail: str, cosine: float, rank: Optional[int] = None,
            margin: Optional[float] = None) -> Reject:
    return Reject(id=pair.id, source=pair.source, stage="semantic", reason=reason, detail=detail, file=pair.file,
                  position=pair.position, kind=pair.kind, query=pair.query, passage=pair.passage, score=cosine,
                  rank=rank, margin=margin)


class SemanticFilter(beam.PTransform):
    """Pairs -> scored pairs that pass (`pairs`), scored pairs that do not (`rejects`) and the pool's size (`stats`).

    Threshold mode (the paper's): keep a cosine at or above `threshold`. Consistency mode: keep a pair whose
    passage ranks in the top k for its query among a pool of the run's passages, sampled and encoded once and given
    to every batch as a side input. `scoring` is the config's `scoring` section: its backend and model settings,
    batch sizes, mode and threshold or consistency setting. `spread`: reshuffle the pairs first (when no dedup shuffle comes before the scorer).
    """

    def __init__(self, scoring: "ScoringConfig", spread: bool = False):
        super().__init__()
        self._spread = spread
        self._backend, self._settings, self._slice_size = scoring.backend, scoring.settings(), scoring.slice_size
        threshold = scoring.threshold if scoring.mode == "threshold" else None
        self._consistency = scoring.consistency if scoring.mode == "consistency" else None
        self._score = _ScoreBatch(self._backend, self._settings, self._slice_size, threshold, self._consistency)
        self._min_batch, self._max_batch = scoring.min_batch_size, scoring.max_batch_size

    def expand(self, pairs):
        if self._spread:  # with no shuffle before it, the scorer would be fused behind the readers: a big file's
            pairs = pairs | "Spread" >> beam.Reshuffle()  # pairs all scored by the worker that read it
        batches = pairs | "Batch" >> beam.BatchElements(min_batch_size=self._min_batch, max_batch_size=self._max_batch)
        if self._consistency is None:
            scored = batches | "Score" >> beam.ParDo(self._score).with_outputs(REJECTS, STATS, main=PAIRS)
            return Staged(scored[PAIRS], scored[REJECTS], scored[STATS])
        pool = (
            pairs
            | "SamplePool" >> beam.CombineGlobally(PoolSample(self._consistency.pool_size, self._consistency.seed))
            | "EncodePool" >> beam.ParDo(_EncodePool(self._backend, self._settings, self._slice_size)).with_outputs(
                STATS, main="pool")
        )
        scored = batches | "Score" >> beam.ParDo(self._score, pool=beam.pvalue.AsSingleton(pool.pool)).with_outputs(
            REJECTS, main=PAIRS)
        return Staged(scored[PAIRS], scored[REJECTS], pool[STATS])
