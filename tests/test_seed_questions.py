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


# ---- questions_reader.jsonl: the reader's set (seed-101...), tune and report halves ----

READER_SET = ROOT / "eval/datasets/seed/questions_reader.jsonl"
READER_TYPES = {"unanswerable", "why", "multi", "paraphrase", "who-said"}


def _load_reader():
    with READER_SET.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


RQS = _load_reader()


def test_reader_set_is_new_split_and_typed():
    ids = [q["id"] for q in RQS]
    assert len(ids) >= 25 and len(set(ids)) == len(ids)
    assert not set(ids) & {q["id"] for q in QS}
    assert not {_norm(q["question"]) for q in RQS} & {_norm(q["question"]) for q in QS}
    for q in RQS:
        assert REQUIRED_KEYS | {"split"} <= set(q), q["id"]
        assert q["split"] in {"tune", "report"} and q["type"] in READER_TYPES, q["id"]
    # every type is in both halves, and the report half is the larger
    for t in READER_TYPES:
        assert {q["split"] for q in RQS if q["type"] == t} == {"tune", "report"}, t
    counts = Counter(q["split"] for q in RQS)
    assert counts["report"] > counts["tune"]


@pytest.mark.parametrize("q", RQS, ids=lambda q: q["id"])
def test_reader_set_gold_is_in_the_corpus(q):
    for doc in q["gold_docs"]:
        assert (CORPUS / doc).is_file(), doc
    for ev in q["evidence"]:
        assert ev["doc"] in q["gold_docs"]
        assert ev["quote"] in _doc_text(ev["doc"]), ev["quote"][:40]
    if not q["answerable"]:
        # on topic: the file a reader would look in is named, but nothing answers it
        assert q["type"] == "unanswerable" and q["gold_docs"]
        assert not q["answers"] and not q["evidence"]
        return
    text = _norm(" ".join(_doc_text(d) for d in q["gold_docs"]))
    assert q["answers"] and all(_norm(a) in text for a in q["answers"])
    if q["type"] == "multi":
        parts = q["parts"]
        assert len(parts) >= 2 and all(p["question"] and p["answers"] for p in parts)
        assert all(_norm(a) in text for p in parts for a in p["answers"])
        # the flat answers are the parts' (each part names at least one of them)
        assert all(set(p["answers"]) & set(q["answers"]) for p in parts)
    else:
        assert "parts" not in q
