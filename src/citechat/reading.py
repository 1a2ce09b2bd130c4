"""Reading the retrieved passages: every sentence of the retrieved chunks scored
against the question, once per question.

A :class:`SentenceScorer` turns (question, retrieval) into a :class:`Reading`: the
candidate sentences best first (cosine to the question, coverage of its predicates
and names, the chunk's retrieval score, answer-type support) and, on first use, the
features the abstention model decides on.  The evidence rerank
(:func:`rerank_by_evidence`), the abstention gate and every answerer read the same
Reading, so nothing is scored twice.

It does not choose or phrase an answer (answering.py) nor retrieve (retrieval.py).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

import numpy as np

from .abstention import AbstentionModel
from .answertypes import AnswerType, answer_type, typed_support
from .questions import holds_quote, named_commenter, quotes, same_commenter, without_commenter
from .retrieval import Retrieval, Retriever
from .text import term_set, terms
from .types import Hit


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
    #: the reader's P(this sentence answers the question), when it read the sentence
    #: (rereading.py); None when no reader ran
    reader: float | None = None
    #: a dense reader's question-sentence cosine, when one read the sentence
    reader_cosine: float | None = None
    #: the reader's short answer inside the sentence, in document characters
    short: tuple[int, int] | None = None
    #: the sentence holds words the question quotes (questions.py): the documents
    #: answer the question, and this sentence is where
    quoted: bool = False

    def evidence(self, w_cos: float, w_lex: float) -> float:
        """Absolute strength of the match, for abstention.  The rank prior is
        left out: it is relative, so the top chunk always has it in full."""
        return (w_cos * self.cosine + w_lex * self.lexical) / (w_cos + w_lex) * self.penalty


@dataclass(frozen=True)
class _Asked:
    """What scoring a sentence needs to know of the question, worked out once."""

    query: str
    #: None only when there is nothing to score (no hits)
    vector: np.ndarray | None
    entities: set[str]
    predicates: set[str]
    wanted: AnswerType | None
    terms: set[str]
    #: the question's quotations, and the commenter it names (questions.py)
    quotes: tuple[str, ...] = ()
    commenter: str | None = None


@dataclass(frozen=True)
class _Sentence:
    """A chunk sentence's features for one question (the rank prior aside)."""

    text: str
    cosine: float
    lexical: float
    penalty: float
    typed: float


@dataclass(frozen=True)
class Part:
    """One part of a multi-part question and the candidates that answer it best."""

    question: str
    candidates: tuple[Candidate, ...]
    #: the reader's P(the documents do not answer this part), when a reader read it
    p_unanswerable: float | None = None


@dataclass(frozen=True, eq=False)
class Reading:
    """One question's retrieval with its candidate answer sentences, scored once.

    :meth:`SentenceScorer.read` builds it (``Pipeline.ask`` does, once per
    question); the evidence rerank (:func:`rerank_by_evidence`), the abstention
    gate (:attr:`features`) and every answerer then read its ``candidates``
    rather than scoring the sentences again.
    """

    retrieval: Retrieval
    #: best first, one per document span
    candidates: tuple[Candidate, ...]
    scorer: SentenceScorer = field(repr=False)
    _asked: _Asked = field(repr=False)
    #: every sentence scored so far, by (chunk id, start, end): a rerank reuses them
    _scored: dict[tuple[str, int, int], _Sentence] = field(default_factory=dict, repr=False)
    #: time spent scoring the sentences
    read_ms: float = 0.0
    #: the reader's P(the documents do not answer), when a reader read the candidates
    p_unanswerable: float | None = None
    #: a multi-part question ("What X, and what Y?"): each part's own candidates
    #: (:meth:`SentenceScorer.read_parts`); empty for a one-part question
    parts: tuple[Part, ...] = ()
    #: the abstention model that goes with the reader that read the candidates (one
    #: fitted on its ``reader_cosine``); None: the answerer's own
    abstention: AbstentionModel | None = field(default=None, repr=False)

    @property
    def query(self) -> str:
        """The text the sentences were scored against (a follow-up's history-aware query)."""
        return self._asked.query

    @property
    def hits(self) -> list[Hit]:
        return self.retrieval.hits

    @functools.cached_property
    def features(self) -> dict[str, float]:
        """The abstention model's inputs (names in :data:`abstention.FEATURES`), once."""
        return self.scorer.reading_features(self)

    def evidence(self, cand: Candidate) -> float:
        """:meth:`Candidate.evidence` with the weights the candidates were scored with."""
        return cand.evidence(*self.scorer.weights[:2])


class SentenceScorer:
    """Scores the sentences of retrieved chunks as answers to a question.

    Each sentence is scored by cosine similarity to the question (precomputed
    sentence vectors), IDF-weighted overlap with the question's terms, the
    answer type the question asks for, and the rank of its chunk.
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        # tuned with eval/calibrate.py on SQuAD v1.1 dev (see README)
        weights: tuple[float, float, float] = (0.3, 0.2, 0.5),
        entity_weight: float = 0.4,
        type_weight: float = 0.35,
    ) -> None:
        self.retriever = retriever
        self.index = retriever.index
        self.weights = weights
        self.entity_weight = entity_weight
        self.type_weight = type_weight

    def read(self, question: str, retrieval: Retrieval) -> Reading:
        """The candidates of ``retrieval`` for ``question``: every sentence scored once."""
        t0 = time.perf_counter()
        asked = self._ask(question, retrieval)
        scored: dict[tuple[str, int, int], _Sentence] = {}
        cands = self._assemble(asked, retrieval.hits, scored)
        read_ms = (time.perf_counter() - t0) * 1000
        return Reading(retrieval, cands, self, asked, scored, read_ms)

    def read_parts(self, reading: Reading) -> Reading:
        """``reading`` with each part of a multi-part question scored on its own over
        the same hits (:func:`question_parts`); unchanged for a one-part question."""
        parts = question_parts(reading.query)
        if len(parts) < 2:
            return reading
        out = []
        for part in parts:
            asked = self._ask(part, replace(reading.retrieval, query=part, query_vector=None))
            out.append(Part(part, self._assemble(asked, reading.hits, {})))
        return replace(reading, parts=tuple(out))

    def candidates(self, question: str, retrieval: Retrieval) -> list[Candidate]:
        """``read(question, retrieval).candidates`` as a list (for eval/ scripts)."""
        return list(self.read(question, retrieval).candidates)

    def features(
        self, question: str, retrieval: Retrieval, cands: Sequence[Candidate]
    ) -> dict[str, float]:
        """The abstention model's inputs for these candidates (for eval/ scripts;
        the pipeline reads :attr:`Reading.features`)."""
        return Reading(retrieval, tuple(cands), self, self._ask(question, retrieval)).features

    def _ask(self, question: str, retrieval: Retrieval) -> _Asked:
        # a follow-up is scored with the history-aware query retrieval used
        query = retrieval.query or question
        qvec = retrieval.query_vector
        if qvec is None and retrieval.hits:
            qvec = self.index.embedder.embed([query])[0]
        commenter = named_commenter(query)
        # "According to commenter Nick Bromley, …": once his comment is retrieved, the
        # words that name him say whose words to read (the voice), not what they say
        content = query
        if commenter is not None and any(_by(commenter, h) for h in retrieval.hits):
            content = without_commenter(query)
        entities, predicates = split_question(content)
        return _Asked(
            query,
            qvec,
            entities,
            predicates,
            answer_type(content),
            set(terms(content)),
            quotes(query),
            commenter,
        )

    def _assemble(
        self,
        asked: _Asked,
        hits: Sequence[Hit],
        scored: dict[tuple[str, int, int], _Sentence],
    ) -> tuple[Candidate, ...]:
        """The candidates of ``hits``, best first: a sentence in two chunks (they
        overlap) counts once, for the first; sentences not in ``scored`` yet are
        scored and added to it."""
        # the best retrieval score, wherever an evidence rerank put it
        top = max((h.score for h in hits), default=1.0)
        w_cos, w_lex, w_prior = self.weights
        # a question about one commenter's words, when that commenter's comments were
        # retrieved: every other voice (the article, other readers) counts for less
        voice = asked.commenter
        if voice is not None and not any(_by(voice, h) for h in hits):
            voice = None
        seen: set[tuple[str, int, int]] = set()
        out: list[Candidate] = []
        for hit in hits:
            other_voice = voice is not None and not _by(voice, hit)
            doc = self.index.documents[hit.chunk.doc_id]
            prior = hit.score / top if top > 0 else 0.0
            context: frozenset[str] | None = None
            for a, b in hit.chunk.sentences:
                key = (doc.doc_id, a, b)
                if key in seen:
                    continue
                seen.add(key)
                s = scored.get((hit.chunk.chunk_id, a, b))
                if s is None:
                    if context is None:
                        context = term_set(hit.chunk.embedding_text())
                    s = self._sentence(
                        asked, doc.text[a:b], self.index.sentence_vector(*key), context
                    )
                    scored[hit.chunk.chunk_id, a, b] = s
                score = (
                    w_cos * s.cosine
                    + w_lex * s.lexical
                    + w_prior * prior
                    + self.type_weight * s.typed
                ) * s.penalty
                if other_voice:
                    score *= OTHER_VOICE
                quoted = any(holds_quote(s.text, q) for q in asked.quotes)

                if quoted:
                    score += QUOTE_BONUS
                out.append(
                    Candidate(
                        hit,
                        a,
                        b,
                        s.text,
                        score,
                        s.cosine,
                        s.lexical,
                        prior,
                        s.penalty,
                        s.typed,
                        quoted=quoted,
                    )
                )
        out.sort(key=lambda c: (-c.score, c.hit.rank, c.start))
        return tuple(out)

    def _sentence(
        self, asked: _Asked, text: str, vec: np.ndarray | None, context: frozenset[str]
    ) -> _Sentence:
        idf = self.retriever.idf

        def coverage(wanted: AbstractSet[str], have: AbstractSet[str]) -> float | None:
            # a term no chunk contains cannot tell sentences apart: it weighs nothing
            total = sum(idf.get(t, 0.0) for t in wanted)
            if total <= 0:
                return None
            return sum(idf.get(t, 0.0) for t in wanted & have) / total

        qvec = asked.vector
        cosine = float(vec @ qvec) if vec is not None and qvec is not None else 0.0
        words = term_set(text)
        lexical = _lexical(
            coverage, asked.entities, asked.predicates, words, context, self.entity_weight
        )
        penalty = 1.0
        if len(text.split()) < 5:  # headings and fragments rarely answer anything
            penalty *= 0.6
        if text.rstrip().endswith("?"):
            penalty *= 0.85
        wanted = asked.wanted
        typed = typed_support(text, wanted, asked.terms, asked.predicates, idf) if wanted else 0.0
        return _Sentence(text, cosine, lexical, penalty, typed)

    def reading_features(self, reading: Reading) -> dict[str, float]:
        """The abstention model's inputs (names in :data:`abstention.FEATURES`)."""
        idf = self.retriever.idf
        asked = reading._asked
        cands = reading.candidates

        # a term no chunk holds weighs as much as the rarest term that some chunk holds
        rare = max(idf.values(), default=1.0)

        def share(wanted: AbstractSet[str], have: AbstractSet[str]) -> float:
            total = sum(idf.get(t, rare) for t in wanted)
            return sum(idf.get(t, rare) for t in wanted & have) / total if total > 0 else 1.0

        top = reading.hits[0] if reading.hits else None
        context = term_set(top.chunk.embedding_text()) if top else frozenset()
        # a question term that no chunk holds at all (a name the documents never mention)
        unknown = sum(t not in idf for t in asked.terms) / len(asked.terms) if asked.terms else 0.0
        best = cands[0] if cands else None
        # what the five best sentences hold of the question's own words: an on-topic
        # near miss has the names but not the asked relation ("examined", "before")
        top5: frozenset[str] = frozenset().union(*(term_set(c.text) for c in cands[:5]))
        known = [t for t in asked.terms if t in idf]
        rarest = max(known, key=lambda t: (idf[t], t)) if known else None
        return {
            "evidence": best.evidence(*self.weights[:2]) if best else 0.0,
            "cosine": max((c.cosine for c in cands), default=0.0),
            "lexical": best.lexical if best else 0.0,
            "typed": max((c.typed for c in cands[:5]), default=0.0),
            "has_type": 1.0 if asked.wanted else 0.0,
            "entity_cov": share(asked.entities, context),
            "term_cov": share(asked.terms, context),
            "unknown": unknown,
            "dense": self._chunk_cosine(top, asked) if top else 0.0,
            "reader_cosine": max(
                (c.reader_cosine for c in cands if c.reader_cosine is not None), default=0.0
            ),
            "pred_cov5": share(asked.predicates, top5) if cands else 0.0,
            "rare_missing": 1.0 if rarest is not None and rarest not in top5 else 0.0,
            "typed_best": best.typed if best else 0.0,
            "unknown_cos": unknown * max((c.cosine for c in cands), default=0.0),
        }

    def _chunk_cosine(self, hit: Hit, asked: _Asked) -> float:
        """Cosine of the query and ``hit``'s chunk, whatever the retrieval mode
        (BM25-only retrieval has no dense score, but the abstention model needs one)."""
        if hit.dense_score is not None:
            return float(hit.dense_score)
        row = self.index.chunk_row(hit.chunk)
        if row is None or asked.vector is None:
            return 0.0
        return float(self.index.vectors[row] @ asked.vector)


#: added to the score of a sentence that holds the words the question quotes: more than
#: any other sentence can score (the other terms sum to about 1.35 at most)
QUOTE_BONUS = 1.5
#: the score multiplier of a sentence not by the commenter the question names
OTHER_VOICE = 0.5


def _by(commenter: str, hit: Hit) -> bool:
    return hit.chunk.section == "comment" and same_commenter(commenter, hit.chunk.commenter)


def rerank_by_evidence(reading: Reading, k: int) -> Reading:
    """The ``k`` hits whose best sentence scores highest as an answer.

    A chunk is ranked by its best :class:`Candidate` score (sentence cosine, term
    coverage, answer type and the fused retrieval score as a prior), so a
    passage that holds an answering sentence moves above one that only shares
    the topic.  On SQuAD v1.1 dev (first 1,000) it lifts document hit@1 from
    0.756 to 0.781 over the top 20 (eval/rerank_experiment.py).  The hits keep
    their retrieval scores; only their order and ranks change.  The sentences
    are not scored again: the new reading's candidates (their rank prior is
    relative to the best hit kept) come from the ones ``reading`` scored.
    """
    retrieval = reading.retrieval
    if not retrieval.hits:
        return reading
    t0 = time.perf_counter()
    best: dict[str, float] = {}
    for cand in reading.candidates:  # best first
        best.setdefault(cand.hit.chunk.chunk_id, cand.score)
    order = sorted(retrieval.hits, key=lambda h: (-best.get(h.chunk.chunk_id, 0.0), h.rank))
    hits = [replace(h, rank=rank) for rank, h in enumerate(order[:k], start=1)]
    scorer, asked, scored = reading.scorer, reading._asked, reading._scored
    cands = scorer._assemble(asked, hits, scored)
    elapsed = reading.read_ms + (time.perf_counter() - t0) * 1000
    timings = {**retrieval.timings, "evidence": elapsed}
    return Reading(replace(retrieval, hits=hits, timings=timings), cands, scorer, asked, scored)


CAPITALISED = re.compile(r"\b[A-Z][\w’'-]*")

_PART_BREAK = re.compile(
    r",?\s+and\s+(?=(?:what|which|who|whom|whose|where|when|how|why|did|does|do|is|was|were)\b)",
    re.I,
)


def question_parts(question: str) -> list[str]:
    """The parts of a "What X, and what Y?" question, each a question of its own;
    a one-part question is one part.

    >>> question_parts("Which company did it merge with, and what nationality was it?")
    ['Which company did it merge with?', 'What nationality was it?']
    >>> question_parts("Who won and lost?")
    ['Who won and lost?']
    """
    pieces = [p.strip(" ,?") for p in _PART_BREAK.split(question.strip())]
    pieces = [p for p in pieces if len(p.split()) >= 2]
    if len(pieces) < 2:
        return [question]
    return [p[0].upper() + p[1:] + "?" for p in pieces]


def split_question(question: str) -> tuple[set[str], set[str]]:
    """(entity terms, predicate terms) of a question.

    Entities (capitalised words) are often replaced by a description in the
    answer sentence ("Ed Balls" -> "the children's secretary"), so they are
    matched against the whole chunk; predicates ("appoint") must be in the
    sentence itself.

    >>> [sorted(s) for s in split_question("Who did Ed Balls appoint to run Haringey's services?")]
    [['ball', 'ed', 'haringey'], ['appoint', 'run', 'servic']]
    """
    entities = set(terms(" ".join(CAPITALISED.findall(question))))
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
