"""Precision and recall of "Sources disagree" over a hand-labelled question set.

A question row that carries ``"disagree": true`` (the retrieved passages make
incompatible claims about what it asks) or ``false`` (they agree, or say different
things) is scored against its result line's ``disagreement`` field: flagged or not.
``disagree_docs`` (optional) names the documents of the sides; a flagged case counts
as found on its sources when some side cites one of them.  evaluation.py adds the
summary as the ``disagreement`` group of a run's metrics when the set has labels.

It does not detect disagreements (disagreement.py) nor run the questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def labelled(row: dict[str, Any]) -> bool:
    """Whether a question row says if its sources disagree."""
    return isinstance(row.get("disagree"), bool)


def flagged(rec: dict[str, Any]) -> bool:
    """Whether a result line says its sources disagree."""
    return bool(rec.get("disagreement"))


def side_docs(rec: dict[str, Any]) -> set[str]:
    """The documents the sides of a result line's disagreement cite.

    >>> rec = {"citations": [{"n": 1, "doc_id": "a"}, {"n": 2, "doc_id": "b"}],
    ...        "disagreement": {"sides": [{"n": 2}]}}
    >>> side_docs(rec)
    {'b'}
    """
    by_n = {c["n"]: c["doc_id"] for c in rec.get("citations") or ()}
    sides = (rec.get("disagreement") or {}).get("sides") or ()
    return {by_n[s["n"]] for s in sides if s.get("n") in by_n}


def disagreement_summary(
    rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """Precision and recall of the flag over the labelled rows; None without any.

    >>> rows = [{"disagree": True}, {"disagree": True}, {"disagree": False}, {}]
    >>> recs = [{"disagreement": {"sides": []}}, {}, {"disagreement": {"sides": []}}, {}]
    >>> s = disagreement_summary(rows, recs)
    >>> s["precision"], s["recall"], s["cases"], s["false_positives"]
    (0.5, 0.5, 3, 1)
    """
    pairs = [(r, rec) for r, rec in zip(rows, records, strict=True) if labelled(r)]
    if not pairs:
        return None
    tp = [(r, rec) for r, rec in pairs if r["disagree"] and flagged(rec)]
    fp = sum(1 for r, rec in pairs if not r["disagree"] and flagged(rec))
    fn = sum(1 for r, rec in pairs if r["disagree"] and not flagged(rec))
    with_docs = [(r, rec) for r, rec in tp if r.get("disagree_docs")]
    on_sources = sum(bool(set(r["disagree_docs"]) & side_docs(rec)) for r, rec in with_docs)
    return {
        "cases": len(pairs),
        "disagreeing": sum(1 for r, _ in pairs if r["disagree"]),
        "flagged": len(tp) + fp,
        "true_positives": len(tp),
        "false_positives": fp,
        "false_negatives": fn,
        "precision": round(len(tp) / (len(tp) + fp), 4) if tp or fp else None,
        "recall": round(len(tp) / (len(tp) + fn), 4) if tp or fn else None,
        "found_on_sources": round(on_sources / len(with_docs), 4) if with_docs else None,
    }
