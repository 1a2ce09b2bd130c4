"""Answer and ranking metrics of one prediction: SQuAD's exact match and token F1,
"gold in answer" (a gold answer inside the quoted sentences), hit rank and nDCG.
evaluation.py applies them to result lines; nothing here reads files.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

#: depth of the hit@k curve, MRR and nDCG
DEPTH = 10


def normalize_answer(s: str) -> str:
    """SQuAD's answer normalisation (Rajpurkar et al., 2016).

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


def parts_contained(prediction: str, parts: Sequence[dict[str, Any]]) -> float:
    """A multi-part question: the share of its parts whose gold is in the answer.

    >>> parts_contained("Ann won; it rained", [{"answers": ["Ann"]}, {"answers": ["snow"]}])
    0.5
    """
    return sum(gold_contained(prediction, p.get("answers") or []) for p in parts) / len(parts)


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


def ndcg(gains: Sequence[float], relevant: int, k: int = DEPTH) -> float:
    """nDCG@k of binary ``gains`` in rank order when ``relevant`` items exist.

    >>> round(ndcg([0, 1, 0, 1], relevant=2), 4)  # (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    0.6509
    """
    if relevant <= 0:
        return 0.0
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, relevant)))
    return dcg / ideal
