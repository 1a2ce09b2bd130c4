"""Validate the hand-written seed evaluation set against the seed corpus.

Pure stdlib + pytest; no network.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
QUESTIONS = ROOT / "eval/datasets/seed/questions.jsonl"
CORPUS = ROOT / "corpus"

REQUIRED_KEYS = {"id", "question", "answers", "gold_docs", "evidence", "type", "answerable"}
TYPES = {"factoid", "comment", "multi-doc", "unanswerable", "paraphrase"}


def _load():
    rows = []
    with QUESTIONS.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _norm(s):
    # Case-insensitive, whitespace-collapsed (the corpus contains U+00A0
    # no-break spaces; str.split() treats them as whitespace).
    return " ".join(s.split()).casefold()


QS = _load()


def _doc_text(doc_id):
    return (CORPUS / doc_id).read_text(encoding="utf-8")


def test_file_has_at_least_60_questions():
    assert len(QS) >= 60


def test_ids_unique():
    ids = [q["id"] for q in QS]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, dupes


@pytest.mark.parametrize("q", QS, ids=lambda q: q.get("id", "?"))
def test_required_keys_and_types(q):
    missing = REQUIRED_KEYS - q.keys()
    assert not missing, missing
    assert isinstance(q["question"], str) and q["question"].strip()
    assert isinstance(q["answers"], list)
    assert all(isinstance(a, str) and a.strip() for a in q["answers"])
    assert isinstance(q["gold_docs"], list)
    assert isinstance(q["evidence"], list)
    assert q["type"] in TYPES
    assert isinstance(q["answerable"], bool)
    assert q["answerable"] == (q["type"] != "unanswerable")
    for ev in q["evidence"]:
        assert {"doc", "quote"} <= ev.keys()
        assert isinstance(ev["quote"], str) and ev["quote"].strip()


@pytest.mark.parametrize("q", QS, ids=lambda q: q.get("id", "?"))
def test_gold_docs_exist(q):
    for doc in q["gold_docs"]:
        assert (CORPUS / doc).is_file(), doc


@pytest.mark.parametrize("q", QS, ids=lambda q: q.get("id", "?"))
def test_evidence_quotes_verbatim_and_in_gold(q):
    for ev in q["evidence"]:
        assert ev["doc"] in q["gold_docs"], ev["doc"]
        text = _doc_text(ev["doc"])
        assert text.find(ev["quote"]) >= 0, (ev["doc"], ev["quote"])


@pytest.mark.parametrize("q", QS, ids=lambda q: q.get("id", "?"))
def test_answerability_consistent(q):
    if q["answerable"]:
        assert len(q["answers"]) >= 1
        assert len(q["evidence"]) >= 1
        assert len(q["gold_docs"]) >= 1
    else:
        assert q["answers"] == []
        assert q["evidence"] == []
        assert q["gold_docs"] == []


@pytest.mark.parametrize("q", [q for q in QS if q["type"] == "multi-doc"], ids=lambda q: q["id"])
def test_multi_doc_has_evidence_from_every_gold_doc(q):
    assert len(q["gold_docs"]) >= 2
    assert {ev["doc"] for ev in q["evidence"]} == set(q["gold_docs"])


@pytest.mark.parametrize("q", [q for q in QS if q["type"] == "factoid"], ids=lambda q: q["id"])
def test_factoid_answers_supported(q):
    quotes = [_norm(ev["quote"]) for ev in q["evidence"]]
    docs = [_norm(_doc_text(d)) for d in q["gold_docs"]]
    for ans in q["answers"]:
        a = _norm(ans)
        assert any(a in s for s in quotes + docs), ans


def test_type_minimums():
    counts = Counter(q["type"] for q in QS)
    assert counts["unanswerable"] >= 8, counts
    assert counts["comment"] >= 8, counts
