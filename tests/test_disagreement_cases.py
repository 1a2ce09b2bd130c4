"""The hand-labelled disagreement cases (issue 16): seed-corpus and documentation-set
question files, read as citechat reads their corpora.

Checks the data, not the detector: every case is labelled and split, each side's quote
is verbatim in the named document, a disagreeing case names two documents and holds a
quote from each, and the synthetic documents say they are fiction.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from citechat.corpus import load_corpus
from citechat.types import Document

SET = Path(__file__).parents[1] / "eval/datasets/disagreement"
#: question file -> the corpus its questions are asked of
FILES = {"questions.jsonl": SET / "corpus", "docs_questions.jsonl": SET / "docs-corpus"}
ROWS = [
    (name, json.loads(line))
    for name in FILES
    for line in (SET / name).read_text("utf-8").splitlines()
    if line.strip()
]


@cache
def corpus(name: str) -> dict[str, Document]:
    return {d.doc_id: d for d in load_corpus(FILES[name])}


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_every_case_is_labelled_and_split() -> None:
    ids = [r["id"] for _, r in ROWS]
    assert len(ids) == len(set(ids))
    for _, r in ROWS:
        assert isinstance(r["disagree"], bool), r["id"]
        assert r["split"] in ("tune", "report", "report2", "report3", "report4"), r["id"]
        assert r["note"], r["id"]
        assert bool(r.get("disagree_docs")) == r["disagree"], r["id"]


def test_the_held_out_splits_have_new_cases_on_each_corpus() -> None:
    for name in FILES:
        for split, least in (("report", 10), ("report2", 7), ("report3", 5), ("report4", 15)):
            held = [r for n, r in ROWS if n == name and r["split"] == split]
            assert len(held) >= least, (name, split)
            assert sum(r["disagree"] for r in held) >= 3, (name, split)
            assert all("evidence" in r for r in held), (name, split)


@pytest.mark.parametrize(
    ("name", "row"), [(n, r) for n, r in ROWS if "evidence" in r], ids=lambda x: str(x)[:40]
)
def test_each_side_is_quoted_verbatim(name: str, row: dict[str, Any]) -> None:
    docs = corpus(name)
    for ev in row["evidence"]:
        assert ev["doc"] in docs, ev["doc"]
        assert _norm(ev["quote"]) in _norm(docs[ev["doc"]].text), ev["quote"]
    if row["disagree"]:  # a quote for each side, from the documents named (an article
        # and a reader comment on it are two sides in one document)
        assert len(row["evidence"]) == 2, row["id"]
        assert {ev["doc"] for ev in row["evidence"]} == set(row["disagree_docs"]), row["id"]


def test_disagreeing_documents_exist() -> None:
    for name, r in ROWS:
        for doc in r.get("disagree_docs") or ():
            assert doc in corpus(name), (r["id"], doc)


def test_synthetic_documents_are_listed_in_the_readme() -> None:
    readme = (SET / "README.md").read_text("utf-8")
    for name in FILES:
        synthetic = [d for d in corpus(name) if d.startswith("synthetic_")]
        assert synthetic, name
        for doc_id in synthetic:
            assert f"`{doc_id}`" in readme, doc_id
