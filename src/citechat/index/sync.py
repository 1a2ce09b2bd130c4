"""Bring an index in line with its corpus: build it when missing, update it when
documents changed (only those are re-embedded), rebuild it when damaged.

Runs under the index's writer lock.  Every index, whatever its store, is written
by the streamed build (build.py), the old generation read as files (saved.py).
It does not answer questions (pipeline.py does).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..corpus import load_corpus
from ..embedding import Embedder, load_embedder
from ..errors import IndexDamagedError, IndexError_, IndexFormatError, IndexMismatchError
from .build import UpdateReport, write_streamed
from .generations import current_generation, read_manifest, write_lock
from .manifest import check_compatible, index_stats
from .saved import SavedIndex
from .view import Index

log = logging.getLogger("citechat")


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_index` did.  ``index`` is loaded on first use (``citechat
    index`` needs only ``stats``), or is the generation the sync read to check it."""

    load: Callable[[], Index] = field(repr=False)
    report: UpdateReport | None
    action: str  # "loaded" | "built" | "updated" | "rebuilt"
    skipped: tuple[tuple[str, str], ...] = ()
    #: Index.stats() of the index, without loading it
    stats: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def index(self) -> Index:
        return self.load()


def sync_index(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    optimize: bool = False,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
    current: Index | None = None,
) -> SyncResult:
    """Bring the index at ``settings.index`` in line with ``settings.corpus``.

    ``current``: an index of this folder that the caller has loaded (a server's).
    While it is still the folder's current generation it is checked as it is, not
    read again, and, when the corpus has not changed, it is the result's index.

    ``optimize``: write a generation whose vectors are one array each (segments.py),
    even when the corpus has not changed; nothing is embedded.

    ``progress(total)`` may return a callback that is told how many texts each
    embedding batch covered (the CLI hands in a tqdm bar).

    A damaged index, or one written by another citechat format, is rebuilt
    from the corpus with a logged warning (action "rebuilt"); one built with
    another embedder or chunking raises :class:`IndexMismatchError`, as a
    rebuild would throw away work the user may want back.
    """
    embedder = embedder or load_embedder(settings.embedder)
    skipped: list[tuple[str, str]] = []

    def on_skip(path: Path | str, reason: str) -> None:
        skipped.append((str(path), reason))
        log.warning("skipped %s: %s", path, reason)

    if not Path(settings.corpus).exists():  # before the lock creates the index folder
        load_corpus(settings.corpus)  # raises the one-line error
    with write_lock(settings.index):
        old, action = _open_old(settings, embedder, rebuild, current)
        served = current if old is not None and old.gen == _path(current) else None
        return _sync_streamed(
            settings, embedder, old, action, skipped, on_skip, progress, served, optimize
        )


def _path(index: Index | None) -> Path | None:
    return None if index is None else index.path


def _open_old(
    settings: Settings, embedder: Embedder, rebuild: bool, current: Index | None = None
) -> tuple[SavedIndex | None, str]:
    """The index to update, read as files, and the action if it is rebuilt: None when
    there is none or it must be rebuilt (damaged, or of another format)."""
    if rebuild:
        return None, "rebuilt"
    if current is not None and current.path is not None:
        try:
            live = current_generation(settings.index)
        except IndexError_:
            live = None
        if live is not None and live.resolve() == current.path.resolve():
            check_compatible(current.manifest, embedder, settings, settings.index)
            parts = (
                current.rows,
                current.vectors,
                current.sentence_vectors,
                current.loaded_lexical,
                current.store,
            )
            return SavedIndex.of_loaded(current.path, current.manifest, settings, parts), "built"
    try:
        # its store kept: an index found current is served from this one read
        return SavedIndex.open(settings.index, embedder, settings, keep_store=True), "built"
    except (IndexDamagedError, IndexFormatError) as exc:
        log.warning("%s; rebuilding it from the corpus %s", exc.problem, settings.corpus)
        return None, "rebuilt"
    except IndexMismatchError:
        raise
    except IndexError_:  # none yet: build it
        return None, "built"


def _sync_streamed(
    settings: Settings,
    embedder: Embedder,
    old: SavedIndex | None,
    action: str,
    skipped: list[tuple[str, str]],
    on_skip: Callable[[Path | str, str], None],
    progress: Callable[[int, int], Callable[[int], None]] | None,
    served: Index | None = None,
    optimize: bool = False,
) -> SyncResult:
    folder = settings.index
    try:
        report = write_streamed(
            settings, embedder, old, on_skip=on_skip, progress=progress, merge=optimize
        )
    finally:
        if old is not None:
            old.close()
    if report is None:
        # the generation read to check it is the one to serve: it is not opened again
        assert old is not None
        current = served or Index.from_saved(old, embedder)
        return SyncResult(lambda: current, None, "loaded", tuple(skipped), current.stats())
    load = functools.partial(Index.load, folder, embedder, settings)
    stats = index_stats(read_manifest(current_generation(folder)))
    return SyncResult(load, report, "updated" if old else action, tuple(skipped), stats)
