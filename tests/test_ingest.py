"""The index writer (index/build.py): the rows, vectors and terms the index's definition
gives (an oracle built here in memory), one batch of documents in memory at a time,
resumable batch by batch, and the corpus read lazily."""

from __future__ import annotations

import json
import shutil
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citechat import corpus as corpus_mod
from citechat import embedding
from citechat.chunking import chunk_document
from citechat.config import Settings
from citechat.corpus import content_hash, iter_corpus, load_corpus
from citechat.embedding import Embedder, HashingEmbedder
from citechat.index import Index, UpdateReport, sync_index
from citechat.index import build as ingest
from citechat.index import sync as index_sync
from citechat.index.generations import CHECKPOINT
from citechat.index.lexical import LexicalBuilder, LexicalIndex
from citechat.index.saved import SavedIndex
from citechat.index.stores.faiss import FaissParams, FaissStore
from citechat.index.tables import doc_ranges
from citechat.retrieval import Retriever
from citechat.text import terms
from citechat.types import Document
from helpers import record_calls

WORDS = [
    "snow",
    "london",
    "school",
    "bus",
    "council",
    "director",
    "report",
    "police",
    "budget",
    "ofsted",
]
QUERIES = ["snow closed the school", "council director report", "police budget ofsted"]


def write_corpus(folder: Path, n: int, seed: int = 1) -> Path:
    """``n`` documents of a few paragraphs: files at the top and in a subfolder (so
    walk order is not doc_id order), and a JSONL file whose ids are out of order."""
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True)

    def body() -> str:
        paragraphs = [
            ". ".join(" ".join(rng.choice(WORDS, 7)) for _ in range(int(rng.integers(2, 6))))
            for _ in range(int(rng.integers(1, 4)))
        ]
        return ".\n\n".join(paragraphs) + ".\n"

    records = []
    for i in range(n):
        if i % 3 == 0:
            records.append({"id": f"rec-{n - i:03d}", "title": f"Record {i}", "text": body()})
        else:
            where = folder / ("sub" if i % 3 == 1 else "") / f"d{i:03d}.txt"
            where.write_text(f"Doc {i}\n\n{body()}")
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(
        corpus=tmp_path / "corpus", index=tmp_path / "index", embedder="hashing-256", **kw
    )


def terms_of(lexical: LexicalIndex) -> list[list[str]]:
    return [[lexical.vocab[i] for i in row] for row in lexical.rows()]


def expected_index(docs: list[Document], embedder: Embedder, settings: Settings) -> Index:
    """The index of ``docs`` as its definition says, built here in memory, not by the
    writer: documents by id, each one's chunks by position and its sentence keys in
    order, every text embedded, terms stemmed, a fresh FAISS store."""
    by_id = {
        d.doc_id: replace(d, content_hash=d.content_hash or content_hash(d.text)) for d in docs
    }
    documents = dict(sorted(by_id.items()))
    chunks, keys = [], []
    for doc in documents.values():
        mine = chunk_document(doc, max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)
        mine.sort(key=lambda c: c.start)
        chunks += mine
        keys += sorted({(doc.doc_id, a, b) for c in mine for a, b in c.sentences})

    def embed(texts: list[str]) -> np.ndarray:
        return embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)

    vectors = embed([c.embedding_text() for c in chunks])
    return Index(
        embedder=embedder,
        settings=settings,
        documents=documents,
        chunks=chunks,
        vectors=vectors,
        sentence_keys=keys,
        sentence_vectors=embed([documents[d].text[a:b] for d, a, b in keys]),
        built_at="",
        store=FaissStore.build(vectors, embedder.dim, FaissParams.of(settings)),
        lexical=LexicalIndex.from_chunks(chunks),
    )


def _entry(store: Any) -> dict[str, Any]:
    # an updated HNSW graph holds tombstones, a fresh one none; an update's store over
    # segmented vectors is layered (stores/layered.py), a fresh one one FAISS index
    return {k: v for k, v in store.describe().items() if k not in ("tombstones", "layered")}


def assert_same_index(got: Index, want: Index) -> None:
    assert got.documents == want.documents
    assert got.chunks == want.chunks
    assert got.sentence_keys == want.sentence_keys
    np.testing.assert_array_equal(np.asarray(got.vectors), np.asarray(want.vectors))
    np.testing.assert_array_equal(np.asarray(got.sentence_vectors), want.sentence_vectors)
    assert terms_of(got.lexical) == terms_of(want.lexical)
    assert got.lexical.idf == pytest.approx(want.lexical.idf)
    assert _entry(got.store) == _entry(want.store)
    for query in QUERIES:
        a, b = Retriever(got).search(query, k=5), Retriever(want).search(query, k=5)
        assert [h.chunk.chunk_id for h in a.hits] == [h.chunk.chunk_id for h in b.hits]
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits])
        vector = got.embedder.embed([query])[0]
        dense, want_dense = got.search_dense(vector, 5), want.search_dense(vector, 5)
        assert [r for r, _ in dense] == [r for r, _ in want_dense]
        assert [s for _, s in dense] == pytest.approx([s for _, s in want_dense])


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Small batches (about two documents), and a record of each batch's documents."""
    monkeypatch.setattr(ingest, "BATCH_CHARS", 300)
    seen: list[list[str]] = []
    real = ingest.StreamedBuild.write_batch

    def recorded(self: ingest.StreamedBuild, doc_ids: list[str]) -> None:
        seen.append(list(doc_ids))
        real(self, doc_ids)

    monkeypatch.setattr(ingest.StreamedBuild, "write_batch", recorded)
    return seen


def test_a_build_gives_the_expected_index(tmp_path: Path, batches: list[list[str]]) -> None:
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 30)
    result = sync_index(settings)
    assert result.action == "built" and result.report is not None
    order = [doc_id for batch in batches for doc_id in batch]
    assert len(batches) >= 5 and order == sorted(order)  # doc_id order
    want = expected_index(load_corpus(settings.corpus), HashingEmbedder(256), settings)
    assert_same_index(result.index, want)
    assert result.report.chunks_added == len(want.chunks) and result.report.docs_added == 30
    # Index.build (documents in memory) goes through the same writer
    assert_same_index(
        Index.build(load_corpus(settings.corpus), HashingEmbedder(256), settings), want
    )
    # nothing of the build is left beside the generation
    assert sorted(p.name for p in settings.index.iterdir()) == [".lock", "CURRENT", _gen(settings)]
    gen = settings.index / _gen(settings)
    assert not [p.name for p in gen.rglob("*") if p.name.startswith(".")]


def _gen(settings: Settings) -> str:
    return (settings.index / "CURRENT").read_text().strip()


@pytest.mark.parametrize("flat_max", [100_000, 5])  # flat (rebuilt), HNSW (carried over)
def test_an_update_gives_the_index_a_fresh_build_would(
    tmp_path: Path, batches: list[list[str]], flat_max: int
) -> None:
    settings = settings_for(tmp_path, flat_max=flat_max)
    write_corpus(settings.corpus, 24)
    sync_index(settings)
    old = Index.load(settings.index, HashingEmbedder(256), settings)
    assert old.store.describe()["type"] == ("hnsw" if flat_max == 5 else "flat")
    changed = settings.corpus / "d002.txt"
    changed.write_text(changed.read_text() + "\nA council report on the snow.\n")
    (settings.corpus / "sub" / "d004.txt").unlink()
    (settings.corpus / "a-new.txt").write_text("New\n\nThe director of police spoke.\n")
    batches.clear()

    result = sync_index(settings)
    want = expected_index(load_corpus(settings.corpus), HashingEmbedder(256), settings)
    gone = sum(c.doc_id in {"d002.txt", "sub/d004.txt"} for c in old.chunks)
    added = sum(c.doc_id in {"d002.txt", "a-new.txt"} for c in want.chunks)
    assert result.action == "updated" and result.report is not None
    assert result.report == UpdateReport(
        docs_added=1,
        docs_changed=1,
        docs_removed=1,
        docs_kept=22,
        chunks_added=added,
        chunks_removed=gone,
        chunks_kept=len(old.chunks) - gone,
        texts_embedded=result.report.texts_embedded,
        texts_reused=result.report.texts_reused,
    )
    assert result.report.texts_reused >= 1  # d002's unchanged sentences
    assert_same_index(result.index, want)
    if flat_max == 5:  # the HNSW graph was extended, not rebuilt: the removed rows are tombstones
        assert result.index.store.describe()["tombstones"] > 0
    # only the changed and the new document's texts were looked at (kept ones were copied),
    # and with nothing changed the index just loads
    touched = {"d002.txt", "a-new.txt"}
    texts = sum(c.doc_id in touched for c in result.index.chunks)
    texts += sum(k[0] in touched for k in result.index.sentence_keys)
    assert result.report.texts_embedded + result.report.texts_reused == texts
    assert sync_index(settings).action == "loaded"


def test_a_build_holds_one_batch_of_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents come from the spool one batch at a time and are dropped after it; the
    whole corpus is never loaded, and the embedder sees one batch's texts per call."""
    monkeypatch.setattr(ingest, "BATCH_CHARS", 1)  # one document a batch
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 12)
    live: set[int] = set()
    real_read = ingest.document_from_row

    def tracked(row: dict[str, Any]) -> Any:
        doc = real_read(row)
        live.add(id(doc))
        weakref.finalize(doc, live.discard, id(doc))
        return doc

    def no_whole_corpus(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the streamed build loaded the whole corpus")

    monkeypatch.setattr(ingest, "document_from_row", tracked)
    monkeypatch.setattr(index_sync, "load_corpus", no_whole_corpus)
    at_embed: list[tuple[int, int]] = []

    class Watching(HashingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            at_embed.append((len(live), len(texts)))
            return super().embed(texts)

    result = sync_index(settings, embedder=Watching(256))
    assert len(at_embed) >= 12  # one call (or more) per document
    assert max(n for n, _ in at_embed) == 1  # one document alive while it is embedded
    assert not live  # and none once the build is done
    per_doc = [len(c.sentences) + 1 for c in result.index.chunks]
    assert max(n for _, n in at_embed) <= sum(per_doc)
    assert len(result.index.documents) == 12


def test_a_killed_build_resumes_batch_by_batch(tmp_path: Path, batches: list[list[str]]) -> None:
    class Dying(HashingEmbedder):
        def __init__(self, fail_after: int | None) -> None:
            super().__init__(256)
            self.fail_after, self.seen = fail_after, []  # type: ignore[var-annotated]

        def embed(self, texts):  # type: ignore[no-untyped-def]
            if self.fail_after is not None and len(self.seen) + len(texts) > self.fail_after:
                raise KeyboardInterrupt("killed half-way")
            self.seen.extend(texts)
            return super().embed(texts)

    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 20)
    dying = Dying(fail_after=40)
    with pytest.raises(KeyboardInterrupt):
        sync_index(settings, embedder=dying)
    assert len(batches) >= 3  # some batches finished before the kill
    done = list((settings.index / CHECKPOINT).glob("stream-*"))
    assert len(done) >= 2 and not (settings.index / "CURRENT").exists()
    assert not list(settings.index.glob(".tmp-gen-*"))  # the half-written generation is gone

    resumed = Dying(fail_after=None)
    result = sync_index(settings, embedder=resumed)
    assert result.report is not None and result.report.texts_reused >= len(dying.seen)
    assert not set(resumed.seen) & set(dying.seen)  # finished batches are not embedded again
    assert not (settings.index / CHECKPOINT).exists()
    assert_same_index(
        result.index, expected_index(load_corpus(settings.corpus), HashingEmbedder(256), settings)
    )


def test_an_index_without_its_terms_is_updated_without_embedding_again(
    tmp_path: Path,
) -> None:
    """Terms of another tokenizer (or none saved) are stemmed again from the kept chunks;
    their vectors are copied."""
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 6)
    sync_index(settings)
    gen = settings.index / _gen(settings)
    manifest = json.loads((gen / "manifest.json").read_text())
    del manifest["lexical"]
    (gen / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(gen / "lexical")
    saved = SavedIndex.open(settings.index, HashingEmbedder(256), settings)
    assert saved.lexical is None and not saved.matches(saved.rows.n_documents, True)
    saved.close()
    (settings.corpus / "a-new.txt").write_text("New\n\nThe director of police spoke.\n")
    result = sync_index(settings)
    assert result.action == "updated" and result.report is not None
    assert result.report.docs_added == 1 and result.report.docs_kept == 6
    new_texts = sum(c.doc_id == "a-new.txt" for c in result.index.chunks)
    new_texts += sum(k[0] == "a-new.txt" for k in result.index.sentence_keys)
    assert result.report.texts_embedded == new_texts
    assert_same_index(
        result.index, expected_index(load_corpus(settings.corpus), HashingEmbedder(256), settings)
    )
    # written with its terms: the next sync has nothing to do
    assert (settings.index / _gen(settings) / "lexical" / "vocab.json").is_file()
    assert sync_index(settings).action == "loaded"


def test_rows_of_a_document_must_be_together_to_be_copied() -> None:
    assert doc_ranges(np.array([0, 0, 1]), 2).tolist() == [[0, 2], [2, 3]]
    with pytest.raises(ValueError, match="not together"):
        doc_ranges(np.array([0, 1, 0]), 2)


def test_the_spool_keeps_every_document_exactly(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    records = [
        {"id": "z", "title": "Zed", "text": "Lone \ud800 surrogate and caf\u00e9."},
        {"id": "a", "title": "A", "text": "Plain text."},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    catalogue = ingest.spool_corpus(corpus, tmp_path / "spool")
    assert list(catalogue.entries) == ["z", "a"]  # file order; the build sorts
    want = {d.doc_id: d for d in load_corpus(corpus)}
    for doc_id in ("a", "z"):
        got = catalogue.read(doc_id)
        assert got.text == want[doc_id].text and got.sections == want[doc_id].sections
        assert catalogue.entries[doc_id].hash == got.content_hash != ""
    catalogue.close()


def test_iter_corpus_reads_one_file_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(f"{name}\n\nSome text in {name}.\n")
    read = record_calls(monkeypatch, corpus_mod, "_read", "doc_id")
    docs = iter_corpus(tmp_path)
    assert read == [] and next(docs).doc_id == "a.txt" and read == ["a.txt"]
    assert [d.doc_id for d in docs] == ["b.txt", "c.txt"]


def test_lexical_builder_equals_a_built_lexical_index(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 9)
    index = expected_index(load_corpus(settings.corpus), HashingEmbedder(256), settings)
    builder = LexicalBuilder(tmp_path / "ids.raw", index.lexical)
    half = len(index.chunks) // 2
    builder.keep(0, half)  # as a kept document's rows (merged: an index in memory)
    builder.add_chunks(index.chunks[half:])  # stemmed, as a new document's
    out = tmp_path / "gen"
    out.mkdir()
    entry = builder.finish(out)
    got = LexicalIndex.load(out, entry)
    assert got is not None and not (tmp_path / "ids.raw").exists()
    assert terms_of(got) == terms_of(index.lexical)
    assert got.idf == pytest.approx(index.lexical.idf)
    for query in QUERIES:
        tokens = terms(query)
        want, scores = index.lexical.bm25_scores(tokens), got.bm25_scores(tokens)
        assert want is not None and scores is not None
        assert scores.tolist() == pytest.approx(want.tolist())


def test_embedding_is_checkpointed_per_batch(tmp_path: Path, batches: list[list[str]]) -> None:
    """Each batch's checkpoint is named by its documents: a rerun reads only its own."""
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 10)
    names: list[Path | None] = []
    real = embedding.embed_texts

    def spy(*args: Any, **kwargs: Any) -> Any:
        names.append(kwargs.get("checkpoint"))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "embed_texts", spy)
        sync_index(settings)
    assert len(names) == len(batches) and len(set(names)) == len(names)
    assert all(n is not None and n.parent == settings.index / CHECKPOINT for n in names)


def test_documents_the_old_index_holds_unchanged_are_not_spooled(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 6)
    old = sync_index(settings).index
    saved = SavedIndex.open(settings.index, HashingEmbedder(256), settings)
    catalogue = ingest.spool_corpus(settings.corpus, tmp_path / "spool", known=saved)
    assert (tmp_path / "spool").stat().st_size == 0  # nothing changed: nothing written
    doc_id = next(iter(old.documents))
    assert catalogue.read(doc_id) == old.documents[doc_id]
    assert json.loads(catalogue.line(doc_id))["text"] == old.documents[doc_id].text
    # a changed document is spooled, alone
    changed = settings.corpus / "d002.txt"
    changed.write_text(changed.read_text() + "More snow.\n")
    catalogue = ingest.spool_corpus(settings.corpus, tmp_path / "spool2", known=saved)
    spooled = [
        json.loads(line)["doc_id"] for line in (tmp_path / "spool2").read_text().splitlines()
    ]
    assert spooled == ["d002.txt"] and "More snow." in catalogue.read("d002.txt").text


def test_citechat_index_does_not_load_what_it_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`citechat index` reads the old index as files (SavedIndex) and prints counts from
    the new manifest, so neither a build nor an update loads one; an index found
    current is served from that read, not loaded again."""
    from citechat.cli import main

    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 8)
    monkeypatch.setenv("CITECHAT_CORPUS", str(settings.corpus))
    monkeypatch.setenv("CITECHAT_INDEX", str(settings.index))
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    loads: list[Path] = []
    real = Index.load.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Index], folder: Path, *args: Any) -> Index:
        loads.append(folder)
        return real(cls, folder, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(Index, "load", classmethod(counted))
    assert main(["index", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (settings.corpus / "a-new.txt").write_text("New\n\nThe director of police spoke.\n")
    assert main(["index", "--json"]) == 0
    updated = json.loads(capsys.readouterr().out)
    assert loads == []
    result = sync_index(settings)  # up to date: served from the generation it read
    assert loads == [] and result.action == "loaded"
    assert updated["index"] == result.stats == result.index.stats() and loads == []
    assert out["action"] == "built" and out["report"]["docs_added"] == 8
    assert updated["action"] == "updated" and updated["report"]["docs_added"] == 1


def _mapped_rss_kb(path: Path) -> int:
    """Resident kB of this process's mappings of the file ``path`` (Linux smaps)."""
    total, current = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            current = len(fields) >= 6 and fields[-1] == str(path.resolve())
        elif current and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux smaps")
def test_an_update_unmaps_the_old_vectors_it_has_copied(tmp_path: Path) -> None:
    """Copying every kept row reads every old vector; mapped pages would count in the
    process's RSS (9 GB at a million chunks) unless released after each batch."""
    settings = settings_for(tmp_path)
    write_corpus(settings.corpus, 30)
    sync_index(settings)
    saved = SavedIndex.open(settings.index, HashingEmbedder(256), settings)
    # other tests' indexes may be mapped too: this generation's file only
    mapped = saved.gen / "sentence_vectors.npy"
    assert float(np.asarray(saved.sentence_vectors).sum()) != 0  # every page read
    assert _mapped_rss_kb(mapped) > 0
    saved.release()
    assert _mapped_rss_kb(mapped) == 0
    assert saved.sentence_vectors.shape[0] == saved.n_sentences  # still readable after
    assert float(np.asarray(saved.sentence_vectors).sum()) != 0
    saved.close()
