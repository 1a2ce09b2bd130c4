"""The dense reader's sentence embeddings, kept on disk between questions and runs.

A dense reader (dense.py) embeds question and candidate apart, and the candidate side
("header\\nsentence") does not depend on the question: each sentence is embedded once
and looked up after.  One SQLite file per reader, named by its weights hash, maps
the SHA-256 of a candidate text to its float32 vector, so a retrained or damaged
artifact (another hash) never reads another reader's vectors, and an edited sentence
(another text) is embedded afresh.

    store = VectorStore(model_cache() / "reader-vectors", weights_sha256, dim=384)
    store.get(["Final\\nAnn won."])          # {} the first time
    store.put({"Final\\nAnn won.": vec})
    store.get(["Final\\nAnn won."])          # {"Final\\nAnn won.": vec}

A file that cannot be opened or read (read-only folder, damaged database) turns the
store off with one logged warning: the reader then embeds every candidate each time,
as it did before, never an error.

It does not embed (dense.py).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger("citechat")

_TABLE = "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)"
#: SQLite's default limit on bound parameters is 999 in old builds
_CHUNK = 500


def text_key(text: str) -> str:
    """The key of a candidate text: its SHA-256, hex.

    >>> text_key("a")[:12]
    'ca978112ca1b'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorStore:
    """Candidate text -> embedding, for the reader whose weights hash is ``weights``;
    thread-safe (one connection behind a lock)."""

    def __init__(self, folder: Path, weights: str, dim: int) -> None:
        if not weights:
            raise ValueError("weights must be the reader's weights hash, got ''")
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.path = folder / f"{weights[:32]}.sqlite"
        self.dim = dim
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(_TABLE)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            self._off(exc)

    @property
    def usable(self) -> bool:
        return self._db is not None

    def _off(self, exc: Exception) -> None:
        log.warning(
            "reader vector store %s not used (%s: %s); sentences are embedded per question",
            self.path,
            exc.__class__.__name__,
            exc,
        )
        if self._db is not None:
            self._db.close()
        self._db = None

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors among ``texts`` (missing ones are left out)."""
        keys = {text_key(t): t for t in texts}
        out: dict[str, np.ndarray] = {}
        with self._lock:
            if self._db is None:
                return out
            try:
                todo = list(keys)
                for lo in range(0, len(todo), _CHUNK):
                    part = todo[lo : lo + _CHUNK]
                    marks = ",".join("?" * len(part))
                    rows = self._db.execute(
                        f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part
                    ).fetchall()
                    for key, blob in rows:
                        vec = np.frombuffer(blob, dtype=np.float32)
                        if vec.shape == (self.dim,):  # a short row is a damaged one: re-embed
                            out[keys[key]] = vec
            except sqlite3.Error as exc:
                self._off(exc)
                return {}
        return out

    def put(self, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [
            (text_key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in vectors.items()
        ]
        with self._lock:
            if self._db is None or not rows:
                return
            try:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                self._db.commit()
            except sqlite3.Error as exc:
                self._off(exc)

    def __len__(self) -> int:
        with self._lock:
            if self._db is None:
                return 0
            return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
