"""A generation's manifest and the one check every reader of a generation runs.

The manifest (``manifest.json``, written last: its presence marks a complete
generation) records the format, the embedder, the chunking, the counts, the
store and the lexical part.  :func:`check_compatible` refuses an index of
another embedder, chunking or format; :class:`GenerationCheck` is what
:meth:`Index.load` and :meth:`SavedIndex.open` both run on what they read: counts
against the manifest, vector shapes, every chunk and sentence inside its
document, the store and the lexical part against the chunks.

It reads no files itself (view.py and saved.py do) and writes none (build.py does).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import IndexDamagedError, IndexFormatError, IndexMismatchError, one_line
from .generations import REBUILD

if TYPE_CHECKING:
    from ..config import Settings
    from ..embedding import Embedder
    from .lexical import LexicalIndex
    from .stores import StoreCheck

#: 2: every generation is written by the streamed build (build.py), with its lexical part
#: and store entry; older ones are rebuilt from the corpus
FORMAT_VERSION = 2
SPLITTER = "blingfire-lines-v1"


def chunking_settings(settings: Settings) -> dict[str, Any]:
    return {
        "max_tokens": settings.chunk_tokens,
        "overlap": settings.chunk_overlap,
        "splitter": SPLITTER,
    }


def check_compatible(
    manifest: dict[str, Any], embedder: Embedder, settings: Settings, folder: Path
) -> None:
    """Raise :class:`IndexMismatchError` unless ``manifest`` fits this embedder and chunking.

    Another format (an index from another citechat version) raises the
    subclass :class:`IndexFormatError`, which ``sync_index`` fixes by rebuilding.
    """
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexFormatError(
            f"the index at {folder} has format {str(manifest.get('format'))[:40]!r} "
            f"(citechat {str(manifest.get('citechat_version'))[:40]}), this citechat "
            f"reads format {FORMAT_VERSION}",
            REBUILD,
        )
    # by name only: embedder.dim would load the model just to compare
    if manifest.get("embedder") != embedder.name:
        raise IndexMismatchError(
            f"the index at {folder} was built with embedder "
            f"{str(manifest.get('embedder'))[:200]!r}, not {embedder.name!r}",
            "run `citechat index --rebuild` or use the same embedder (--embedder)",
        )
    if manifest.get("chunking") != chunking_settings(settings):
        raise IndexMismatchError(
            f"the index at {folder} was built with chunking {str(manifest.get('chunking'))[:200]}, "
            f"not {chunking_settings(settings)}",
            REBUILD,
        )


def damaged(folder: Path, exc: Exception) -> IndexDamagedError:
    """The one-line error for a part of the index at ``folder`` that failed to read."""
    return IndexDamagedError(
        f"the index at {folder} is damaged ({exc.__class__.__name__}: "
        f"{one_line(str(exc), 200) or 'unreadable'})",
        REBUILD,
    )


class GenerationCheck:
    """What every reader of a generation checks, as it reads.

    A file cut at a line boundary still parses, so counts are checked against the
    manifest (written last) and against each other.  The reader reports each
    document (:meth:`document`) before the rows that point into it (:meth:`span`),
    then the parts it holds (:meth:`parts`); each raises :class:`IndexDamagedError`.

    >>> check = GenerationCheck(Path("index"), {})
    >>> check.document("a.txt", 10); check.span("a.txt", 2, 12)
    Traceback (most recent call last):
    ...
    citechat.errors.IndexDamagedError: the index at index is damaged (a chunk or sentence of 'a.txt' points outside its document); run `citechat index --rebuild`
    """  # noqa: E501

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        #: doc_id -> length of its text
        self.lengths: dict[str, int] = {}

    def document(self, doc_id: str, length: int) -> None:
        self.lengths[doc_id] = length

    def span(self, doc_id: str, start: int, end: int) -> None:
        """A chunk's or sentence's place in its document."""
        length = self.lengths.get(doc_id)
        if length is None or not 0 <= start <= end <= length:
            raise self.damage(f"a chunk or sentence of {doc_id!r} points outside its document")

    def parts(
        self,
        *,
        documents: int,
        chunks: int,
        sentences: int,
        vectors: Any,
        sentence_vectors: Any,
        store: StoreCheck,
        lexical: LexicalIndex | None,
    ) -> None:
        """The counts, the vector arrays, the store and the lexical part (None: it is
        stemmed again, see lexical.py) against the manifest and each other."""
        why = self._counts((documents, chunks, sentences), vectors, sentence_vectors)
        why = why or store.inconsistency(chunks, int(self.manifest.get("dim") or 0))
        if not why and lexical is not None and len(lexical) != chunks:
            why = f"lexical index has {len(lexical)} chunks, the index {chunks}"
        if why:
            raise self.damage(why)

    def _counts(
        self, counts: tuple[int, int, int], vectors: Any, sentence_vectors: Any
    ) -> str | None:
        said = self.manifest.get("counts")
        if not isinstance(said, dict):
            return "manifest has no counts"
        for what, n in zip(("documents", "chunks", "sentences"), counts, strict=True):
            if said.get(what) != n:
                return f"{n} {what}, the manifest says {said.get(what)}"
        dim = self.manifest.get("dim")
        for what, array, rows in (
            ("chunk", vectors, counts[1]),
            ("sentence", sentence_vectors, counts[2]),
        ):
            if array.ndim != 2 or array.shape != (rows, dim):
                return f"{what} vectors have shape {array.shape}, expected ({rows}, {dim})"
        return None

    def damage(self, why: str) -> IndexDamagedError:
        return IndexDamagedError(f"the index at {self.folder} is damaged ({why})", REBUILD)


def manifest_of(
    embedder: Embedder,
    settings: Settings,
    *,
    store: dict[str, Any],
    lexical: dict[str, Any],
    rows: dict[str, Any],
    built_at: str,
    counts: tuple[int, int, int],
) -> dict[str, Any]:
    """A generation's manifest.json (written last: its presence marks it complete).

    It holds no per-document entries (the row tables do: a million documents made
    a 109 MB manifest that every reader parsed whole)."""
    return {
        "format": FORMAT_VERSION,
        "citechat_version": __version__,
        "embedder": embedder.name,
        "dim": embedder.dim,
        "chunking": chunking_settings(settings),
        "store": store,
        "lexical": lexical,
        "rows": rows,
        "built_at": built_at,
        "counts": dict(zip(("documents", "chunks", "sentences"), counts, strict=True)),
    }


def index_stats(manifest: dict[str, Any]) -> dict[str, Any]:
    """:meth:`Index.stats` of a saved index, from its manifest (nothing else is read)."""
    counts = manifest.get("counts") or {}
    return {
        "documents": counts.get("documents"),
        "chunks": counts.get("chunks"),
        "sentences": counts.get("sentences"),
        "embedder": manifest.get("embedder"),
        "dim": manifest.get("dim"),
        "store": (manifest.get("store") or {}).get("type"),
        "built_at": manifest.get("built_at"),
    }
