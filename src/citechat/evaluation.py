"""Evaluation over JSONL question sets: per-question results and summary metrics.

Input lines: ``{"id", "question"}`` plus optional gold ``answers``, ``gold_docs``
(or ``gold_ids``, as in the SQuAD/PubMedQA conversions) and ``evidence``
(``[{"doc", "quote"}]``).  Output lines follow the public results schema::

    {"id","question","answer","abstained","citations":[{"n","doc_id","title","section",
     "commenter","start","end","quote"}],"retrieved":[{"rank","doc_id","chunk_id","start",
     "end","score"}],"latency_ms":{"retrieve","answer","total"}}

plus added fields (``sentences``, ``answerer``).  Field names never change.
Models load once for the whole run.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import UsageError

KS = (1, 3, 5, 10)


def read_questions(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UsageError(f"question file not found: {path}; pass a JSONL file of questions")
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{path}:{lineno} is not valid JSON ({exc})") from exc
            if not isinstance(row, dict) or "question" not in row:
                raise UsageError(f'{path}:{lineno} has no "question" field')
            row.setdefault("id", str(lineno))
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
    return out


def gold_docs(row: dict[str, Any]) -> list[str]:
    return list(row.get("gold_docs") or row.get("gold_ids") or [])


def is_answerable(row: dict[str, Any]) -> bool | None:
    """True/False when the row says; None when it carries no gold at all."""
    if "answerable" in row:
        return bool(row["answerable"])
    if row.get("is_impossible") is not None:
        return not row["is_impossible"]
    if "answers" in row or "gold_docs" in row or "gold_ids" in row:
        return bool(row.get("answers") or gold_docs(row))
    return None


# -- SQuAD answer normalisation (Rajpurkar et al., 2016) ---------------------------


def normalize_answer(s: str) -> str:
    """
    >>> normalize_answer("The  Peter Lewis!")
    'peter lewis'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation) | {"‘", "’", "“", "”"})
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best token F1 over the gold answers.

    >>> round(token_f1("Peter Lewis was appointed", ["Peter Lewis"]), 3)
    0.667
    """
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        g = normalize_answer(gold).split()
        common = Counter(pred) & Counter(g)
        same = sum(common.values())
        if same == 0:
            continue
        p, r = same / len(pred), same / len(g)
        best = max(best, 2 * p * r / (p + r))
    return best


def gold_contained(prediction: str, golds: Sequence[str]) -> float:
    norm = normalize_answer(prediction)
    return float(any(normalize_answer(g) and normalize_answer(g) in norm for g in golds))


def first_gold_rank(retrieved: Sequence[str], golds: Iterable[str]) -> int | None:
    """1-based rank of the first retrieved id in ``golds`` (doc level, duplicates allowed).

    >>> first_gold_rank(["a", "b", "b"], ["b"])
    2
    """
    gold = set(golds)
    for rank, doc in enumerate(retrieved, 1):
        if doc in gold:
            return rank
    return None


def citation_on_evidence(
    citation: dict[str, Any], evidence: Sequence[dict[str, Any]], doc_texts: dict[str, str]
) -> bool:
    """True when a citation's span overlaps an evidence quote of the same document."""
    for ev in evidence:
        if ev.get("doc") != citation["doc_id"]:
            continue
        text = doc_texts.get(citation["doc_id"], "")
        start = text.find(ev.get("quote", ""))
        if start < 0:
            continue
        end = start + len(ev["quote"])
        if citation["start"] < end and start < citation["end"]:
            return True
    return False


def run_eval(
    settings: Settings,
    questions: Path,
    out: Path,
    *,
    limit: int | None = None,
    k: int = 10,
    answerer: str | None = None,
) -> dict[str, Any]:
    from tqdm import tqdm

    from .pipeline import Pipeline

    rows = read_questions(questions, limit)
    pipe = Pipeline.load(settings, answerer=answerer)
    doc_texts = {d.doc_id: d.text for d in pipe.index.documents.values()}
    out.parent.mkdir(parents=True, exist_ok=True)
    records = []
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in tqdm(rows, desc="questions", unit="q", disable=None):
            answer = pipe.ask(row["question"], k=k)
            data = answer.to_json()
            record = {
                "id": row["id"],
                "question": row["question"],
                "answer": data["answer"],
                "abstained": data["abstained"],
                "citations": data["citations"],
                "retrieved": data["retrieved"],
                "latency_ms": {
                    "retrieve": data["latency_ms"]["retrieve"],
                    "answer": data["latency_ms"]["answer"],
                    "total": data["latency_ms"]["total"],
                },
                "sentences": data["sentences"],
                "answerer": data["answerer"],
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            records.append(record)
    tmp.replace(out)
    summary = summarize(rows, records, doc_texts)
    summary["questions_file"] = str(questions)
    summary["results_file"] = str(out)
    return summary


def summarize(
    rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]], doc_texts: dict[str, str]
) -> dict[str, Any]:
    """Headline metrics over questions that carry the needed gold."""
    n_ret = 0
    hits = dict.fromkeys(KS, 0)
    mrr = 0.0
    em = f1 = contained = 0.0
    n_ans = 0
    answerable = unanswerable = wrongly_declined = declined_unanswerable = 0
    cites = cites_on_gold = 0
    with_evidence = gold_cited = 0
    latencies = sorted(r["latency_ms"]["total"] for r in records)
    for row, rec in zip(rows, records, strict=True):
        golds = gold_docs(row)
        ok = is_answerable(row)
        if golds:
            n_ret += 1
            # doc-level: collapse chunks of the same document to its first rank
            docs = list(dict.fromkeys(h["doc_id"] for h in rec["retrieved"]))
            rank = first_gold_rank(docs, golds)
            if rank:
                mrr += 1.0 / rank if rank <= 10 else 0.0
                for kk in KS:
                    hits[kk] += rank <= kk
        if ok is True:
            answerable += 1
            wrongly_declined += rec["abstained"]
        elif ok is False:
            unanswerable += 1
            declined_unanswerable += rec["abstained"]
        if ok and row.get("answers"):
            n_ans += 1
            pred = "" if rec["abstained"] else " ".join(c["quote"] for c in rec["citations"])
            em += exact_match(pred, row["answers"])
            f1 += token_f1(pred, row["answers"])
            contained += gold_contained(pred, row["answers"])
        evidence = row.get("evidence") or []
        if ok and not rec["abstained"]:
            for c in rec["citations"]:
                cites += 1
                if evidence:
                    cites_on_gold += citation_on_evidence(c, evidence, doc_texts)
                elif golds:
                    cites_on_gold += c["doc_id"] in golds
            if evidence:
                with_evidence += 1
                gold_cited += any(
                    citation_on_evidence(c, evidence, doc_texts) for c in rec["citations"]
                )

    def share(a: float, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "questions": len(records),
        "retrieval": {
            "questions": n_ret,
            **{f"hit@{kk}": share(hits[kk], n_ret) for kk in KS},
            "mrr@10": share(mrr, n_ret),
        },
        "answers": {
            "questions": n_ans,
            "exact_match": share(em, n_ans),
            "f1": share(f1, n_ans),
            "gold_contained": share(contained, n_ans),
        },
        "citations": {
            "citations": cites,
            "precision": share(cites_on_gold, cites),
            "gold_passage_cited": share(gold_cited, with_evidence),
        },
        "abstention": {
            "answerable": answerable,
            "unanswerable": unanswerable,
            "declined_unanswerable": share(declined_unanswerable, unanswerable),
            "wrongly_declined_answerable": share(wrongly_declined, answerable),
        },
        "latency_ms": {"p50": _pct(latencies, 50), "p95": _pct(latencies, 95)},
    }


def _pct(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    i = min(len(values) - 1, max(0, round(pct / 100 * (len(values) - 1))))
    return round(values[i], 2)


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"questions: {summary['questions']}"]
    for group in ("retrieval", "answers", "citations", "abstention", "latency_ms"):
        values = ", ".join(f"{k} {v}" for k, v in summary[group].items())
        lines.append(f"{group}: {values}")
    return "\n".join(lines)
