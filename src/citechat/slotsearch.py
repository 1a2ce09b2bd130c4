"""A second search for the other side of a typed claim: chunks the question's own
retrieval left out that repeat the claim's sentence around its value.

    >>> slot_query("How many cases?", "He had 80 cases.", (7, 9))
    'How many cases? He had  cases.'

The first retrieval ranks whole chunks against the question, so a short sentence that
contradicts the best one, inside a chunk about other things, can rank below the top
k ("Baby P's social worker had 18 cases at the time" in a page about his injuries).
BM25 over the chunks with the question and the claim's sentence, its value left out,
finds the chunks that state the same slot; :func:`same_slot` picks, among the
sentences already read but ranked past the compared ones, those that repeat it.  It
only finds chunks and sentences: answering.py reads
their sentences and disagreement.py decides whether they disagree.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from .retrieval import Retriever
from .types import Hit
from .verbforms import stems

#: chunks the second search adds, at most
SLOT_CHUNKS = 3


def slot_query(question: str, sentence: str, span: tuple[int, int]) -> str:
    """The question and ``sentence`` with the claim at ``span`` (offsets in it) left
    out: the words another source stating the same slot would repeat."""
    a, b = span
    return f"{question} {sentence[:a]}{sentence[b:]}"


def same_slot(question: str, sentence: str, span: tuple[int, int], other: str) -> bool:
    """Whether ``other`` repeats more than half the words of ``sentence`` around its
    claim at ``span``, names the question does not give left out (they are the values
    that vary: "Sven Rudolph" beside "Susan"): a candidate read but ranked past the
    compared ones that may state the same slot.

    >>> q, s = "Who rewrote the FAQ?", "The FAQ was rewritten by Ann and Bo Smith."
    >>> same_slot(q, s, (25, 28), "Cy rewrote the FAQ."), same_slot(q, s, (25, 28), "The FAQ page.")
    (True, False)
    """
    a, b = span
    rest = f"{sentence[:a]} {sentence[b:]}"
    names = stems(" ".join(re.findall(r"\b[A-Z][\w’'/-]*", rest))) - stems(question)
    want = stems(rest) - names
    return 2 * len(want & stems(other)) > len(want)


def slot_hits(
    retriever: Retriever, query: str, seen: Collection[str], n: int = SLOT_CHUNKS
) -> list[Hit]:
    """The ``n`` best chunks for ``query`` by BM25 alone (no embedding: it is cheap)
    whose ids are not in ``seen``, ranked from 1."""
    out: list[Hit] = []
    for row, score in retriever.bm25_search(query, n + len(seen)):
        chunk = retriever.index.chunks[row]
        if chunk.chunk_id in seen:
            continue
        out.append(Hit(chunk, score, len(out) + 1, bm25_score=score))
        if len(out) == n:
            break
    return out
