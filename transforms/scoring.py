"""Semantic filter: cosine of the two sides' sentence embeddings, batched, with the model loaded once per worker.

Scoring and deciding are apart: every scored pair keeps its `score` and `scorer`, kept or not, so a
user can re-threshold and plot. Inside a batch, texts are de-duplicated per role, sorted by length and
encoded in slices (less padding for transformer backends), then put back in order. A CUDA
out-of-memory error halves the slice and retries it, down to one text, instead of failing the bundle.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from cmtp.schemas import Pair, Reject
from cmtp.transforms.embedders import Embedder, load_embedder

REJECTS = "rejects"


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


def cosine_scores(embedder: Embedder, queries: Sequence[str], passages: Sequence[str], slice_size: int) -> np.ndarray:
    """Cosine of each (query, passage): each distinct text encoded once in its role."""
    vectors = {}
    for role, texts in (("query", queries), ("passage", passages)):
        distinct = sorted(set(texts))
        encoded, slice_size = encode_sorted(embedder, distinct, role, slice_size)
        row = {text: i for i, text in enumerate(distinct)}
        vectors[role] = encoded[[row[text] for text in texts]]
    return np.einsum("ij,ij->i", vectors["query"], vectors["passage"])


class _ScoreBatch(beam.DoFn):
    def __init__(self, backend: str, settings: Mapping[str, object], threshold: float, slice_size: int):
        self._backend, self._settings = backend, dict(settings)
        self._threshold, self._slice_size = threshold, slice_size
        self._handle = shared.Shared()
        self._embedder: Embedder | None = None

    def setup(self):
        # One model per worker process, shared by its threads; never per bundle or element.
        self._embedder = self._handle.acquire(lambda: load_embedder(self._backend, **self._settings))

    def process(self, batch: list[Pair]):
        scores = cosine_scores(self._embedder, [p.query for p in batch], [p.passage for p in batch], self._slice_size)
        Metrics.counter("semantic", "scored").inc(len(batch))
        for pair, score in zip(batch, scores):
            # Float32 results depend on the batch's shapes: the same pair in another batch may differ
            # by ~1e-7, so a decision can only flip for a pair that close to the threshold.
            score = float(score)
            scored = pair._replace(score=score, scorer=self._embedder.name)
            if score >= self._threshold:
                yield scored
            else:
                Metrics.counter("semantic", "below_threshold").inc()
                yield beam.pvalue.TaggedOutput(REJECTS, Reject(
                    id=pair.id, source=pair.source, stage="semantic", reason="below_threshold",
                    detail=f"cosine {score:.4f} < {self._threshold}", file=pair.file, position=pair.position,
                    kind=pair.kind, query=pair.query, passage=pair.passage, score=score))


class SemanticFilter(beam.PTransform):
    """Pairs -> scored pairs at or above the threshold (main) and scored pairs below it (`rejects`).

    `settings` go to the backend (model, device, fp16, max_seq_length, prefixes, threads).
    """

    def __init__(self, backend: str, threshold: float, min_batch_size: int, max_batch_size: int, slice_size: int,
                 settings: Mapping[str, object] | None = None):
        super().__init__()
        self._score = _ScoreBatch(backend, settings or {}, threshold, slice_size)
        self._min_batch, self._max_batch = min_batch_size, max_batch_size

    def expand(self, pairs):
        return (
            pairs
            | "Batch" >> beam.BatchElements(min_batch_size=self._min_batch, max_batch_size=self._max_batch)
            | "Score" >> beam.ParDo(self._score).with_outputs(REJECTS, main="pairs")
        )
