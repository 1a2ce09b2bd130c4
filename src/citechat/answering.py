"""Answerers: question + retrieved hits -> Answer with [n] citations.

One protocol (:class:`Answerer`); the default, :class:`ExtractiveAnswerer`,
is offline and instant and faithful by construction: it quotes the sentences
of the retrieved chunks that best answer the question, each with its own
citation, and declines when the best evidence is weak.  A claim made by a
reader comment is always attributed to the commenter, never to the article.

LLM answerers (transformers, OpenAI-compatible) live in ``generation.py``.
It does not verify citations (citations.py does) or retrieve (retrieval.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal, Protocol

from .abstention import AbstentionModel
from .index import Index
from .retrieval import Retrieval, Retriever
from .text import term_set, terms
from .types import Answer, Citation, Hit, SentenceSupport, marker

DECLINE = "I could not find this in the documents."

log = logging.getLogger("citechat")

#: (role, text) pairs, oldest first; role is "user" or "assistant"
History = Sequence[tuple[str, str]]

_PRONOUN = re.compile(
    r"\b(she|he|they|it|her|his|their|them|him|this|that|these|those|there)\b", re.I
)


class Answerer(Protocol):
    name: str

    def answer(self, question: str, retrieval: Retrieval, *, history: History = ()) -> Answer:
        """Answer ``question`` from ``retrieval.hits`` only."""
        ...


def packaged_abstention(embedder: str) -> AbstentionModel | None:
    """The shipped abstention model when it was calibrated for ``embedder``;
    otherwise None (the answerer falls back to its evidence threshold), since
    cosines of one embedder mean nothing on another's scale."""
    model = AbstentionModel.load()
    if model.embedder and model.embedder != embedder:
        log.info(
            "abstention model was calibrated for %s, not %s: using the evidence threshold",
            model.embedder,
            embedder,
        )
        return None
    return model


def make_citation(index: Index, n: int, hit: Hit, start: int, end: int) -> Citation:
    doc = index.documents[hit.chunk.doc_id]
    return Citation(
        n=n,
        doc_id=doc.doc_id,
        title=doc.title,
        section=hit.chunk.section,
        commenter=hit.chunk.commenter,
        start=start,
        end=end,
        quote=doc.text[start:end],
    )


def attributed(sentence: str, citation: Citation) -> str:
    """A quoted sentence, attributed to its commenter when it comes from a comment.

    >>> c = Citation(1, "d", "T", "comment", "Lou", 0, 1, "x")
    >>> attributed("It is bad.", c)
    'A reader comment by Lou says: “It is bad.” [1]'
    """
    if citation.section == "comment":
        who = f"by {citation.commenter} " if citation.commenter else ""
        return f"A reader comment {who}says: “{sentence}” {marker(citation.n)}"
    return f"{sentence} {marker(citation.n)}"


def history_query(question: str, history: History) -> str:
    """The retrieval query for a follow-up: when the question leans on the
    conversation (a pronoun, or very short), the names from the previous user
    question are added, so "she" finds Sharon Shoesmith; its other words are not,
    or the previous question's topic would crowd out the new one.

    >>> previous = [("user", "What was Sharon Shoesmith's job?")]
    >>> history_query("When did she lose her appeal?", previous)
    "Sharon Shoesmith's When did she lose her appeal?"
    """
    previous = [text for role, text in history if role == "user"]
    if previous and (_PRONOUN.search(question) or len(question.split()) <= 4):
        names = [w for w in _CAPITALISED.findall(previous[-1]) if terms(w)]
        if names:
            return f"{' '.join(names)} {question}"
    return question


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    start: int
    end: int
    text: str
    score: float
    cosine: float
    lexical: float
    prior: float = 0.0
    #: multiplier for fragments and questions (1.0 for a plain sentence)
    penalty: float = 1.0
    #: how well a phrase of the answer type the question asks for (a new name for
    #: "who", a date for "when", ...) sits next to the question's predicates
    typed: float = 0.0

    def evidence(self, w_cos: float, w_lex: float) -> float:
        """Absolute strength of the match, for abstention.  The rank prior is
        left out: it is relative, so the top chunk always has it in full."""
        return (w_cos * self.cosine + w_lex * self.lexical) / (w_cos + w_lex) * self.penalty


class ExtractiveAnswerer:
    """Selects answer sentences from the retrieved chunks.

    Each sentence is scored by cosine similarity to the question (precomputed
    sentence vectors), IDF-weighted overlap with the question's terms, and the
    rank of its chunk.  The best sentence is kept; up to two more are kept
    when nearly as good.  Below ``threshold`` it declines.
    """

    name = "extractive"

    def __init__(
        self,
        retriever: Retriever,
        *,
        threshold: float = 0.36,
        max_sentences: int = 3,
        # tuned with eval/calibrate.py on SQuAD v1.1 dev (see README)
        weights: tuple[float, float, float] = (0.3, 0.2, 0.5),
        entity_weight: float = 0.4,
        type_weight: float = 0.35,
        abstention: AbstentionModel | Literal["packaged"] | None = "packaged",
        abstain_threshold: float | None = None,
    ) -> None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
        self.retriever = retriever
        self.index = retriever.index
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.weights = weights
        self.entity_weight = entity_weight
        self.type_weight = type_weight
        self._rows: dict[str, int] | None = None
        #: None: decline on ``threshold`` alone (the evidence of the best sentence)
        self.abstention = (
            packaged_abstention(self.index.embedder.name)
            if abstention == "packaged"
            else abstention
        )
        if self.abstention is not None and abstain_threshold is not None:
            self.abstention = self.abstention.with_threshold(abstain_threshold)

    def candidates(self, question: str, retrieval: Retrieval) -> list[Candidate]:
        # a follow-up is scored with the history-aware query retrieval used
        question = retrieval.query or question
        qvec = retrieval.query_vector
        if qvec is None:
            qvec = self.index.embedder.embed([question])[0]
        entities, predicates = split_question(question)
        idf = self.retriever.idf
        wanted = answer_type(question)
        question_terms = set(terms(question))

        def coverage(wanted: AbstractSet[str], have: AbstractSet[str]) -> float | None:
            # a term no chunk contains cannot tell sentences apart: it weighs nothing
            total = sum(idf.get(t, 0.0) for t in wanted)
            if total <= 0:
                return None
            return sum(idf.get(t, 0.0) for t in wanted & have) / total

        # the best retrieval score, wherever an evidence rerank put it
        top = max((h.score for h in retrieval.hits), default=1.0)
        w_cos, w_lex, w_prior = self.weights
        seen: set[tuple[str, int, int]] = set()
        out: list[Candidate] = []
        for hit in retrieval.hits:
            doc = self.index.documents[hit.chunk.doc_id]
            prior = hit.score / top if top > 0 else 0.0
            context = term_set(hit.chunk.embedding_text())
            for a, b in hit.chunk.sentences:
                key = (doc.doc_id, a, b)
                if key in seen:
                    continue
                seen.add(key)
                text = doc.text[a:b]
                vec = self.index.sentence_vector(*key)
                cosine = float(vec @ qvec) if vec is not None else 0.0
                words = term_set(text)
                lexical = _lexical(
                    coverage, entities, predicates, words, context, self.entity_weight
                )
                penalty = 1.0
                if len(text.split()) < 5:  # headings and fragments rarely answer anything
                    penalty *= 0.6
                if text.rstrip().endswith("?"):
                    penalty *= 0.85
                typed = (
                    typed_support(text, wanted, question_terms, predicates, idf) if wanted else 0.0
                )
                score = (
                    w_cos * cosine + w_lex * lexical + w_prior * prior + self.type_weight * typed
                ) * penalty
                out.append(
                    Candidate(hit, a, b, text, score, cosine, lexical, prior, penalty, typed)
                )
        out.sort(key=lambda c: (-c.score, c.hit.rank, c.start))
        return out

    def features(
        self, question: str, retrieval: Retrieval, cands: Sequence[Candidate]
    ) -> dict[str, float]:
        """The abstention model's inputs (names in :data:`abstention.FEATURES`)."""
        question = retrieval.query or question
        idf = self.retriever.idf
        entities, _ = split_question(question)
        asked = set(terms(question))

        # a term no chunk holds weighs as much as the rarest term that some chunk holds
        rare = max(idf.values(), default=1.0)

        def share(wanted: AbstractSet[str], have: AbstractSet[str]) -> float:
            total = sum(idf.get(t, rare) for t in wanted)
            return sum(idf.get(t, rare) for t in wanted & have) / total if total > 0 else 1.0

        top = retrieval.hits[0] if retrieval.hits else None
        context = term_set(top.chunk.embedding_text()) if top else frozenset()
        # a question term that no chunk holds at all (a name the documents never mention)
        unknown = sum(t not in idf for t in asked) / len(asked) if asked else 0.0
        best = cands[0] if cands else None
        return {
            "evidence": best.evidence(*self.weights[:2]) if best else 0.0,
            "cosine": max((c.cosine for c in cands), default=0.0),
            "lexical": best.lexical if best else 0.0,
            "typed": max((c.typed for c in cands[:5]), default=0.0),
            "has_type": 1.0 if answer_type(question) else 0.0,
            "entity_cov": share(entities, context),
            "term_cov": share(asked, context),
            "unknown": unknown,
            "dense": self._chunk_cosine(top, retrieval, question) if top else 0.0,
        }

    def _chunk_cosine(self, hit: Hit, retrieval: Retrieval, question: str) -> float:
        """Cosine of the query and ``hit``'s chunk, whatever the retrieval mode
        (BM25-only retrieval has no dense score, but the abstention model needs one)."""
        if hit.dense_score is not None:
            return float(hit.dense_score)
        if self._rows is None:
            self._rows = {c.chunk_id: i for i, c in enumerate(self.index.chunks)}
        row = self._rows.get(hit.chunk.chunk_id)
        if row is None:
            return 0.0
        qvec = retrieval.query_vector
        if qvec is None:
            qvec = self.index.embedder.embed([question])[0]
        return float(self.index.vectors[row] @ qvec)

    def decide(
        self, question: str, retrieval: Retrieval, cands: Sequence[Candidate]
    ) -> tuple[bool, float | None]:
        """(decline?, p(answerable)) for these candidates."""
        if not cands:
            return True, 0.0
        if self.abstention is None:
            return cands[0].evidence(*self.weights[:2]) < self.threshold, None
        p = self.abstention.p_answerable(self.features(question, retrieval, cands))
        return p < self.abstention.threshold, p

    def answer(self, question: str, retrieval: Retrieval, *, history: History = ()) -> Answer:
        t0 = time.perf_counter()
        cands = self.candidates(question, retrieval)
        declined, confidence = self.decide(question, retrieval, cands)
        if declined:
            return Answer(
                question=question,
                text=DECLINE,
                citations=(),
                abstained=True,
                hits=tuple(retrieval.hits),
                answerer=self.name,
                latency_ms={"answer": (time.perf_counter() - t0) * 1000},
                confidence=confidence,
            )
        best = cands[0]
        chosen = [best]
        for cand in cands[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if cand.score < 0.9 * best.score or cand.evidence(*self.weights[:2]) < self.threshold:
                break
            if any(_near_duplicate(cand, c) for c in chosen):
                continue
            chosen.append(cand)
        citations = [
            make_citation(self.index, n, c.hit, c.start, c.end) for n, c in enumerate(chosen, 1)
        ]
        parts = [attributed(c.text, cit) for c, cit in zip(chosen, citations, strict=True)]
        # each sentence is its citation's span, verbatim (make_citation quotes the same
        # document span the candidate holds): supported by construction, and the
        # embedding check would be misled by the "A reader comment by X says" wrapper
        sentences = tuple(
            SentenceSupport(part, (cit.n,), True, 1.0)
            for part, cit in zip(parts, citations, strict=True)
        )
        return Answer(
            question=question,
            text=" ".join(parts),
            citations=tuple(citations),
            abstained=False,
            hits=tuple(retrieval.hits),
            sentences=sentences,
            answerer=self.name,
            latency_ms={"answer": (time.perf_counter() - t0) * 1000},
            confidence=confidence,
        )


def rerank_by_evidence(
    scorer: ExtractiveAnswerer, question: str, retrieval: Retrieval, k: int
) -> Retrieval:
    """The ``k`` hits whose best sentence scores highest as an answer.

    A chunk is ranked by its best :class:`Candidate` score (sentence cosine, term
    coverage, answer type and the fused retrieval score as a prior), so a
    passage that holds an answering sentence moves above one that only shares
    the topic.  On SQuAD v1.1 dev (first 1,000) it lifts document hit@1 from
    0.756 to 0.781 over the top 20 (eval/rerank_experiment.py).  The hits keep
    their retrieval scores; only their order and ranks change.
    """
    if not retrieval.hits:
        return retrieval
    t0 = time.perf_counter()
    best: dict[str, float] = {}
    for cand in scorer.candidates(question, retrieval):  # best first
        best.setdefault(cand.hit.chunk.chunk_id, cand.score)
    order = sorted(retrieval.hits, key=lambda h: (-best.get(h.chunk.chunk_id, 0.0), h.rank))
    hits = [replace(h, rank=rank) for rank, h in enumerate(order[:k], start=1)]
    timings = {**retrieval.timings, "evidence": (time.perf_counter() - t0) * 1000}
    return replace(retrieval, hits=hits, timings=timings)


_CAPITALISED = re.compile(r"\b[A-Z][\w’'-]*")

AnswerType = Literal["person", "time", "number", "place"]

_TYPE_PATTERNS: tuple[tuple[re.Pattern[str], AnswerType], ...] = (
    (re.compile(r"^\s*(who|whom|whose)\b", re.I), "person"),
    (
        re.compile(
            r"^\s*(when\b|(in |on )?(what|which) (year|date|month|day|decade|century)\b)", re.I
        ),
        "time",
    ),
    (
        re.compile(
            r"^\s*(how (many|much|long|old|often|far)|what (percentage|proportion|number))\b",
            re.I,
        ),
        "number",
    ),
    (re.compile(r"^\s*where\b", re.I), "place"),
)
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_TIME = re.compile(
    rf"\b(1[0-9]{{3}}|20[0-9]{{2}}|{_MONTHS}|(mon|tues|wednes|thurs|fri|satur|sun)day"
    r"|yesterday|today|last (week|month|year))\b",
    re.I,
)
_NUMBER = re.compile(
    r"\b(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|half)\b",
    re.I,
)
_NAME = re.compile(r"\b[A-Z][\w’'-]+(?:\s+(?:of\s+|de\s+|van\s+)?[A-Z][\w’'-]+)*")
_WORD = re.compile(r"\w[\w’'-]*")
#: words either side of an answer phrase in which the question's predicates count
WINDOW = 8


def answer_type(question: str) -> AnswerType | None:
    """The kind of phrase a question asks for, from its wh-word; None when unclear.

    >>> answer_type("Who did Ed Balls appoint?"), answer_type("In what year did it end?")
    ('person', 'time')
    >>> answer_type("What did Nick Bromley say?") is None
    True
    >>> answer_type("How many times was he seen?"), answer_type("When did she lose?")
    ('number', 'time')
    """
    for pattern, kind in _TYPE_PATTERNS:
        if pattern.search(question):
            return kind
    return None


def answer_phrases(sentence: str, kind: AnswerType) -> list[tuple[int, int]]:
    """Character spans of phrases of ``kind`` in a sentence (names, dates, numbers).

    >>> s = "Balls ordered the appointment of a new director, Peter Lewis, in 2008."
    >>> [s[a:b] for a, b in answer_phrases(s, "person")]
    ['Balls', 'Peter Lewis']
    >>> [s[a:b] for a, b in answer_phrases(s, "time")]
    ['2008']
    """
    pattern = {"person": _NAME, "place": _NAME, "time": _TIME, "number": _NUMBER}[kind]
    return [m.span() for m in pattern.finditer(sentence)]


def typed_support(
    sentence: str,
    kind: AnswerType,
    question_terms: set[str],
    predicates: set[str],
    idf: dict[str, float],
) -> float:
    """Share (IDF-weighted) of the question's predicates found within ``WINDOW``
    words of a phrase of the wanted kind that the question itself does not
    contain: the sliding-window test of classic factoid QA.  A sentence that
    restates the question without naming anything new scores 0.

    >>> idf = {"appoint": 2.0, "servic": 0.5, "run": 1.0}
    >>> preds = {"appoint", "servic", "run"}
    >>> q = {"ed", "ball", "haringey", *preds}
    >>> typed_support("He ordered the appointment of Peter Lewis.", "person", q, preds, idf)
    0.571...
    >>> typed_support("Ed Balls rejected claims by Haringey.", "person", q, preds, idf)
    0.0
    """
    total = sum(idf.get(t, 0.0) for t in predicates)
    if total <= 0:
        return 0.0
    words = _words(sentence)
    best = 0.0
    for a, b in answer_phrases(sentence, kind):
        phrase = term_set(sentence[a:b])
        if not phrase or phrase <= question_terms:
            continue  # a name the question already gives is not an answer
        inside = [i for i, (s, e, _) in enumerate(words) if s < b and a < e]
        if not inside:
            continue
        lo, hi = max(0, inside[0] - WINDOW), inside[-1] + WINDOW + 1
        near = {t for _, _, ts in words[lo:hi] for t in ts} - phrase
        best = max(best, sum(idf.get(t, 0.0) for t in predicates & near) / total)
    return best


@lru_cache(maxsize=1 << 14)
def _words(sentence: str) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """(start, end, terms) of each word of a sentence, cached like :func:`term_set`."""
    return tuple((m.start(), m.end(), term_set(m.group())) for m in _WORD.finditer(sentence))


def split_question(question: str) -> tuple[set[str], set[str]]:
    """(entity terms, predicate terms) of a question.

    Entities (capitalised words) are often replaced by a description in the
    answer sentence ("Ed Balls" -> "the children's secretary"), so they are
    matched against the whole chunk; predicates ("appoint") must be in the
    sentence itself.

    >>> [sorted(s) for s in split_question("Who did Ed Balls appoint to run Haringey's services?")]
    [['ball', 'ed', 'haringey'], ['appoint', 'run', 'servic']]
    """
    entities = set(terms(" ".join(_CAPITALISED.findall(question))))
    return entities, set(terms(question)) - entities


def _lexical(
    coverage: Callable[[AbstractSet[str], AbstractSet[str]], float | None],
    entities: set[str],
    predicates: set[str],
    sentence: AbstractSet[str],
    context: AbstractSet[str],
    entity_weight: float,
) -> float:
    pred = coverage(predicates, sentence)
    ent_s, ent_c = coverage(entities, sentence), coverage(entities, context)
    ent = None if ent_s is None or ent_c is None else 0.5 * ent_s + 0.5 * ent_c
    if pred is None:
        return ent or 0.0
    if ent is None:
        return pred
    return (1 - entity_weight) * pred + entity_weight * ent


def _near_duplicate(a: Candidate, b: Candidate) -> bool:
    """Same span, or the same words repeated elsewhere (quotes echoed in comments)."""
    if a.hit.chunk.doc_id == b.hit.chunk.doc_id and a.start < b.end and b.start < a.end:
        return True
    wa, wb = set(a.text.lower().split()), set(b.text.lower().split())
    return len(wa & wb) / max(1, min(len(wa), len(wb))) > 0.8
