from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.errors import IndexError_, IndexFormatError, IndexLockedError, IndexMismatchError
from citechat.index import Index, current_generation, sync_index, write_lock
from citechat.index.generations import new_generation
from citechat.index.manifest import FORMAT_VERSION


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(64)
        self.name = "hashing-64"
        self.seen: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.seen.extend(texts)
        return super().embed(texts)


def test_build_save_load_round_trip(fake_settings: Settings) -> None:
    emb = HashingEmbedder(256)
    docs = load_corpus(fake_settings.corpus)
    index = Index.build(docs, emb, fake_settings, folder=fake_settings.index)
    loaded = Index.load(fake_settings.index, emb, fake_settings)
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in index.chunks]
    assert np.allclose(loaded.vectors, index.vectors)
    assert loaded.store.count() == len(index.chunks)
    # the vectors are the embedder's, of each chunk's text with its header
    assert np.allclose(loaded.vectors, emb.embed([c.embedding_text() for c in loaded.chunks]))
    # a build without a folder writes the same rows, into a folder it removes
    elsewhere = Index.build(docs, emb, fake_settings)
    assert elsewhere.chunks == loaded.chunks and elsewhere.sentence_keys == loaded.sentence_keys
    assert np.array_equal(elsewhere.vectors, loaded.vectors)
    gen = current_generation(fake_settings.index)
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["embedder"] == "hashing-256"
    assert manifest["dim"] == 256
    assert manifest["chunking"]["max_tokens"] == fake_settings.chunk_tokens
    assert "documents" not in manifest  # per-document entries are in the row tables
    rows = loaded.rows
    assert [rows.ids[i] for i in range(rows.n_documents)] == ["balls.txt", "weather.txt"]
    assert [rows.hashes[i] for i in range(2)] == [
        loaded.documents[d].content_hash for d in ("balls.txt", "weather.txt")
    ]
    assert all(len(rows.hashes[i]) == 64 for i in range(2))
    # every chunk's text is the document slice it claims
    for c in loaded.chunks:
        assert loaded.documents[c.doc_id].text[c.start : c.end] == c.text


def test_incremental_update_embeds_only_changed_documents(fake_settings: Settings) -> None:
    emb = CountingEmbedder()
    index = sync_index(fake_settings, embedder=emb).index
    weather_chunks = [c.chunk_id for c in index.chunks if c.doc_id == "weather.txt"]
    emb.seen.clear()
    (fake_settings.corpus / "weather.txt").write_text(
        "Snow in London\n\nHeavy snow closed every school in London on Tuesday.\n"
    )
    (fake_settings.corpus / "new.txt").write_text("Fresh news\n\nA new article appeared.\n")
    result = sync_index(fake_settings, embedder=emb)
    index2, report = result.index, result.report
    assert report is not None and result.action == "updated"
    assert report.docs_added == 1 and report.docs_changed == 1 and report.docs_kept == 1
    assert all("Peter Lewis" not in t for t in emb.seen)  # balls.txt untouched
    assert any("Tuesday" in t for t in emb.seen)
    ids = [c.chunk_id for c in index2.chunks]
    assert len(ids) == len(set(ids))  # never duplicates
    assert sum(1 for c in index2.chunks if c.doc_id == "weather.txt") == len(weather_chunks)
    (fake_settings.corpus / "new.txt").unlink()
    result3 = sync_index(fake_settings, embedder=emb)
    index3, report3 = result3.index, result3.report
    assert report3 is not None and report3.docs_removed == 1
    assert all(c.doc_id != "new.txt" for c in index3.chunks)
    assert index3.store.count() == len(index3.chunks)
    assert not any(k[0] == "new.txt" for k in index3.sentence_keys)


def test_load_refuses_other_embedder_or_chunking(fake_settings: Settings) -> None:
    docs = load_corpus(fake_settings.corpus)
    Index.build(docs, HashingEmbedder(256), fake_settings, folder=fake_settings.index)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        Index.load(fake_settings.index, HashingEmbedder(128), fake_settings)
    with pytest.raises(IndexMismatchError, match="chunking"):
        Index.load(
            fake_settings.index, HashingEmbedder(256), fake_settings.replace(chunk_tokens=90)
        )


def test_missing_and_damaged_index_messages(fake_settings: Settings) -> None:
    with pytest.raises(IndexError_, match="citechat index"):
        Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    result = sync_index(fake_settings)
    assert result.action == "built"
    gen = current_generation(fake_settings.index)
    (gen / "faiss.index").write_bytes(b"garbage")
    with pytest.raises(IndexError_, match="damaged"):
        Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    # with the corpus present, sync rebuilds and says so
    again = sync_index(fake_settings)
    assert again.action == "rebuilt"
    assert Index.load(fake_settings.index, HashingEmbedder(256), fake_settings).chunks


def test_sync_is_a_no_op_when_nothing_changed(fake_settings: Settings) -> None:
    first = sync_index(fake_settings)
    gen = current_generation(fake_settings.index)
    second = sync_index(fake_settings)
    assert first.report is not None and second.report is None and second.action == "loaded"
    assert current_generation(fake_settings.index) == gen
    # one generation on disk: old ones are cleaned up
    (fake_settings.corpus / "x.txt").write_text("X\n\nSomething new.\n")
    third = sync_index(fake_settings)
    assert third.action == "updated"
    gens = [p for p in fake_settings.index.iterdir() if p.name.startswith("gen-")]
    assert len(gens) == 1


def test_an_index_of_the_previous_format_is_rebuilt_from_the_corpus(
    fake_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Format 1 indexes (written by the in-memory writer, before there was one) are
    rebuilt with a warning, not refused."""
    sync_index(fake_settings)
    gen = current_generation(fake_settings.index)
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["format"] == FORMAT_VERSION == 2
    manifest["format"] = 1
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="has format '1'"):
        Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    with caplog.at_level("WARNING", logger="citechat"):
        result = sync_index(fake_settings)
    assert result.action == "rebuilt"
    assert f"the index at {fake_settings.index} has format '1'" in caplog.text
    assert f"; rebuilding it from the corpus {fake_settings.corpus}" in caplog.text
    assert Index.load(fake_settings.index, HashingEmbedder(256), fake_settings).chunks


def test_a_failed_build_leaves_nothing_and_a_cancelled_one_commits_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "index"
    with pytest.raises(RuntimeError), new_generation(folder) as gen:
        (gen.path / "part").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in folder.iterdir()) == []
    with new_generation(folder) as gen:
        gen.cancel()
    assert sorted(p.name for p in folder.iterdir()) == []
    with new_generation(folder) as gen:
        (gen.path / "part").write_text("whole")
    assert (current_generation(folder) / "part").read_text() == "whole"
    assert sorted(p.name for p in folder.iterdir()) == ["CURRENT", gen.name]


@pytest.mark.slow  # a child process that dies half-way
def test_killed_build_leaves_previous_index_loadable(fake_settings: Settings) -> None:
    sync_index(fake_settings)
    before = current_generation(fake_settings.index)
    (fake_settings.corpus / "extra.txt").write_text("Extra\n\nMore text here.\n")
    # a child process that dies (os._exit, like kill -9) half-way through a save
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from pathlib import Path
        from citechat.config import Settings
        from citechat.index import sync_index
        real = np.save
        calls = []
        def dying_save(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                os._exit(9)
            return real(*a, **k)
        np.save = dying_save
        sync_index(Settings(corpus=Path({str(fake_settings.corpus)!r}),
                            index=Path({str(fake_settings.index)!r}), embedder="hashing-256"))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ}, check=False)
    assert proc.returncode == 9
    assert current_generation(fake_settings.index) == before
    old = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    assert "extra.txt" not in old.documents
    # the next run completes the update and sweeps the half-written folder
    result = sync_index(fake_settings)
    assert result.action == "updated" and "extra.txt" in result.index.documents
    assert not [p for p in fake_settings.index.iterdir() if p.name.startswith(".tmp-")]


def test_writer_lock_refuses_a_second_writer(tmp_path: Path) -> None:
    with (
        write_lock(tmp_path),
        pytest.raises(IndexLockedError, match="another"),
        write_lock(tmp_path, wait_s=0.3),
    ):
        pass
