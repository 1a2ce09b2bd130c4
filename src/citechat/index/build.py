"""The index writer: documents in batches, every part written to disk as it comes.

The one way a generation is written: ``citechat index`` (sync.py) and
:meth:`Index.build` (documents in memory) both come here, with any store.  It
holds one batch of documents, their chunks and vectors, never the corpus; what
grows with the corpus is the catalogue (id, hash, length and place of each
document, not its text), each chunk's term-count offsets, FAISS's own copy of the
chunk vectors (and HNSW's graph) and, while it is built, BM25's matrix (README,
"Streamed, resumable ingestion", has their sizes)::

    1. spool    the corpus is read one file at a time; each document is appended to a
                spool in the temporary generation and a catalogue keeps its id, hash,
                length and place in the spool (not its text)
    2. batches  documents in ``doc_id`` order, about BATCH_CHARS characters of new text
                at a time: a kept document's rows are copied from the old index, a new
                or changed one is chunked and embedded (checkpointed per batch in
                ``index/.checkpoint/stream-*``, so a killed build resumes); chunks,
                sentences, documents, vectors and term ids are appended to files
    3. finish   raw vectors become ``.npy`` files, the lexical part is built by reading
                them back in blocks, the vector store (stores/) is created or the old
                one updated through the store protocol (FAISS: an HNSW graph extended;
                Milvus: new rows inserted, removed ones deleted), the manifest is
                written and the generation committed (generations.new_generation)

Rows come out by document (``doc_id`` order), then position.

It does not parse files (corpus.py), chunk (chunking.py) or embed (embedding.py).
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..chunking import chunk_document
from ..config import Settings
from ..corpus import OnSkip, content_hash, iter_corpus
from ..embedding import Embedder, embed_texts
from ..types import Chunk, Document, Section
from .generations import CHECKPOINT, new_generation
from .lexical import LexicalBuilder
from .manifest import chunking_settings, manifest_of
from .saved import SavedIndex
from .segments import SegmentWriter
from .stores import (
    RowChange,
    StoreRows,
    VectorStore,
    carries_over,
    create_store,
    wanted_store,
)
from .stores.layered import LayeredStore
from .tables import RowWriter, chunk_from_row, document_from_row

__all__ = [
    "BATCH_CHARS",
    "Catalogue",
    "StreamedBuild",
    "UpdateReport",
    "spool_corpus",
    "spool_documents",
    "write_streamed",
]

#: characters of new or changed text chunked and embedded per batch: big enough that
#: sorting by length keeps padding low, small enough that a batch's texts and vectors
#: stay a small part of a build's memory
BATCH_CHARS = 1_000_000
#: documents per batch at most (kept ones cost little, but their rows are copied)
BATCH_DOCS = 2_000

Progress = Callable[[int], None]


@dataclass(frozen=True)
class UpdateReport:
    """What one build or update did: documents and chunks by fate, and how many texts
    were embedded against how many kept the vectors they already had."""

    docs_added: int = 0
    docs_changed: int = 0
    docs_removed: int = 0
    docs_kept: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_kept: int = 0
    texts_embedded: int = 0
    #: texts whose vectors were reused by text hash (unchanged sentences, a resumed build)
    texts_reused: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.docs_added or self.docs_changed or self.docs_removed)

    def summary(self) -> str:
        return (
            f"documents: {self.docs_added} added, {self.docs_changed} changed, "
            f"{self.docs_removed} removed, {self.docs_kept} kept; chunks: {self.chunks_added} "
            f"added, {self.chunks_removed} removed, {self.chunks_kept} kept"
        )


# -- pass 1: the corpus into a spool, a catalogue in memory --------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    offset: int
    length: int
    hash: str
    chars: int
    #: the document's row in the old index's tables (-1: none, or no old index)
    old_row: int = -1


@dataclass
class Catalogue:
    """Where each document of the spool is: ``doc_id -> Entry``, in file order.  A
    document whose line equals the old index's (``known``) is not spooled (offset -1)."""

    spool: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    known: SavedIndex | None = None
    _fh: IO[bytes] | None = None

    def hashes(self) -> dict[str, str]:
        return {doc_id: e.hash for doc_id, e in self.entries.items()}

    def all_known(self) -> bool:
        """True when every document's line is the one ``known`` holds (none spooled)."""
        return self.known is not None and all(e.offset < 0 for e in self.entries.values())

    def line(self, doc_id: str) -> bytes:
        """The document's JSON line, as documents.jsonl holds it."""
        entry = self.entries[doc_id]
        if entry.offset < 0:
            assert self.known is not None
            return _lines_of(self.known.document_line(doc_id))
        if self._fh is None:
            self._fh = open(self.spool, "rb")  # noqa: SIM115 - closed by close()
        self._fh.seek(entry.offset)
        return self._fh.read(entry.length)

    def read(self, doc_id: str) -> Document:
        return document_from_row(json.loads(self.line(doc_id)))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def spool_corpus(
    corpus: Path,
    spool: Path,
    on_skip: OnSkip | None = None,
    known: SavedIndex | None = None,
) -> Catalogue:
    """Read ``corpus`` one file at a time into ``spool`` (:func:`spool_documents`);
    raises :class:`CorpusError` as :func:`load_corpus` does."""
    return spool_documents(iter_corpus(corpus, on_skip=on_skip), spool, known)


def spool_documents(
    docs: Iterable[Document], spool: Path, known: SavedIndex | None = None
) -> Catalogue:
    """Write ``docs`` into ``spool`` (one JSON line a document, its content hash set),
    except documents whose line ``known`` holds already (an unchanged corpus writes
    nothing).  A later document with the same id replaces an earlier one."""
    catalogue = Catalogue(spool, known=known)
    row_of = known.row_index() if known is not None else {}  # dropped on return
    with open(spool, "wb") as fh:
        for doc in docs:
            doc = replace(doc, content_hash=doc.content_hash or content_hash(doc.text))
            line = _line(doc)
            # one look-up a document: its old row (an update reads it, not the id, again)
            row = row_of.get(doc.doc_id)
            if (
                known is not None
                and row is not None
                and known.rows.hashes[row] == doc.content_hash
                and known.row_line(row).rstrip(b"\n") == line.rstrip(b"\n")
            ):
                offset, length = -1, 0
            else:
                offset, length = fh.tell(), len(line)
                fh.write(line)
            catalogue.entries[doc.doc_id] = Entry(
                offset, length, doc.content_hash, len(doc.text), -1 if row is None else row
            )
    return catalogue


def _line(doc: Document) -> bytes:
    # ASCII JSON: a lone surrogate from a JSON corpus survives the round trip
    return (json.dumps(_row(doc)) + "\n").encode("ascii")


_DOCUMENT_FIELDS = tuple(f.name for f in fields(Document))
_SECTION_FIELDS = tuple(f.name for f in fields(Section))


def _row(doc: Document) -> dict[str, Any]:
    """``asdict(doc)`` (same keys, same order), without its deep copies: the spool
    writes, or compares, one line per document of the corpus at every start."""
    row = {name: getattr(doc, name) for name in _DOCUMENT_FIELDS}
    row["sections"] = [{n: getattr(s, n) for n in _SECTION_FIELDS} for s in doc.sections]
    return row


# -- pass 2 and 3: the generation, batch by batch ---------------------------------------


class StreamedBuild:
    """Writes one generation into ``tmp`` from a catalogue, reusing ``old``'s rows."""

    def __init__(
        self,
        tmp: Path,
        catalogue: Catalogue,
        old: SavedIndex | None,
        embedder: Embedder,
        settings: Settings,
        *,
        checkpoint: Path | None = None,
        progress: Progress | None = None,
        batch_chars: int | None = None,
        batch_docs: int | None = None,
        merge: bool = False,
    ) -> None:
        self.tmp = tmp
        self.catalogue = catalogue
        self.old = old
        self.embedder = embedder
        self.settings = settings
        self.checkpoint = checkpoint
        self.progress = progress
        # read at call time, so a test (or a caller) can set the module's values
        self.batch_chars = batch_chars or BATCH_CHARS
        self.batch_docs = batch_docs or BATCH_DOCS
        #: write the vectors as one array each, whatever the old segments' state
        self.merge = merge
        self.dim = embedder.dim
        old_hash = old.hashes if old else {}
        if old is not None and catalogue.known is old:  # the spool found each old row
            # kept: the old line exactly (offset -1).  The same text under a new title
            # (or sections) is a change: its chunks carry the title, so they are re-cut
            # (their vectors come back from the old ones where the embedded text is equal)
            entries = catalogue.entries.items()
            self.kept = {i for i, e in entries if e.old_row >= 0 and e.offset < 0}
            self.changed = {i for i, e in entries if e.old_row >= 0 and i not in self.kept}
        else:
            self.kept = {i for i, e in catalogue.entries.items() if old_hash.get(i) == e.hash}
            self.changed = {i for i in catalogue.entries if i in old_hash and i not in self.kept}
        self.removed = set(old_hash) - set(catalogue.entries)
        n_old = old.n_chunks if old else 0
        #: new row of each old chunk row (-1: removed), for an HNSW store carried over
        self.old_to_new = np.full(n_old, -1, dtype=np.int64)
        #: the rows of new chunks, as (first, end) runs: 16 bytes a new document
        self.new_runs = array("q")
        self.chunks = 0
        self.sentences = 0
        self.embedded = 0
        self.reused = 0
        self.chunks_added = 0

    def run(self) -> UpdateReport:
        """Write every part and the manifest into ``tmp`` (not yet committed)."""
        tmp = self.tmp
        old = self.old
        self.lexical = LexicalBuilder(
            tmp / ".token_ids.raw", old.lexical if old else None, merge=self.merge
        )
        old_gen = old.gen if old else None
        self.rows = RowWriter(tmp, old.rows if old else None, old_gen, merge=self.merge)
        self.vector_rows = SegmentWriter(
            tmp, "vectors", self.dim, old.vectors if old else None, old_gen, merge=self.merge
        )
        self.sentence_vector_rows = SegmentWriter(
            tmp,
            "sentence_vectors",
            self.dim,
            old.sentence_vectors if old else None,
            old_gen,
            merge=self.merge,
        )
        for batch in self.batches():
            self.write_batch(batch)
        rows = self.rows.finish()
        self.catalogue.close()
        self.catalogue.spool.unlink()
        # kept rows stay in the old generation's segments, linked (segments.py)
        name = tmp.name.removeprefix(".tmp-")
        self.segments = {
            "vectors": self.vector_rows.finish(name),
            "sentence_vectors": self.sentence_vector_rows.finish(name),
        }
        lexical = self.lexical.finish(tmp)
        store = self.build_store()
        store.save(tmp)
        manifest = manifest_of(
            self.embedder,
            self.settings,
            store=store.describe(),
            lexical=lexical,
            rows=rows,
            built_at=_now(),
            counts=(len(self.catalogue.entries), self.chunks, self.sentences),
        )
        manifest.update({k: v for k, v in self.segments.items() if v is not None})
        if self.rows.file_entries:
            manifest["files"] = self.rows.file_entries
        # the manifest goes last: its presence marks a complete generation
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        kept_chunks = int((self.old_to_new >= 0).sum())
        return UpdateReport(
            docs_added=len(self.catalogue.entries) - len(self.kept) - len(self.changed),
            docs_changed=len(self.changed),
            docs_removed=len(self.removed),
            docs_kept=len(self.kept),
            chunks_added=self.chunks_added,
            chunks_removed=len(self.old_to_new) - kept_chunks,
            chunks_kept=kept_chunks,
            texts_embedded=self.embedded,
            texts_reused=self.reused,
        )

    def batches(self) -> Iterator[list[str]]:
        """Document ids in sorted order, cut where new text passes ``batch_chars``."""
        batch: list[str] = []
        chars = 0
        for doc_id in sorted(self.catalogue.entries):
            batch.append(doc_id)
            if doc_id not in self.kept:
                chars += self.catalogue.entries[doc_id].chars
            if chars >= self.batch_chars or len(batch) >= self.batch_docs:
                yield batch
                batch, chars = [], 0
        if batch:
            yield batch

    def write_batch(self, doc_ids: Sequence[str]) -> None:
        """Chunk and embed the batch's new documents, then append every document's rows."""
        fresh: dict[str, tuple[Document, list[Chunk], list[tuple[str, int, int]]]] = {}
        for doc_id in doc_ids:
            if doc_id in self.kept:
                continue
            doc = self.catalogue.read(doc_id)
            chunks = sorted(
                chunk_document(
                    doc, max_tokens=self.settings.chunk_tokens, overlap=self.settings.chunk_overlap
                ),
                key=lambda c: c.start,
            )
            keys = sorted({(doc_id, a, b) for c in chunks for a, b in c.sentences})
            fresh[doc_id] = (doc, chunks, keys)
        texts = [c.embedding_text() for _, chunks, _ in fresh.values() for c in chunks]
        n_chunk_texts = len(texts)
        texts += [doc.text[a:b] for doc, _, keys in fresh.values() for _, a, b in keys]
        vectors, embedded = embed_texts(
            self.embedder,
            texts,
            progress=self.progress,
            reuse=(
                self.old.known_vectors(self.changed & set(fresh), self.embedder.name)
                if self.old
                else None
            ),
            checkpoint=self._checkpoint(fresh),
        )
        self.embedded += embedded
        self.reused += len(texts) - embedded
        chunk_vectors, sentence_vectors = vectors[:n_chunk_texts], vectors[n_chunk_texts:]
        ci = si = 0
        pending: list[Chunk] = []  # chunks to stem, of consecutive documents: stemmed together
        # old document rows [lo, hi) of consecutive kept documents, linked in one call
        # (lines, table rows, vectors, term ids): a call a document cost about 80 us,
        # most of an update of a large index
        run = [0, 0]

        def copy_run() -> None:
            if run[1] > run[0]:
                self._keep_run(run[0], run[1])
            run[0] = run[1] = 0

        fast = self.old is not None and self.old.lexical is not None
        for doc_id in doc_ids:
            if doc_id in fresh:
                copy_run()  # before the new rows: rows stay in order
                doc, chunks, keys = fresh[doc_id]
                self.new_runs.extend((self.chunks, self.chunks + len(chunks)))
                self.rows.add(
                    doc_id,
                    self.catalogue.entries[doc_id].hash,
                    self.catalogue.line(doc_id),
                    b"".join(_json_line(asdict(c)) for c in chunks),
                    b"".join(_json_line(list(key)) for key in keys),
                    np.asarray([(a, b) for _, a, b in keys], dtype=np.int64),
                )
                self._vectors(
                    chunk_vectors[ci : ci + len(chunks)], sentence_vectors[si : si + len(keys)]
                )
                ci, si = ci + len(chunks), si + len(keys)
                self.chunks_added += len(chunks)
                pending.extend(chunks)
                continue
            assert self.old is not None
            row = self.catalogue.entries[doc_id].old_row
            if row < 0:  # a catalogue spooled without the old index
                found = self.old.rows.doc_row(doc_id)
                row = -1 if found is None else found
            if fast and row >= 0:
                if pending:  # before the kept rows: rows stay in order
                    self.lexical.add_chunks(pending)
                    pending = []
                if self.catalogue.entries[doc_id].offset >= 0:  # a new line, the same text
                    copy_run()
                    self._keep_run(row, row + 1, self.catalogue.line(doc_id))
                    continue
                if run[1] != row:
                    copy_run()
                    run[0] = row
                run[1] = row + 1
                continue
            copy_run()
            pending.extend(self._copy_kept(doc_id))  # the old terms: another tokenizer's
        copy_run()
        if pending:
            self.lexical.add_chunks(pending)
        if self.old is not None:
            self.old.release()

    def _keep_run(self, lo: int, hi: int, doc_line: bytes | None = None) -> None:
        """Old documents ``[lo, hi)`` (rows of the old tables), kept whole: their lines
        linked (rowfiles.py; ``doc_line``: one document's new line), vectors linked
        (segments.py), term ids copied."""
        old = self.old
        assert old is not None and old.lexical is not None
        (c_lo, c_hi), (s_lo, s_hi) = self.rows.keep_docs(lo, hi, doc_line)
        self.old_to_new[c_lo:c_hi] = np.arange(self.chunks, self.chunks + c_hi - c_lo)
        self.vector_rows.keep(c_lo, c_hi)
        self.sentence_vector_rows.keep(s_lo, s_hi)
        self.chunks += c_hi - c_lo
        self.sentences += s_hi - s_lo
        self.lexical.keep(c_lo, c_hi)

    def _copy_kept(self, doc_id: str) -> list[Chunk]:
        """A kept document's rows, copied as they are (lines and vectors) when the old
        terms are of another tokenizer; its chunks, to stem again."""
        old = self.old
        assert old is not None
        lo, hi = old.chunk_range(doc_id)
        s_lo, s_hi = old.sentence_range(doc_id)
        self.old_to_new[lo:hi] = np.arange(self.chunks, self.chunks + hi - lo)
        lines = old.chunk_lines(lo, hi)
        restem = _chunks_of(lines)
        self.rows.add(
            doc_id,
            self.catalogue.entries[doc_id].hash,
            self.catalogue.line(doc_id),
            lines,
            old.sentence_lines(s_lo, s_hi),
            old.rows.sentence_spans[s_lo:s_hi],
        )
        self._vectors(None, None)
        self.vector_rows.keep(lo, hi)
        self.chunks += hi - lo
        self.sentence_vector_rows.keep(s_lo, s_hi)
        self.sentences += s_hi - s_lo
        return restem

    def _vectors(
        self, chunk_vectors: np.ndarray | None, sentence_vectors: np.ndarray | None
    ) -> None:
        """Append new rows' vectors (a kept document's are linked: see _copy_kept)."""
        if chunk_vectors is not None:
            self.vector_rows.add(chunk_vectors)
            self.chunks += len(chunk_vectors)
        if sentence_vectors is not None:
            self.sentence_vector_rows.add(sentence_vectors)
            self.sentences += len(sentence_vectors)

    def _checkpoint(self, fresh: dict[str, Any]) -> Path | None:
        """The batch's checkpoint folder: named by its documents, embedder and chunking,
        so only a rerun of the same batch reads it (a resumed build holds one batch)."""
        if self.checkpoint is None or not fresh:
            return None
        key = hashlib.blake2b(digest_size=12)
        key.update(json.dumps([self.embedder.name, chunking_settings(self.settings)]).encode())
        for doc_id in fresh:
            key.update(f"\0{doc_id}\0{self.catalogue.entries[doc_id].hash}".encode())
        return self.checkpoint / f"stream-{key.hexdigest()}"

    def build_store(self) -> VectorStore:
        """The store of the new rows, through the store protocol: the old one updated
        when it is the one the settings ask for (an HNSW graph extended, a Milvus
        collection sent only its new rows), else a new one."""
        rows = StoreRows(
            self.tmp,
            self.chunks,
            self.dim,
            segments=self.segments["vectors"],
            files=self.rows.file_entries,
        )
        entry = self.old.store_entry if self.old else None
        spec = wanted_store(self.settings, entry)
        if self.old is None or not carries_over(entry, spec):
            return create_store(spec, rows, self.settings)
        # segmented vectors: the old store linked or nothing written (stores/layered.py)
        layered = LayeredStore.take(entry, self.old.gen, rows, self.settings)
        if layered is not None:
            return layered
        runs = np.frombuffer(self.new_runs, dtype=np.int64).reshape(-1, 2)
        new_rows = np.concatenate(
            [np.zeros(0, dtype=np.int64)] + [np.arange(a, b) for a, b in runs]
        )
        change = RowChange(self.old_to_new, new_rows.astype(np.int64))
        # read late: the store is this build's own, extended in place
        return self.old.load_store().update(rows, change, self.settings)


def _json_line(row: Any) -> bytes:
    """A JSONL row as chunks.jsonl and sentences.jsonl hold it (UTF-8, not ASCII-escaped)."""
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def _lines_of(data: bytes) -> bytes:
    """Copied rows, ending in a newline even when the old file's last one did not."""
    return data if not data or data.endswith(b"\n") else data + b"\n"


def _f4(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def _chunks_of(lines: bytes) -> list[Chunk]:
    return [chunk_from_row(json.loads(line)) for line in lines.split(b"\n") if line.strip()]


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- the whole sync ----------------------------------------------------------------------


def write_streamed(
    settings: Settings,
    embedder: Embedder,
    old: SavedIndex | None,
    *,
    on_skip: OnSkip | None = None,
    progress: Callable[[int, int], Progress] | None = None,
    batch_chars: int | None = None,
    docs: Iterable[Document] | None = None,
    merge: bool = False,
) -> UpdateReport | None:
    """Build or update the index at ``settings.index`` from its corpus (or from
    ``docs``) and commit it; the caller holds its writer lock.  None, and nothing
    written, when ``old`` is already current (and, with ``merge``, its vectors are
    one array each: ``merge`` writes them so, see segments.py).  A failure leaves the last complete
    index in place and the temporary generation removed (:func:`new_generation`)."""
    folder = settings.index
    with new_generation(folder) as gen:
        tmp = gen.path
        spool = tmp / ".documents.spool"
        if docs is None:
            catalogue = spool_corpus(settings.corpus, spool, on_skip, old)
        else:
            catalogue = spool_documents(docs, spool, old)
        current = old is not None and old.matches(len(catalogue.entries), catalogue.all_known())
        if current and not (merge and old is not None and old.segmented):
            catalogue.close()
            gen.cancel()
            return None
        if old is not None:
            old.drop_store()  # read again when the update extends it (see SavedIndex.open)
        build = StreamedBuild(
            tmp,
            catalogue,
            old,
            embedder,
            settings,
            checkpoint=folder / CHECKPOINT,
            batch_chars=batch_chars,
            merge=merge,
        )
        if progress:
            todo = [e for i, e in catalogue.entries.items() if i not in build.kept]
            build.progress = progress(sum(max(1, e.chars // 120) for e in todo), len(todo))
        report = build.run()
    return report
