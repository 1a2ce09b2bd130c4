"""Property tests (hypothesis): parsing citations, the eval metrics and reading
arbitrary bytes as corpus files never raise, and keep their invariants.

Chunking and page parsing have their own properties in test_chunking.py and
test_corpus.py.  Example counts are bounded so ``make test`` stays quick;
``CITECHAT_FUZZ_SCALE=50`` multiplies them for a longer fuzzing session.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citechat.answer_metrics import normalize_answer
from citechat.chunking import chunk_document
from citechat.citations import (
    MARKER,
    answer_sentences,
    markers,
    source_for,
    strip_markers,
    support_score,
    verify,
)
from citechat.corpus import load_corpus
from citechat.embedding import HashingEmbedder
from citechat.evaluation import (
    citation_on_evidence,
    exact_match,
    first_gold_rank,
    gold_contained,
    token_f1,
)

EMBEDDER = HashingEmbedder(64)
#: CITECHAT_FUZZ_SCALE=50 runs fifty times the examples (a longer fuzzing session)
SCALE = float(os.environ.get("CITECHAT_FUZZ_SCALE") or 1)
FAST = settings(max_examples=int(150 * SCALE), deadline=None, database=None)
SLOW = settings(
    max_examples=int(100 * SCALE),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- citations ------------------------------------------------------------------

MARKERISH = st.sampled_from(
    [
        "[1]",
        "[2]",
        "[0]",
        "[3][1]",
        "[99999999999999999999]",
        "[-1]",
        "[ 2 ]",
        "[[1]]",
        "[1[2]]",
        "[",
        "]",
        ". [2]",
        "[1].",
        "\n\n",
        "?! ",
        "Mr. ",
        "٣",  # an Arabic-Indic digit: \\d matches it in Python
        "[٣]",
        "[１]",  # a full-width digit
    ]
)
ANSWERS = st.lists(MARKERISH | st.text(max_size=30), max_size=20).map("".join)
QUOTES = st.lists(st.text(max_size=60), max_size=5)


@FAST
@given(ANSWERS)
def test_markers_are_the_numbers_of_marker_matches(text: str) -> None:
    found = markers(text)
    assert found == [int(m.group(1)) for m in MARKER.finditer(text)]
    assert all(n >= 0 for n in found)
    stripped = strip_markers(text)
    assert len(stripped) <= len(text)
    assert markers(stripped) == []  # "[1[2]]" must not leave "[1]" behind


@FAST
@given(ANSWERS)
def test_answer_sentences_cover_the_answer_in_order(text: str) -> None:
    sentences = answer_sentences(text)
    end = 0
    for s in sentences:
        assert end <= s.start <= s.end <= len(text)
        assert s.text == text[s.start : s.end]
        assert s.cited == tuple(markers(s.text))
        end = s.end
    # every marker of the answer belongs to some sentence
    assert sum(len(s.cited) for s in sentences) == len(markers(text))


@FAST
@given(ANSWERS, QUOTES)
def test_verify_only_keeps_markers_in_range(text: str, quotes: list[str]) -> None:
    result = verify(text, quotes, EMBEDDER)
    assert len(result) == len(answer_sentences(text))
    for s in result:
        assert all(1 <= n <= len(quotes) for n in s.citations)
        assert 0.0 <= s.score <= 1.0
        assert not s.supported or s.citations


@FAST
@given(st.integers(), st.lists(st.integers(), max_size=5))
def test_source_for_never_wraps_around(n: int, sources: list[int]) -> None:
    got = source_for(n, sources)
    if 1 <= n <= len(sources):
        assert got == sources[n - 1]
    else:
        assert got is None


@FAST
@given(st.text(max_size=80), st.lists(st.text(max_size=80), max_size=4))
def test_support_score_is_between_0_and_1(sentence: str, passages: list[str]) -> None:
    assert 0.0 <= support_score(sentence, passages, EMBEDDER) <= 1.0


# --- eval metrics -------------------------------------------------------------------

WORDS = st.lists(
    st.sampled_from([*"abcdeé’ .,!-", "the", " a ", "an ", "Peter", "LEWIS"]), max_size=20
).map("".join)
ANY_TEXT = st.text(max_size=60) | WORDS


@FAST
@given(ANY_TEXT)
def test_normalize_answer_is_idempotent(s: str) -> None:
    once = normalize_answer(s)
    assert normalize_answer(once) == once
    assert once == once.strip() and "  " not in once


@FAST
@given(ANY_TEXT, st.lists(ANY_TEXT, max_size=4))
def test_metrics_are_between_0_and_1(prediction: str, golds: list[str]) -> None:
    f1 = token_f1(prediction, golds)
    assert 0.0 <= f1 <= 1.0
    assert exact_match(prediction, golds) in (0.0, 1.0)
    assert gold_contained(prediction, golds) in (0.0, 1.0)
    if exact_match(prediction, golds) and normalize_answer(prediction):
        assert f1 == 1.0
    if not golds:
        assert f1 == exact_match(prediction, golds) == gold_contained(prediction, golds) == 0.0


@FAST
@given(ANY_TEXT, st.lists(ANY_TEXT, max_size=3))
def test_a_prediction_matches_itself(x: str, others: list[str]) -> None:
    golds = [*others, x]
    assert exact_match(x, golds) == 1.0
    if normalize_answer(x):
        assert token_f1(x, golds) == 1.0
        assert gold_contained(x, golds) == 1.0
        assert gold_contained(f"before {x} after", [x]) == 1.0


@FAST
@given(st.lists(st.sampled_from("abcdef"), max_size=10), st.sets(st.sampled_from("abcxyz")))
def test_first_gold_rank_is_the_first_hit(retrieved: list[str], golds: set[str]) -> None:
    rank = first_gold_rank(retrieved, golds)
    hits = [i for i, d in enumerate(retrieved, 1) if d in golds]
    assert rank == (hits[0] if hits else None)


@FAST
@given(
    st.text(max_size=40),
    st.integers(-5, 50),
    st.integers(-5, 50),
    st.lists(
        st.fixed_dictionaries({"doc": st.sampled_from(["d", "e"]), "quote": st.text(max_size=10)})
    ),
)
def test_citation_on_evidence_never_raises(
    text: str, start: int, end: int, evidence: list[dict[str, str]]
) -> None:
    citation = {"doc_id": "d", "start": start, "end": end}
    on = citation_on_evidence(citation, evidence, {"d": text})
    assert isinstance(on, bool)
    if not any(ev["doc"] == "d" for ev in evidence):
        assert on is False


# --- ingestion of arbitrary bytes -------------------------------------------------

SUFFIXES = [".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl"]
PDF_HEAD = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
BYTES = (
    st.binary(max_size=2000)
    | st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.text(max_size=300).map(lambda t: t.encode("utf-16"))
    | st.binary(max_size=500).map(lambda b: PDF_HEAD + b)
    | st.text(max_size=300).map(lambda t: f"<html><body><p>{t}</p></body></html>".encode())
    | st.text(max_size=200).map(lambda t: ('{"id": "x", "text": ' + repr(t) + "}\n").encode())
)


@SLOW
@given(st.sampled_from(SUFFIXES), BYTES)
def test_any_bytes_become_a_document_or_a_skip(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / f"fuzz{suffix}").write_bytes(data)
        (folder / "anchor.txt").write_text("Anchor\n\nA known good document.\n")
        skipped: list[tuple[str, str]] = []
        docs = load_corpus(folder, on_skip=lambda p, r: skipped.append((str(p), r)))
    assert "anchor.txt" in [d.doc_id for d in docs]  # the rest is always read
    fuzz_docs = [d for d in docs if d.doc_id != "anchor.txt"]
    for _, reason in skipped:
        assert reason and "\n" not in reason
    if suffix != ".jsonl":
        # exactly one outcome for the file: a document or a skip
        assert len(fuzz_docs) + len(skipped) == 1, (fuzz_docs, skipped)
    if suffix in (".txt", ".md", ".markdown") and fuzz_docs:
        try:
            expected = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            expected = None
        if expected is not None and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            assert fuzz_docs[0].text == expected
    for doc in fuzz_docs:
        end = 0
        for s in doc.sections:
            assert end <= s.start < s.end <= len(doc.text)
            end = s.end
        for chunk in chunk_document(doc, max_tokens=64):
            assert doc.text[chunk.start : chunk.end] == chunk.text
            for a, b in chunk.sentences:
                assert chunk.start <= a < b <= chunk.end
