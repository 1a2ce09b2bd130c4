"""The row tables (index/tables.py) and the views over them (index/lazy.py): a loaded
index reads its documents, chunks and sentence keys from the generation's files and
gives exactly the objects the files hold, with tables or (an older generation)
without; offsets index the files exactly; an update keeps them right."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.errors import IndexDamagedError
from citechat.index import Index, current_generation, sync_index
from citechat.index.lazy import ChunkView, DocumentView, SentenceKeyView
from citechat.index.rowfiles import open_file
from citechat.index.tables import Strings
from citechat.types import Chunk, Document, Section

EMB = HashingEmbedder(256)


def _objects(gen: Path) -> tuple[dict[str, Document], list[Chunk], list[tuple[str, int, int]]]:
    """The generation's rows as the old Index.load built them: every line parsed."""

    files = json.loads((gen / "manifest.json").read_text()).get("files")

    def rows(name: str) -> list:  # type: ignore[type-arg]
        file = open_file(gen, files, name)  # whole, or segments (rowfiles.py)
        lines = file.read(0, file.size).decode("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    documents = {}
    for row in rows("documents.jsonl"):
        row["sections"] = tuple(Section(**s) for s in row["sections"])
        row["blocks"] = tuple(tuple(b) for b in row.get("blocks", ()))
        documents[row["doc_id"]] = Document(**row)
    chunks = []
    for row in rows("chunks.jsonl"):
        row["sentences"] = tuple(tuple(s) for s in row["sentences"])
        chunks.append(Chunk(**row))
    keys = [(d, int(a), int(b)) for d, a, b in rows("sentences.jsonl")]
    return documents, chunks, keys


def _assert_views_hold(index: Index, gen: Path) -> None:
    documents, chunks, keys = _objects(gen)
    assert isinstance(index.documents, DocumentView) and isinstance(index.chunks, ChunkView)
    assert isinstance(index.sentence_keys, SentenceKeyView)
    assert dict(index.documents) == documents and list(index.documents) == list(documents)
    assert list(index.chunks) == chunks and index.chunks == chunks
    assert [index.chunks[i] for i in range(len(chunks))] == chunks  # by row, not iterated
    assert index.chunks[-1] == chunks[-1] and index.chunks[1:3] == chunks[1:3]
    assert list(index.sentence_keys) == keys and index.sentence_keys[:] == keys
    assert len(index.documents) == len(documents) and len(index.sentence_keys) == len(keys)
    for i, (d, a, b) in enumerate(keys):
        assert index.sentence_keys[i] == (d, a, b)
        vector = index.sentence_vector(d, a, b)
        assert vector is not None and np.array_equal(vector, index.sentence_vectors[i])
    for doc_id in documents:
        mine = [c for c in chunks if c.doc_id == doc_id]
        assert [index.chunks[r] for r in index.chunk_rows(doc_id)] == mine
        assert [index.chunk_row(c) for c in mine] == [chunks.index(c) for c in mine]
    assert "nothing.txt" not in index.documents and index.documents.get("nothing.txt") is None
    assert index.sentence_vector("balls.txt", 10**6, 10**6 + 1) is None
    assert list(index.chunk_rows("nothing.txt")) == []
    with pytest.raises(IndexError):
        index.chunks[len(chunks)]


def test_a_loaded_index_reads_the_objects_its_files_hold(built: Settings) -> None:
    gen = current_generation(built.index)
    assert (gen / "rows" / "chunk_offsets.npy").is_file()
    _assert_views_hold(Index.load(built.index, EMB, built), gen)


def test_a_generation_without_row_tables_loads_the_same(built: Settings) -> None:
    """An index written before the tables (no ``rows`` in its manifest) is still
    loadable: the tables are computed from its files."""
    gen = current_generation(built.index)
    shutil.rmtree(gen / "rows")
    manifest = json.loads((gen / "manifest.json").read_text())
    del manifest["rows"]
    (gen / "manifest.json").write_text(json.dumps(manifest))
    _assert_views_hold(Index.load(built.index, EMB, built), gen)
    # the next sync writes it again with them, its rows copied (nothing embedded)
    result = sync_index(built)
    assert result.action == "updated" and result.report is not None
    assert result.report.texts_embedded == 0 and result.report.docs_kept == 2
    new = current_generation(built.index)
    assert new != gen and (new / "rows" / "doc_ids.bin").is_file()
    _assert_views_hold(result.index, new)
    assert sync_index(built).action == "loaded"
    (built.corpus / "new.txt").write_text("A new document.\n\nIt has two sentences.\n")
    result = sync_index(built)
    assert result.action == "updated"
    _assert_views_hold(result.index, current_generation(built.index))


def test_offsets_index_the_files_exactly(built: Settings) -> None:
    gen = current_generation(built.index)
    index = Index.load(built.index, EMB, built)
    rows = index.rows
    for name, offsets, n in (
        ("documents.jsonl", rows.doc_offsets, rows.n_documents),
        ("chunks.jsonl", rows.chunk_offsets, rows.n_chunks),
        ("sentences.jsonl", rows.sentence_offsets, rows.n_sentences),
    ):
        data = (gen / name).read_bytes()
        assert len(offsets) == n + 1 and int(offsets[-1]) == len(data)
        lines = [data[int(a) : int(b)] for a, b in itertools.pairwise(offsets)]
        assert b"".join(lines) == data and all(line.endswith(b"\n") for line in lines)
    for i, chunk in enumerate(index.chunks):
        assert index.documents[chunk.doc_id].text[chunk.start : chunk.end] == chunk.text
        lo, hi = rows.doc_chunks[rows.doc_row(chunk.doc_id)]
        assert lo <= i < hi
    for d, a, b in index.sentence_keys:
        assert 0 <= a < b <= len(index.documents[d].text)


def test_an_update_keeps_the_tables_of_kept_and_changed_documents(built: Settings) -> None:
    (built.corpus / "weather.txt").write_text(
        "Snow in London\n\nHeavy snow closed schools. Trains stopped too. It melted.\n"
    )
    (built.corpus / "a-first.txt").write_text("First\n\nThis one sorts first. Then this.\n")
    result = sync_index(built)
    assert result.action == "updated"
    gen = current_generation(built.index)
    _assert_views_hold(result.index, gen)
    # the same rows a fresh build of the corpus writes
    fresh = Index.build(list(result.index.documents.values()), EMB, built)
    assert fresh.chunks == result.index.chunks
    assert fresh.sentence_keys == result.index.sentence_keys
    assert dict(fresh.documents) == dict(result.index.documents)


def test_damaged_row_tables_are_named_in_one_line(built: Settings) -> None:
    gen = current_generation(built.index)
    offsets = np.load(gen / "rows" / "chunk_offsets.npy")
    offsets[-1] += 5  # the table no longer ends where chunks.jsonl does
    np.save(gen / "rows" / "chunk_offsets.npy", offsets)
    with pytest.raises(IndexDamagedError) as err:
        Index.load(built.index, EMB, built)
    message = str(err.value)
    assert "\n" not in message and "row tables do not match chunks.jsonl" in message
    assert message.endswith("; run `citechat index --rebuild`")
    assert sync_index(built).action == "rebuilt"
    _assert_views_hold(Index.load(built.index, EMB, built), current_generation(built.index))


def test_strings_find_sorted_ids_including_odd_ones() -> None:
    ids = sorted(["a.txt", "b/c.md", "caf\u00e9.txt", "lone \ud800.txt", "\U0001f600.txt"])
    strings = Strings.of(ids)
    assert [strings[i] for i in range(len(ids))] == ids
    assert [strings.find(s) for s in ids] == list(range(len(ids)))
    assert strings.find("b") is None and strings.find("zzz") is None and strings.find("") is None
    assert Strings.of([]).find("a") is None


def test_serving_a_current_index_reads_its_generation_once(
    built: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipeline.load (what `citechat serve` runs) checks the index against the corpus and
    serves the generation that check read: one open, one read of the store."""
    from citechat.index import saved as saved_module
    from citechat.index.stores import faiss as faiss_module
    from citechat.pipeline import Pipeline

    opened: list[str] = []
    real_open = saved_module.SavedIndex.open.__func__  # type: ignore[attr-defined]
    real_load = Index.load.__func__  # type: ignore[attr-defined]
    real_store = faiss_module.FaissStore.load.__func__  # type: ignore[attr-defined]

    def tracked(name: str, real):  # type: ignore[no-untyped-def]
        def call(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
            opened.append(name)
            return real(cls, *args, **kwargs)

        return classmethod(call)

    monkeypatch.setattr(saved_module.SavedIndex, "open", tracked("saved", real_open))
    monkeypatch.setattr(Index, "load", tracked("load", real_load))
    monkeypatch.setattr(faiss_module.FaissStore, "load", tracked("store", real_store))
    pipe = Pipeline.load(built)
    assert opened == ["saved", "store"]
    assert pipe.index.generation == current_generation(built.index).name
    _assert_views_hold(pipe.index, current_generation(built.index))
    assert pipe.ask("Who did Ed Balls appoint?").citations


def test_the_spool_line_is_asdict_json() -> None:
    """The spool's fast row (no deep copies) writes the line asdict() wrote, byte for
    byte: an unchanged corpus is found unchanged by comparing lines."""
    import dataclasses

    from citechat.index import build

    doc = Document(
        "d.pdf",
        "Caf\u00e9 \ud800 text.\n\nMore.",
        "T",
        (
            Section("body", 0, 5, page=1, page_label="i", heading="A \u203a B"),
            Section("comment", 6, 9, "Ann", "2009-02-07"),
        ),
        source="d.pdf",
        date="2009-02-07",
        author="Ann",
        content_hash="x" * 64,
        blocks=((0, 4, "code"), (6, 9, "table")),
    )
    want = (json.dumps(dataclasses.asdict(doc)) + "\n").encode("ascii")
    assert build._line(doc) == want
    assert build.document_from_row(json.loads(want)) == doc


def test_serve_loads_the_current_generation_then_checks_the_corpus(
    built: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`citechat serve` serves the last complete index at once and compares the corpus
    after start-up: an unchanged one keeps the served index (read once), a changed one
    is updated and swapped in; with no index it is built first."""
    from citechat.app import load_for_serving, sync_after_start
    from citechat.index import saved as saved_module

    opens: list[str] = []
    real_open = saved_module.SavedIndex.open.__func__  # type: ignore[attr-defined]

    def counted(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        opens.append("saved")
        return real_open(cls, *args, **kwargs)

    monkeypatch.setattr(saved_module.SavedIndex, "open", classmethod(counted))
    pipe, later = load_for_serving(built, None)
    assert later and opens == []
    served = pipe.index
    sync_after_start(pipe)
    assert pipe.index is served and opens == []  # checked as loaded, not read again
    (built.corpus / "new.txt").write_text("Fog\n\nThick fog closed the airport on Friday.\n")
    sync_after_start(pipe)
    assert pipe.index is not served and "new.txt" in pipe.index.documents
    assert pipe.index.generation == current_generation(built.index).name
    assert any(h.chunk.doc_id == "new.txt" for h in pipe.retriever.search("fog airport", 3).hits)
    shutil.rmtree(built.index)
    pipe, later = load_for_serving(built, None)
    assert not later and "new.txt" in pipe.index.documents


def test_bm25_top_scores_are_bm25s_own(built: Settings) -> None:
    """The positive-score top-k (retrieval.top_scores) of the index's BM25 ranks as
    bm25s's retrieve does, bm25s built from scratch over the same rows."""
    from bm25ref import bm25s_model
    from citechat.retrieval import top_scores
    from citechat.text import terms

    lexical = Index.load(built.index, EMB, built).lexical
    bm25 = bm25s_model(lexical)
    for question in ("Who did Ed Balls appoint?", "snow closed schools", "London council"):
        q = [t for t in terms(question) if t in bm25.vocab_dict]
        for n in (1, 2, 5):
            k = min(n, bm25.scores["num_docs"])
            rows, scores = bm25.retrieve([q], k=k, show_progress=False)
            want = [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]
            got = top_scores(lexical.bm25_scores(q), n)  # type: ignore[arg-type]
            assert [s for _, s in got] == pytest.approx([s for _, s in want])
            assert {r for r, _ in got} == {r for r, _ in want} or len(set(scores[0])) < k


@pytest.mark.parametrize("faiss_type", ["flat", "hnsw"])
def test_an_update_checks_the_store_by_its_header(
    built: Settings, monkeypatch: pytest.MonkeyPatch, faiss_type: str
) -> None:
    """An update opens the old generation without reading its FAISS structure (the
    header holds the count the check needs), still finds a store of the wrong size
    damaged, and its result reads as a fresh build."""
    import faiss

    from citechat.index.saved import SavedIndex
    from citechat.pipeline import Pipeline

    settings = built.replace(faiss_type=faiss_type, index=built.index.parent / faiss_type)
    sync_index(settings)
    real_read = faiss.read_index

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("faiss.read_index called by the check")

    monkeypatch.setattr(faiss, "read_index", refused)
    saved = SavedIndex.open(settings.index, EMB, settings)
    assert saved.peek_store().inconsistency(saved.n_chunks, 256) is None
    # a header that counts one vector too many: the update's open names the index damaged
    store = current_generation(settings.index) / "faiss.index"
    good = store.read_bytes()
    data = bytearray(good)
    count = int(np.frombuffer(bytes(data[8:16]), "<i8")[0])
    data[8:16] = np.array([count + 1], "<i8").tobytes()
    store.write_bytes(bytes(data))
    with pytest.raises(IndexDamagedError, match="FAISS index holds"):
        SavedIndex.open(settings.index, EMB, settings)
    store.write_bytes(good)
    monkeypatch.setattr(faiss, "read_index", real_read)
    (settings.corpus / "new.txt").write_text("Fog\n\nThick fog closed the airport on Friday.\n")
    result = sync_index(settings)
    assert result.report is not None and result.report.docs_added == 1
    fresh = Index.build(
        load_corpus(settings.corpus), EMB, settings.replace(index=built.index.parent / "f")
    )
    index = Index.load(settings.index, EMB, settings)
    assert list(index.chunks) == list(fresh.chunks)
    hits = Pipeline.load(settings).retriever.search("fog airport", 3).hits
    assert any(h.chunk.doc_id == "new.txt" for h in hits)
