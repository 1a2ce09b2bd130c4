"""Answerers: question + retrieved hits -> Answer with [n] citations.

One protocol (:class:`Answerer`: ``answer``, plus what an answerer declares it
can do: ``can_stream``, ``can_condense``).  Answerers read a :class:`Reading`
(reading.py: the retrieved chunks' sentences scored once per question, shared with
the evidence rerank and the abstention gate).  The
default, :class:`ExtractiveAnswerer`, is offline and instant and faithful by
construction: it quotes the sentences of the retrieved chunks that best answer
the question, each with its own citation, and declines when the best evidence
is weak.  A claim made by a reader comment is always attributed to the
commenter, never to the article.

LLM answerers (transformers, OpenAI-compatible) live in ``generation.py``; specs
map to answerers in ``answerers.py``.  It does not verify citations
(citations.py does) or retrieve (retrieval.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Literal, Protocol

from .abstention import AbstentionModel
from .disagreement import Claim, Conflict, Passage, claims, find_conflict
from .index import Index
from .neighbours import Neighbours
from .provenance import Provenance, provenance, relative_dates
from .reading import CAPITALISED, Candidate, Reading, SentenceScorer
from .retrieval import Retrieval, Retriever
from .slotsearch import same_slot, slot_hits, slot_query
from .text import terms
from .types import (
    Answer,
    Citation,
    Disagreement,
    Hit,
    Section,
    SentenceSupport,
    ShortAnswer,
    Side,
    marker,
)

DECLINE = "I could not find this in the documents."
#: how many of the best candidate sentences are compared for a disagreement
DISAGREEMENT_DEPTH = 10
#: how many candidates of the second search for a claim's other side are compared
SLOT_CANDIDATES = 5
#: the best candidates among which the one that matches the question best on its own
#: is looked for, and by how much its evidence must beat the best-ranked one's
EVIDENCE_POOL = 10
EVIDENCE_MARGIN = 0.1

log = logging.getLogger("citechat")

#: (role, text) pairs, oldest first; role is "user" or "assistant"
History = Sequence[tuple[str, str]]

_PRONOUN = re.compile(
    r"\b(she|he|they|it|her|his|their|them|him|this|that|these|those|there)\b", re.I
)


class Answerer(Protocol):
    """The answer contract: :meth:`answer` is the one method every answerer writes.

    An answerer declares what else it can do, and callers check the flags rather
    than probing for methods: one whose flag is False is never asked for that
    method.  Subclassing it explicitly inherits the flags (False) and defaults
    that refuse; :func:`citechat.answerers.register_answerer` makes an answerer
    reachable by spec (``--answerer``, ``CITECHAT_ANSWERER``).
    """

    name: str
    #: True: :meth:`stream` writes the reply piece by piece and :meth:`finish` turns
    #: it into the Answer, so the chat can show it as it is written
    can_stream: bool = False
    #: True: :meth:`condense` rewrites a follow-up question with the conversation,
    #: for retrieval (otherwise :func:`history_query` does)
    can_condense: bool = False

    def answer(self, question: str, reading: Reading, *, history: History = ()) -> Answer:
        """Answer ``question`` from ``reading`` (the retrieved hits and their scored
        sentences) only."""
        ...

    def stream(self, question: str, reading: Reading, history: History = ()) -> Iterator[str]:
        """The raw reply, piece by piece (only when :attr:`can_stream`)."""
        raise _refused(self, "stream")

    def finish(
        self, question: str, reading: Reading, reply: str, *, generate_ms: float = 0.0
    ) -> Answer:
        """The streamed ``reply`` -> the Answer (only when :attr:`can_stream`)."""
        raise _refused(self, "stream")

    def condense(self, question: str, history: History) -> str:
        """A follow-up rewritten to stand alone (only when :attr:`can_condense`)."""
        raise _refused(self, "condense")


def _refused(answerer: Answerer, what: str) -> NotImplementedError:
    # a helper, not a bare raise: mypy would take a bare one for an abstract method
    return NotImplementedError(f"answerer {answerer.name} cannot {what} (can_{what} is False)")


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
        content_hash=doc.content_hash or None,
        page=hit.chunk.page,
        page_label=hit.chunk.page_label,
        heading=hit.chunk.heading,
    )


def attributed(
    sentence: str,
    citation: Citation,
    source: Provenance | None = None,
    dates: Sequence[tuple[str, str]] = (),
) -> str:
    """A quoted sentence with its citation, attributed to whoever wrote it: a reader
    comment always to its commenter, an article's sentence to its publisher and date
    when ``source`` is given (the answerer gives it for a document's first quote).

    >>> c = Citation(1, "d", "T", "comment", "Lou", 0, 1, "x")
    >>> attributed("It is bad.", c)
    'A reader comment by Lou says: “It is bad.” [1]'
    >>> attributed("It is bad.", c, Provenance(None, None, True, "Lou", "2013-04-11"))
    'A reader comment by Lou (11 April 2013) says: “It is bad.” [1]'
    >>> b = Citation(2, "d", "T", "body", None, 0, 1, "x")
    >>> attributed("He resigned.", b, Provenance("BBC News", "2009-02-07"))
    'According to BBC News (7 February 2009): “He resigned.” [2]'
    >>> attributed("He resigned.", b)
    'He resigned. [2]'

    ``dates``: the relative dates of the sentence and what they mean, said after it:

    >>> attributed("He left last month.", b, dates=[("last month", "January 2009")])
    'He left last month. [2] (“last month”: January 2009)'
    """
    meant = f" ({'; '.join(f'“{p}”: {m}' for p, m in dates)})" if dates else ""
    if citation.section == "comment":
        # a comment is always attributed: to its commenter alone when nothing else is known
        source = source or Provenance(None, None, True, citation.commenter)
    said = source.said_by() if source is not None else None
    if citation.section == "comment" and said is not None:
        return f"{said[0].upper()}{said[1:]} says: “{sentence}” {marker(citation.n)}{meant}"
    if said is not None:
        return f"According to {said}: “{sentence}” {marker(citation.n)}{meant}"
    return f"{sentence} {marker(citation.n)}{meant}"


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
        names = [w for w in CAPITALISED.findall(previous[-1]) if terms(w)]
        if names:
            return f"{' '.join(names)} {question}"
    return question


class ExtractiveAnswerer(SentenceScorer, Answerer):
    """Selects answer sentences from the retrieved chunks.

    The best candidate sentence (:class:`SentenceScorer`) is kept; up to two
    more are kept when nearly as good.  Below ``threshold`` (or the abstention
    model's) it declines.  It neither streams nor condenses.
    """

    name = "extractive"

    def __init__(
        self,
        retriever: Retriever,
        *,
        threshold: float = 0.36,
        max_sentences: int = 3,
        weights: tuple[float, float, float] = (0.3, 0.2, 0.5),
        entity_weight: float = 0.4,
        type_weight: float = 0.35,
        abstention: AbstentionModel | Literal["packaged"] | None = "packaged",
        abstain_threshold: float | None = None,
        reader_decline: float = 0.5,
    ) -> None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
        super().__init__(
            retriever, weights=weights, entity_weight=entity_weight, type_weight=type_weight
        )
        self.threshold = threshold
        self.max_sentences = max_sentences
        #: None: decline on ``threshold`` alone (the evidence of the best sentence)
        self.abstention = (
            packaged_abstention(self.index.embedder.name)
            if abstention == "packaged"
            else abstention
        )
        if self.abstention is not None and abstain_threshold is not None:
            self.abstention = self.abstention.with_threshold(abstain_threshold)
        #: with a reader: decline when its P(the documents do not answer) reaches this
        self.reader_decline = reader_decline
        self.neighbours = Neighbours(self.index)

    def decide(self, reading: Reading) -> tuple[bool, float | None]:
        """(decline?, p(answerable)) for the reading's candidates: answerable when the
        best sentence holds the words the question quotes; else the reader's
        verdict when a reader read them, else the abstention model's (or, without
        one, the best sentence's evidence against ``threshold``)."""
        cands = reading.candidates
        if not cands:
            return True, 0.0
        if cands[0].quoted:
            # the best sentence holds the words the question quotes: the documents
            # answer it, whatever the scores say
            return False, 1.0
        if reading.p_unanswerable is not None:
            return reading.p_unanswerable >= self.reader_decline, 1.0 - reading.p_unanswerable
        model = reading.abstention or self.abstention
        if model is None:
            return reading.evidence(cands[0]) < self.threshold, None
        p = model.p_answerable(reading.features)
        return model.declines(reading.features), p

    def answer(self, question: str, reading: Reading, *, history: History = ()) -> Answer:
        t0 = time.perf_counter()
        cands = reading.candidates
        declined, confidence = self.decide(reading)
        # two sources that state the asked value and disagree do answer the question:
        # say both rather than decline ("How old was Jason Owen?": 37 and 36)
        conflict = self._conflict(question, reading)
        if declined and conflict is None:
            return Answer(
                question=question,
                text=DECLINE,
                citations=(),
                abstained=True,
                hits=tuple(reading.hits),
                answerer=self.name,
                latency_ms={"answer": (time.perf_counter() - t0) * 1000},
                confidence=confidence,
            )
        best = cands[0]
        chosen = [best]
        for cand in cands[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if cand.score < 0.9 * best.score or reading.evidence(cand) < self.threshold:
                break
            if any(_near_duplicate(cand, c) for c in chosen):
                continue
            chosen.append(cand)
        # the sentence that matches the question best on its own words and meaning (its
        # passage's rank aside), when clearly better than the best-ranked one: the utmp
        # sentence of a lower-ranked page for "which file records who is using the system"
        # (a multi-part question picks each part's sentence below, as the reader allows)
        strongest = max(cands[:EVIDENCE_POOL], key=reading.evidence)
        if (
            not reading.parts
            and len(chosen) < self.max_sentences
            and reading.evidence(strongest) >= reading.evidence(best) + EVIDENCE_MARGIN
            and not any(_near_duplicate(strongest, c) for c in chosen)
        ):
            chosen.append(strongest)
        # a multi-part question: each part's best sentence too, unless the reader
        # finds that part unanswered
        for part in reading.parts:
            if not part.candidates:
                continue
            if part.p_unanswerable is not None and part.p_unanswerable >= self.reader_decline:
                continue
            top = part.candidates[0]
            if not any(_near_duplicate(top, c) for c in chosen):
                chosen.append(replace(top, short=None))
            # and, as for a one-part question, the part's sentence that matches it best on
            # its own words and meaning, when clearly better than the part's best-ranked;
            # not when a reader ranked the part (p_unanswerable set): its order stands
            if part.p_unanswerable is not None:
                continue
            strongest = max(part.candidates[:EVIDENCE_POOL], key=reading.evidence)
            if reading.evidence(strongest) >= reading.evidence(top) + EVIDENCE_MARGIN and not any(
                _near_duplicate(strongest, c) for c in chosen
            ):
                chosen.append(replace(strongest, short=None))
        # the sentence that names a quote's speaker (or the "she" a "who" answer starts
        # with), the reason that follows a decision, the code block an instruction introduces
        doc = self.index.documents[best.hit.chunk.doc_id].text
        speaker = self.neighbours.speaker(best, question)
        shown = self.neighbours.shown(best)
        named = None if speaker else self.neighbours.antecedent(best, question)
        for span in (speaker, named, self.neighbours.reason(best, question), shown):
            if span is None:
                continue
            extra = replace(
                best, start=span[0], end=span[1], text=doc[span[0] : span[1]], short=None
            )
            if not any(_near_duplicate(extra, c) for c in chosen):
                chosen.insert(1, extra)
        # the sentences that go on from the best one ("For example, …", the items a
        # "There are two reasons …" announces), right after it, in document order
        at = chosen.index(best) + 1
        for span in self.neighbours.continuation(best, question):
            extra = replace(
                best, start=span[0], end=span[1], text=doc[span[0] : span[1]], short=None
            )
            if not any(_near_duplicate(extra, c) for c in chosen):
                chosen.insert(at, extra)
                at += 1
        citations = [
            make_citation(self.index, n, c.hit, c.start, c.end) for n, c in enumerate(chosen, 1)
        ]
        parts = self._attributed(chosen, citations)
        # each sentence is its citation's span, verbatim (make_citation quotes the same
        # document span the candidate holds): supported by construction, and the
        # embedding check would be misled by the "A reader comment by X says" wrapper
        sentences = tuple(
            SentenceSupport(part, (cit.n,), True, 1.0)
            for part, cit in zip(parts, citations, strict=True)
        )
        # a quote's short answer is not its speaker: with a speaker sentence, none
        short = None if speaker else short_answer(best, citations[0])
        if short is not None:
            # the short answer first, bold and cited; it is a slice of quote [1]
            lead = f"**{short.text}** {marker(short.n)}."
            parts = [lead, *parts]
            sentences = (SentenceSupport(lead, (short.n,), True, 1.0), *sentences)
        # sources that disagree: said after the answer, never instead of it
        disagreement = None if conflict is None else self._disagreement(conflict, citations)
        if disagreement is not None:
            parts.append(disagreement.line)
            cited = tuple(s.n for s in disagreement.sides)
            # each side's sentence is its citation's quote verbatim, the value bold in it
            sentences = (*sentences, SentenceSupport(disagreement.line, cited, True, 1.0))
        return Answer(
            question=question,
            text=" ".join(parts),
            citations=tuple(citations),
            abstained=False,
            hits=tuple(reading.hits),
            sentences=sentences,
            answerer=self.name,
            latency_ms={"answer": (time.perf_counter() - t0) * 1000},
            confidence=confidence,
            short_answer=short,
            disagreement=disagreement,
        )

    def _conflict(
        self, question: str, reading: Reading
    ) -> tuple[Sequence[Candidate], Conflict] | None:
        """Where the best candidates disagree on what ``question`` asks
        (disagreement.py): the candidates compared and the conflict, or None."""
        if reading.query != question:
            # a follow-up read with the history's names ("Who opened it?" after "the
            # festival in Aberdeen"): which "it" each passage is about is not known, so
            # another festival's opener is no disagreement
            return None
        cands = list(reading.candidates[:DISAGREEMENT_DEPTH])
        passages = [self._passage(c) for c in cands]
        conflict = find_conflict(question, passages)
        if conflict is None and (found := claims(question, passages)):
            # the other side may sit in a chunk the question's retrieval ranked low:
            # search again for the best claim's sentence (slotsearch.py)
            extra = self._slot_candidates(question, reading, cands[found[0].passage], found[0])
            if extra:
                cands += extra
                passages += [self._passage(c) for c in extra]
                conflict = find_conflict(question, passages)
        return None if conflict is None else (cands, conflict)

    def _slot_candidates(
        self, question: str, reading: Reading, cand: Candidate, claim: Claim
    ) -> list[Candidate]:
        """The candidates read but ranked past the compared ones that repeat
        ``claim``'s sentence, and the best of the chunks a second search for that
        sentence finds beyond ``reading``'s hits."""
        span = (claim.start, claim.end)
        later = [
            c
            for c in reading.candidates[DISAGREEMENT_DEPTH:]
            if same_slot(question, cand.text, span, c.text)
        ][:SLOT_CANDIDATES]
        query = slot_query(question, cand.text, span)
        hits = slot_hits(self.retriever, query, {h.chunk.chunk_id for h in reading.hits})
        if not hits:
            return later
        more = self.read(question, Retrieval(hits, reading.retrieval.query_vector, query=question))
        return later + list(more.candidates[:SLOT_CANDIDATES])

    def _disagreement(
        self, found: tuple[Sequence[Candidate], Conflict], citations: list[Citation]
    ) -> Disagreement:
        """The sides of a conflict, each cited (a side not yet in the answer gets a
        new citation, appended to ``citations``), and the line that says so."""
        cands, conflict = found
        sides = []
        for claim in (conflict.first, conflict.second):
            cand = cands[claim.passage]
            key = (cand.hit.chunk.doc_id, cand.start, cand.end)
            cit = next((c for c in citations if (c.doc_id, c.start, c.end) == key), None)
            if cit is None:
                cit = make_citation(self.index, len(citations) + 1, cand.hit, cand.start, cand.end)
                citations.append(cit)
            source = provenance(self.index.documents.get(cit.doc_id), cit)
            label = source.said_by() or f"“{cit.title}”"
            sides.append(Side(cit.n, claim.text, label, source.written(), cit.quote))
        return Disagreement(conflict.kind, tuple(sides), disagreement_line(conflict, sides))

    def _passage(self, cand: Candidate) -> Passage:
        """A candidate as the disagreement detector reads it: who wrote it, the
        sentence before it in its chunk, the reader's span, the date of its words."""
        chunk = cand.hit.chunk
        doc = self.index.documents[chunk.doc_id]
        spans = sorted(chunk.sentences)
        at = spans.index((cand.start, cand.end)) if (cand.start, cand.end) in spans else -1
        before = doc.text[spans[at - 1][0] : spans[at - 1][1]] if at > 0 else ""
        short = None
        if cand.short is not None:
            short = (cand.short[0] - cand.start, cand.short[1] - cand.start)
        cit = make_citation(self.index, 0, cand.hit, cand.start, cand.end)
        # one work is one source: the body of every document of the same title (the
        # paragraphs of one article stored as files, as SQuAD's are) speaks with one
        # voice, so two of its passages that differ are no two sources disagreeing
        source = f"{doc.title.strip() or chunk.doc_id}#{chunk.section}"
        if chunk.section == "comment":
            start = _comment_start(doc.sections, cand.start)
            source = f"{chunk.doc_id}#comment:{chunk.commenter or ''}@{start}"
        written = provenance(doc, cit).written()
        return Passage(cand.text, source, before, short, written, chunk.embedding_text())

    def _attributed(self, chosen: Sequence[Candidate], citations: Sequence[Citation]) -> list[str]:
        """Each chosen sentence quoted with its citation: every reader comment with its
        commenter and date, an article's first quote with its publisher and date."""
        out, named = [], set()
        for cand, cit in zip(chosen, citations, strict=True):
            source = provenance(self.index.documents.get(cit.doc_id), cit)
            # "last month" in a page of 7 February 2009 is January 2009
            dates = relative_dates(cand.text, source.written())
            first = cit.section == "comment" or cit.doc_id not in named
            if cit.section != "comment":
                named.add(cit.doc_id)
            out.append(attributed(cand.text, cit, source if first else None, dates))
        return out


def short_answer(cand: Candidate, citation: Citation) -> ShortAnswer | None:
    """The reader's span of ``cand`` as the short answer cited by ``citation``; None
    without a span, or when the span is the whole sentence (nothing shorter to say).

    >>> from citechat.types import Chunk, Hit
    >>> hit = Hit(Chunk("d#0", "d", 0, 20, "Ann won the cup.", "body", "T"), 1.0, 1)
    >>> c = Candidate(hit, 0, 16, "Ann won the cup.", 1.0, 0, 0, reader=0.9, short=(0, 3))
    >>> short_answer(c, Citation(1, "d", "T", "body", None, 0, 16, "Ann won the cup."))
    ShortAnswer(text='Ann', n=1, start=0, end=3)
    """
    if cand.short is None:
        return None
    a, b = cand.short
    if not citation.start <= a < b <= citation.end:
        return None
    text = citation.quote[a - citation.start : b - citation.start]
    if not text.strip() or len(text.strip()) >= 0.8 * len(cand.text.strip()):
        return None
    return ShortAnswer(text, citation.n, a, b)


def disagreement_line(conflict: Conflict, sides: Sequence[Side]) -> str:
    """ "Sources disagree: BBC News (7 February 2009) says “… **60** …” [1]; a reader
    comment by Lou (11 April 2013) says “… **78** …” [2]." (each side's quote with its
    value in bold).

    >>> from citechat.disagreement import Claim
    >>> c = Conflict("number", Claim(0, 9, 11, "60"), Claim(1, 9, 11, "78"))
    >>> sides = [Side(1, "60", "BBC News (7 February 2009)", None, "He saw P 60 times."),
    ...          Side(2, "78", "a reader comment by Lou", None, "He saw P 78 times.")]
    >>> disagreement_line(c, sides)
    'Sources disagree: BBC News (7 February 2009) says “He saw P **60** times.” [1]; \
a reader comment by Lou says “He saw P **78** times.” [2].'
    """
    said = []
    for claim, side in zip((conflict.first, conflict.second), sides, strict=True):
        quote = " ".join(
            (side.quote[: claim.start] + f"**{claim.text}**" + side.quote[claim.end :]).split()
        )
        said.append(f"{side.source} says “{quote}” {marker(side.n)}")
    return f"Sources disagree: {'; '.join(said)}."


def _comment_start(sections: Sequence[Section], at: int) -> int:
    """The start of the comment section holding offset ``at`` (-1: none)."""
    return next((s.start for s in sections if s.kind == "comment" and s.start <= at < s.end), -1)


def _near_duplicate(a: Candidate, b: Candidate) -> bool:
    """Same span, or the same words repeated elsewhere (quotes echoed in comments)."""
    if a.hit.chunk.doc_id == b.hit.chunk.doc_id and a.start < b.end and b.start < a.end:
        return True
    wa, wb = set(a.text.lower().split()), set(b.text.lower().split())
    return len(wa & wb) / max(1, min(len(wa), len(wb))) > 0.8
