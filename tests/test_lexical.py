"""The lexical index (issue 6): stemmed terms, BM25 and IDF are computed when the index
is built or updated and saved in its generation, so loading an index stems nothing; an
update stems only new chunks and gives what a fresh build gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bm25ref import bm25s_model, bm25s_scores
from citechat.config import Settings
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.index import Index, current_generation, sync_index
from citechat.index import lexical as lexical_module
from citechat.index.lexical import LexicalBuilder, LexicalIndex
from citechat.retrieval import Retriever
from citechat.text import terms
from citechat.types import Chunk

QUERIES = ["new director appointed", "snow closed schools", "joint working responsibility"]


def row_terms(lex: LexicalIndex) -> list[list[str]]:
    return [[lex.vocab[i] for i in row] for row in lex.rows()]


def header(chunk: Chunk) -> str:
    return chunk.embedding_text().removesuffix(chunk.text)


def bm25_results(lex: LexicalIndex, query: str) -> list[tuple[int, float]]:
    """Rows scoring above 0, best first (ties by row), scores to 5 places."""
    scores = lex.bm25_scores(terms(query))
    if scores is None:
        return []
    ranked = sorted(((-float(s), r) for r, s in enumerate(scores.tolist()) if s > 0))
    return [(r, round(-s, 5)) for s, r in ranked]


def bm25s_results(lex: LexicalIndex, query: str) -> list[tuple[int, float]]:
    """The same, from bm25s built from scratch over the rows of ``lex``."""
    scores = bm25s_scores(bm25s_model(lex), terms(query))
    if scores is None:
        return []
    ranked = sorted(((-s, r) for r, s in enumerate(scores) if s > 0))
    return [(r, round(-s, 5)) for s, r in ranked]


def live_terms(lex: LexicalIndex) -> set[str]:
    """Terms some live row holds (the vocabulary also keeps those of dead rows)."""
    assert lex.df is not None
    return {t for t, d in zip(lex.vocab, lex.df.tolist(), strict=True) if d > 0}


def text_df(lex: LexicalIndex) -> dict[str, int]:
    return {t: int(d) for t, d in zip(lex.vocab, lex.text_df.tolist(), strict=True) if d}


def build(settings: Settings) -> Index:
    return Index.build(load_corpus(settings.corpus), HashingEmbedder(256), settings)


def test_terms_of_each_chunk_header_first_and_idf_of_texts_only(fake_settings: Settings) -> None:
    index = build(fake_settings)
    lex = index.lexical
    assert len(lex) == len(index.chunks)
    for chunk, row, head in zip(index.chunks, row_terms(lex), lex.head_lengths, strict=True):
        assert row == terms(header(chunk)) + terms(chunk.text)
        assert row[:head] == terms(header(chunk))
    # document frequency counts chunk texts, once per chunk however often a term occurs
    expected: dict[str, int] = {}
    for chunk in index.chunks:
        for t in set(terms(chunk.text)):
            expected[t] = expected.get(t, 0) + 1
    assert text_df(lex) == expected
    n = len(index.chunks)
    assert lex.idf == pytest.approx(
        {t: float(np.log(1 + (n - d + 0.5) / (d + 0.5))) for t, d in expected.items()}
    )
    # "Nick Bromley" is only ever a comment's header: BM25 finds it, the IDF leaves it out
    assert "bromley" in lex.vocab and "bromley" not in lex.idf
    assert bm25_results(lex, "Bromley")
    for query in [*QUERIES, "Bromley"]:
        assert bm25_results(lex, query) == bm25s_results(lex, query)


def test_an_empty_lexical_index_has_no_rows_and_no_bm25(tmp_path: Path) -> None:
    empty = LexicalIndex.from_chunks([])
    assert (len(empty), empty.rows(), empty.bm25_scores(["a"]), empty.idf) == (0, [], None, {})
    (tmp_path / "gen").mkdir()
    entry = LexicalBuilder(tmp_path / "ids.raw").finish(tmp_path / "gen")
    assert (entry["chunks"], entry["terms"], entry["segments"]) == (0, 0, [])
    loaded = LexicalIndex.load(tmp_path / "gen", entry)
    assert loaded is not None and len(loaded) == 0 and loaded.bm25_scores(["a"]) is None


def test_a_chunk_without_terms_keeps_its_bm25_row() -> None:
    lex = LexicalIndex.from_terms([([], []), (["snow"], []), ([], ["snow", "bus"])])
    assert len(lex.bm25_scores(["snow"])) == 3  # type: ignore[arg-type]
    for query in ("bus", "snow", "snow bus"):
        assert bm25_results(lex, query) == bm25s_results(lex, query)  # an empty row: length 1
    assert [row for row, _ in bm25_results(lex, "bus")] == [2]
    assert sorted(row for row, _ in bm25_results(lex, "snow")) == [1, 2]
    assert lex.idf.keys() == {"snow", "bus"}  # the header-only "snow" of row 1 is not counted
    assert text_df(lex) == {"snow": 1, "bus": 1}


def test_an_update_stems_only_new_chunks_and_equals_a_fresh_build(
    fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = fake_settings.corpus
    (corpus / "kept.txt").write_text("Kept\n\nA ferry crossed the river.\n")
    old = sync_index(fake_settings).index
    (corpus / "weather.txt").unlink()  # "snow" and "buses" leave with it
    (corpus / "balls.txt").write_text(
        (corpus / "balls.txt").read_text() + "\nA later update: the director resigned.\n"
    )
    (corpus / "courts.txt").write_text("Court ruling\n\nThe court ruled on the appeal today.\n")

    stemmed: list[str] = []
    real_terms = lexical_module.terms

    def counting_terms(text: str) -> list[str]:
        stemmed.append(text)
        return real_terms(text)

    monkeypatch.setattr(lexical_module, "terms", counting_terms)
    result = sync_index(fake_settings)
    monkeypatch.setattr(lexical_module, "terms", real_terms)
    report, new = result.report, result.index
    assert report is not None and report.chunks_added and report.chunks_removed
    # every chunk of the changed and new documents, and nothing else, was stemmed
    new_texts = {c.text for c in new.chunks if c.doc_id in {"balls.txt", "courts.txt"}}
    assert new_texts <= set(stemmed)
    assert not {c.text for c in new.chunks if c.doc_id == "kept.txt"} & set(stemmed)
    assert not {c.text for c in old.chunks if c.doc_id == "weather.txt"} & set(stemmed)

    fresh = LexicalIndex.from_chunks(new.chunks)
    assert row_terms(new.lexical) == row_terms(fresh)
    assert new.lexical.head_lengths.tolist() == fresh.head_lengths.tolist()
    assert text_df(new.lexical) == text_df(fresh)
    assert live_terms(new.lexical) == set(fresh.vocab)
    assert "snow" not in new.lexical.idf and "court" in new.lexical.idf
    assert new.lexical.bm25_scores(["snow"]) is None  # dead with weather.txt
    for query in [*QUERIES, "court appeal", "director resigned"]:
        assert bm25_results(new.lexical, query) == bm25_results(fresh, query)
        assert bm25_results(new.lexical, query) == bm25s_results(fresh, query)


def test_a_saved_index_loads_its_lexical_part_without_stemming(
    fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_index(fake_settings)
    gen = current_generation(fake_settings.index)
    entry = json.loads((gen / "manifest.json").read_text())["lexical"]
    assert entry["tokenizer"] == lexical_module.TOKENIZER and entry["chunks"] > 0
    assert (gen / "lexical" / entry["segments"][0] / "post_rows.npy").is_file()
    built = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    expected = {q: Retriever(built).bm25_search(q, 10) for q in QUERIES}
    idf = dict(Retriever(built).idf)

    def no_stemming(text: str) -> list[str]:
        raise AssertionError(f"stemmed {text[:40]!r} at load")

    index = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    monkeypatch.setattr(lexical_module, "terms", no_stemming)
    retriever = Retriever(index)
    postings = index.lexical.segments[0].postings
    assert postings is not None and isinstance(postings[1], np.memmap)  # mapped, not read
    assert retriever.idf == idf
    monkeypatch.undo()  # the query itself is stemmed, of course
    assert {q: retriever.bm25_search(q, 10) for q in QUERIES} == expected
    assert any(expected.values())


def test_an_index_saved_before_the_lexical_part_or_with_another_tokenizer_still_loads(
    fake_settings: Settings,
) -> None:
    sync_index(fake_settings)
    gen = current_generation(fake_settings.index)
    reference = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings).lexical
    manifest = json.loads((gen / "manifest.json").read_text())

    manifest["lexical"]["tokenizer"] = "some-older-tokenizer"
    (gen / "manifest.json").write_text(json.dumps(manifest))
    retokenised = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings).lexical
    assert row_terms(retokenised) == row_terms(reference)

    del manifest["lexical"]  # as written by citechat before the lexical part was saved
    (gen / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(gen / "lexical")
    legacy = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    assert row_terms(legacy.lexical) == row_terms(reference)
    assert legacy.lexical.idf == reference.idf

    # the next sync writes the lexical part again, embedding nothing
    result = sync_index(fake_settings)
    assert result.action == "updated" and result.report is not None
    assert result.report.texts_embedded == 0
    assert row_terms(result.index.lexical) == row_terms(reference)
    again = current_generation(fake_settings.index)
    assert (again / "lexical" / "vocab.json").is_file()
    assert "lexical" in json.loads((again / "manifest.json").read_text())


def test_lexical_index_refuses_arrays_that_disagree(tmp_path: Path) -> None:
    builder = LexicalBuilder(tmp_path / "ids.raw")
    builder.add_terms([(["a"], ["b", "c"]), ([], ["c"])])
    (tmp_path / "gen").mkdir()
    entry = builder.finish(tmp_path / "gen")
    assert LexicalIndex.load(tmp_path / "gen", entry) is not None
    with pytest.raises(ValueError, match="the manifest says 3 and 3"):
        LexicalIndex.load(tmp_path / "gen", {**entry, "chunks": 3})
    segment = tmp_path / "gen" / "lexical" / entry["segments"][0]
    rows = np.load(segment / "post_rows.npy")
    np.save(segment / "post_rows.npy", rows[:-1])
    with pytest.raises(ValueError, match="postings that disagree"):
        LexicalIndex.load(tmp_path / "gen", entry)
    np.save(segment / "post_rows.npy", rows)
    np.save(segment / "post_indptr.npy", np.array([0, 1, 2, 3, 3, len(rows)], np.int64))
    with pytest.raises(ValueError, match="outside its vocabulary"):
        LexicalIndex.load(tmp_path / "gen", entry)
    with pytest.raises(ValueError, match="outside its segment"):
        LexicalIndex.load(tmp_path / "gen", {**entry, "runs": [[0, 0, 3]]})


# -- segments (issue 17): an update links the old lexical segments and stays exact --------

CHAIN_QUERIES = [
    *QUERIES,
    "court appeal ruled",
    "ferry river river",
    "director resigned",
    "station report train",
    "snow",
    "council budget vote",
]


def _assert_exact(index: Index) -> None:
    """Every query scores as bm25s built from scratch over a fresh build's rows (to
    float tolerance; top 10 identical), and the texts' IDF is a fresh build's."""
    fresh = LexicalIndex.from_chunks(index.chunks)
    model = bm25s_model(fresh)
    lex = index.lexical
    for query in CHAIN_QUERIES:
        got, want = lex.bm25_scores(terms(query)), bm25s_scores(model, terms(query))
        if want is None or not any(want):
            assert got is None or not got.any()
            continue
        assert got is not None and got.tolist() == pytest.approx(want, rel=1e-6, abs=1e-6)
        assert bm25_results(lex, query)[:10] == bm25s_results(fresh, query)[:10]
    assert lex.idf == pytest.approx(fresh.idf)
    assert live_terms(lex) == set(fresh.vocab)


def _lexical_entry(settings: Settings) -> tuple[Path, dict[str, object]]:
    gen = current_generation(settings.index)
    return gen, json.loads((gen / "manifest.json").read_text())["lexical"]


def test_chained_updates_link_the_lexical_segments_and_score_as_a_fresh_build(
    fake_settings: Settings,
) -> None:
    corpus = fake_settings.corpus
    (corpus / "ferry.txt").write_text("Ferry\n\nA ferry crossed the river.\n")
    words = ["council", "budget", "vote", "river", "train", "report", "appeal", "school"]
    for i in range(24):  # enough rows that no step kills a quarter of them (no merge)
        text = " ".join(words[(i * j) % len(words)] for j in range(3 + i % 5))
        (corpus / f"filler-{i:02}.txt").write_text(f"Filler {i}\n\nThe {text} again.\n")
    sync_index(fake_settings)
    steps = [
        lambda: (corpus / "weather.txt").unlink(),  # a removal
        lambda: (corpus / "courts.txt").write_text("Courts\n\nThe court ruled on the appeal.\n"),
        lambda: (corpus / "ferry.txt").write_text(  # a changed document
            "Ferry\n\nThe ferry crossed the river twice; the river rose.\n"
        ),
        lambda: (corpus / "station.txt").write_text("Station\n\nA train left the station.\n"),
        lambda: (corpus / "courts.txt").unlink(),
    ]
    for step in steps:
        old_gen, old_entry = _lexical_entry(fake_settings)
        inodes = {
            (name, file): (old_gen / "lexical" / name / file).stat().st_ino
            for name in old_entry["segments"]  # type: ignore[attr-defined]
            for file in ("token_ids.npy", "post_rows.npy")
        }
        step()
        result = sync_index(fake_settings)
        assert result.action == "updated"
        gen, entry = _lexical_entry(fake_settings)
        assert isinstance(entry["segments"], list)
        linked = [s for s in entry["segments"] if s in old_entry["segments"]]  # type: ignore[operator]
        assert linked, "the update rewrote the lexical part"
        for name in linked:  # hard links of the old generation's files, not copies
            for file in ("token_ids.npy", "post_rows.npy"):
                assert (gen / "lexical" / name / file).stat().st_ino == inodes[name, file]
        _assert_exact(result.index)
        reloaded = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
        _assert_exact(reloaded)


def test_an_update_past_the_dead_share_merges_the_lexical_segments(
    fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import citechat.index.segments as segments_module

    sync_index(fake_settings)
    (fake_settings.corpus / "weather.txt").unlink()
    monkeypatch.setattr(segments_module, "MAX_DEAD_SHARE", 0.0)
    result = sync_index(fake_settings)
    gen, entry = _lexical_entry(fake_settings)
    assert entry["segments"] == [f"seg-{gen.name}"] and entry["runs"] == [
        [0, 0, len(result.index.chunks)]
    ]
    _assert_exact(result.index)


def _as_written_before_segments(gen: Path) -> None:
    """Rewrite the generation's lexical part as citechat wrote it before segments: one
    set of term ids at lexical/ and bm25s's own score matrix."""
    manifest = json.loads((gen / "manifest.json").read_text())
    entry = manifest["lexical"]
    lex = LexicalIndex.load(gen, entry)
    assert lex is not None
    rows = lex.rows()
    ids = np.asarray([t for row in rows for t in row], dtype=np.int32)
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    base = gen / "lexical"
    heads, text_df = lex.head_lengths.copy(), np.asarray(lex.text_df).copy()
    model = bm25s_model(lex)
    for name in entry["segments"]:
        shutil.rmtree(base / name)
    (base / "df.npy").unlink()
    np.save(base / "token_ids.npy", ids)
    np.save(base / "token_indptr.npy", indptr)
    np.save(base / "head_lengths.npy", heads)
    np.save(base / "text_df.npy", text_df)
    model.save(str(base / "bm25"), show_progress=False)
    manifest["lexical"] = {k: entry[k] for k in ("tokenizer", "bm25", "chunks", "terms", "tokens")}
    (gen / "manifest.json").write_text(json.dumps(manifest))


def test_an_index_written_before_segments_loads_and_its_update_writes_segments(
    fake_settings: Settings,
) -> None:
    sync_index(fake_settings)
    want = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    expected = {q: Retriever(want).bm25_search(q, 10) for q in QUERIES}
    _as_written_before_segments(current_generation(fake_settings.index))
    legacy = Index.load(fake_settings.index, HashingEmbedder(256), fake_settings)
    assert legacy.lexical.df is None  # bm25s's matrix scores it
    got = {q: Retriever(legacy).bm25_search(q, 10) for q in QUERIES}
    assert got == expected and any(got.values())

    (fake_settings.corpus / "weather.txt").unlink()
    result = sync_index(fake_settings)
    gen, entry = _lexical_entry(fake_settings)
    assert entry["segments"] == [f"seg-{gen.name}"]  # every row, in one segment
    assert not (gen / "lexical" / "bm25").exists()
    _assert_exact(result.index)
    (fake_settings.corpus / "courts.txt").write_text("Courts\n\nThe court ruled.\n")
    result = sync_index(fake_settings)  # the next one links it
    _, again = _lexical_entry(fake_settings)
    assert entry["segments"][0] in again["segments"]  # type: ignore[index,operator]
    _assert_exact(result.index)


def test_optimize_merges_the_lexical_segments(fake_settings: Settings) -> None:
    for i in range(8):
        (fake_settings.corpus / f"extra-{i}.txt").write_text(f"Extra {i}\n\nA tram ran {i}.\n")
    sync_index(fake_settings)
    (fake_settings.corpus / "extra-0.txt").unlink()
    (fake_settings.corpus / "ferry.txt").write_text("Ferry\n\nA ferry crossed the river.\n")
    sync_index(fake_settings)
    _, entry = _lexical_entry(fake_settings)
    assert len(entry["segments"]) == 2  # type: ignore[arg-type]  # the old one, linked
    result = sync_index(fake_settings, optimize=True)
    gen, entry = _lexical_entry(fake_settings)
    assert entry["segments"] == [f"seg-{gen.name}"]
    _assert_exact(result.index)
