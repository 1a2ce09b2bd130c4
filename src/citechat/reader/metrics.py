"""Validation metrics of the reader and the unanswerable calibration (numpy only).

Per question, its pairs are its candidates: the gold sentence and the negatives
(answerable), or only negatives (a SQuAD v2.0 unanswerable question).

* ``sentence_auc``: answer probability vs label, over all pairs;
* ``top1``: answerable questions whose best-scored candidate is the gold sentence;
* ``span_em`` / ``span_f1``: the span found in the gold sentence vs the gold answers;
* ``qa_f1``: the span of the best-scored candidate vs the gold answers (what a user
  would be shown), over answerable questions;
* ``unanswerable_auc``: how well the best candidate's logit separates unanswerable
  from answerable questions (needs no calibration);
* ``select`` = mean of ``top1`` and ``qa_f1``: what picks the checkpoint (answer
  quality only: abstention is a calibration fitted after, and the unanswerable AUC
  was too noisy to pick by; the first full run picked a step worse on every answer
  metric because of it).

It does not run the model (train.py hands it logits and spans).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .data import Pair


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve (ties count half); 0.5 when a class is missing.

    >>> auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return 0.5
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3) -> tuple[float, float]:
    """(w, b) of P(y=1) = sigmoid(w * x + b), by Newton's method (1-D, tiny L2).

    >>> w, b = fit_logistic(np.array([-2.0, -1.0, 1.0, 2.0, 0.5, -0.5]),
    ...                     np.array([1, 1, 0, 0, 1, 0]))
    >>> w < 0
    True
    """
    X = np.stack([np.asarray(x, dtype=np.float64), np.ones(len(x))], axis=1)
    t = np.asarray(y, dtype=np.float64)
    beta = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (p - t) + l2 * beta
        hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(beta[0]), float(beta[1])


def by_question(pairs: Sequence[Pair]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        groups[p.qid].append(i)
    return dict(groups)


def question_logits(pairs: Sequence[Pair], logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best candidate's logit, 1 if unanswerable) per question, in first-seen order."""
    best, unans = [], []
    for rows in by_question(pairs).values():
        best.append(float(np.max(logits[rows])))
        unans.append(int(all(pairs[i].kind == "unanswerable" for i in rows)))
    return np.array(best), np.array(unans)


def validation_metrics(
    pairs: Sequence[Pair],
    logits: np.ndarray,
    span_texts: Sequence[str],
    calibration: tuple[float, float] | None = None,
) -> dict[str, float]:
    """The metrics above; with ``calibration`` also the decline rates at p > 0.5."""
    from ..evaluation import exact_match, token_f1

    labels = np.array([p.label for p in pairs])
    out: dict[str, float] = {"pairs": float(len(pairs))}
    out["sentence_auc"] = auc(logits, labels)
    gold = [i for i, p in enumerate(pairs) if p.label == 1]
    out["span_em"] = float(np.mean([exact_match(span_texts[i], pairs[i].answers) for i in gold]))
    out["span_f1"] = float(np.mean([token_f1(span_texts[i], pairs[i].answers) for i in gold]))
    top1, qa_f1 = [], []
    for rows in by_question(pairs).values():
        if not any(pairs[i].label == 1 for i in rows):
            continue
        top = rows[int(np.argmax(logits[rows]))]
        top1.append(float(pairs[top].label == 1))
        qa_f1.append(token_f1(span_texts[top], pairs[top].answers))
    out["questions"] = float(len(by_question(pairs)))
    out["top1"] = float(np.mean(top1)) if top1 else 0.0
    out["qa_f1"] = float(np.mean(qa_f1)) if qa_f1 else 0.0
    best, unans = question_logits(pairs, logits)
    out["unanswerable_questions"] = float(unans.sum())
    out["unanswerable_auc"] = auc(-best, unans)
    out["select"] = (out["top1"] + out["qa_f1"]) / 2
    if calibration is not None:
        w, b = calibration
        declined = 1.0 / (1.0 + np.exp(-(w * best + b))) > 0.5
        if unans.any():
            out["declined_unanswerable"] = float(declined[unans == 1].mean())
        if (unans == 0).any():
            out["wrongly_declined"] = float(declined[unans == 0].mean())
    return out
