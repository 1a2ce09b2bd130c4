"""The reader at answer time: the heuristic's best candidates read again by citechat's
own model (:mod:`citechat.reader`).

    stage = ReaderStage(Reader.load(folder))
    reading = stage.reread(reading)        # candidates and hits in the reader's order
    reading.candidates[0].short            # (start, end) of the short answer, or None
    reading.p_unanswerable                 # P(the documents do not answer), pooled

The :class:`Reading` from :mod:`citechat.reading` stays the one record of a question's
candidates: the top ``depth`` of them (the prefilter, by today's score) are given to
the reader, each with its chunk's header and its neighbouring sentences; their score
becomes a mix of the heuristic score and the reader's probability, the hits are
reordered by their best candidate, and each read candidate carries its short answer.
Candidates beyond ``depth`` keep their order, below the read ones.

:func:`load_reader` turns the ``reader`` setting (``bundled``, ``off`` or a folder)
into a stage, or into a one-line notice when the artifact cannot be used: answers
then come from the heuristic alone, never a crash.  A dense reader's sentence side
is embedded once (:meth:`ReaderStage.prepare`, reader/vectors.py), and an artifact
may bring the abstention model fitted with its cosine (``abstention.json``), which
the reading carries to the answerer.

It does not choose the answer sentences or decline (answering.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .abstention import AbstentionModel
from .errors import ConfigError
from .reader.artifact import ReaderArtifactError
from .reader.inputs import ReaderInput, ReaderScore, header_of
from .reading import Candidate, Part, Reading

if TYPE_CHECKING:
    from .index import Index
    from .reader import Reader

log = logging.getLogger("citechat")

#: where the artifact shipped with the package lives
BUNDLED = Path(__file__).resolve().parent / "reader" / "model"
#: how many of the heuristic's candidates the reader reads (the prefilter)
DEPTH = 16
#: weight of a cross-encoder reader's probability in a read candidate's score; the
#: rest is the heuristic score (both lie in about [0, 1])
WEIGHT = 0.7
#: weight of a dense reader's cosine, in place of the heuristic's cosine feature (the
#: heuristic's own weight for it, reading.SentenceScorer): chosen on the seed tune split
#: and the 72 seed questions (eval/reader/README.md)
COSINE_WEIGHT = 0.3
#: a reader artifact's own abstention model (fitted with its cosine), when it has one
ABSTENTION = "abstention.json"
#: an index with more sentences than this is not embedded up front (prepare)
PREPARE_LIMIT = 200_000


@dataclass(frozen=True)
class ReaderChoice:
    """What the ``reader`` setting resolved to: a stage, or why there is none."""

    stage: ReaderStage | None
    #: shown with every answer when the reader was asked for but cannot be used
    notice: str | None = None


class ReaderStage:
    """Reads a :class:`Reading`'s best candidates with a loaded :class:`Reader`."""

    def __init__(
        self,
        reader: Reader,
        *,
        depth: int = DEPTH,
        weight: float = WEIGHT,
        abstention: AbstentionModel | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, got {weight}")
        self.reader = reader
        self.depth = depth
        self.weight = weight
        #: the abstention model fitted with this reader's cosine (its artifact's
        #: ``abstention.json``); None: the answerer's packaged one decides
        self.abstention = abstention

    def inputs(self, index: Index, cands: Sequence[Candidate]) -> list[ReaderInput]:
        """Each candidate as the reader sees it: its chunk's header, the sentence and
        the chunk's sentences either side of it (document text, exact offsets)."""
        out = []
        for c in cands:
            chunk = c.hit.chunk
            text = index.documents[chunk.doc_id].text
            spans = sorted(chunk.sentences)
            i = spans.index((c.start, c.end)) if (c.start, c.end) in spans else -1
            prev = text[slice(*spans[i - 1])] if i > 0 else ""
            nxt = text[slice(*spans[i + 1])] if 0 <= i < len(spans) - 1 else ""
            header = header_of(chunk.title, chunk.section, chunk.commenter)
            out.append(ReaderInput(header, prev, text[c.start : c.end], nxt, c.start))
        return out

    def prepare(self, index: Index, *, limit: int = PREPARE_LIMIT) -> int:
        """Embed ``index``'s sentences for a dense reader once (stored by the reader's
        weights hash and each text, so a later run or a re-synced index only embeds
        what is new); skipped above ``limit`` sentences, where they are embedded on
        their first question instead.  How many were embedded now."""
        items: list[ReaderInput] = []
        for chunk in index.chunks:
            if len(items) > limit:
                log.info("reader: %s+ sentences, embedded on first use instead", limit)
                return 0
            text = index.documents[chunk.doc_id].text
            header = header_of(chunk.title, chunk.section, chunk.commenter)
            items += [ReaderInput(header, "", text[a:b], "", a) for a, b in chunk.sentences]
        return self.reader.prepare(items)

    def reread(self, reading: Reading, index: Index) -> Reading:
        """``reading`` with its top ``depth`` candidates read: rescored, reordered,
        each with its short answer; hits reordered by their best candidate."""
        cands = reading.candidates
        if not cands:
            return replace(reading, p_unanswerable=1.0)
        t0 = time.perf_counter()
        read, p_unanswerable = self._read(reading.query, cands[: self.depth], index)
        # under a cross-encoder's mix an unread candidate never passes a read one: its
        # heuristic score is scaled as theirs are; a dense reader's cosine swap keeps
        # the heuristic's scale, and the unread keep their scores
        keep = 1.0 if self.reader.gives_cosine else 1 - self.weight
        rest = [replace(c, score=keep * c.score) for c in cands[self.depth :]]
        ordered = read + rest
        best: dict[str, float] = {}
        for c in ordered:
            best.setdefault(c.hit.chunk.chunk_id, c.score)
        retrieval = reading.retrieval
        hits = sorted(retrieval.hits, key=lambda h: (-best.get(h.chunk.chunk_id, -1.0), h.rank))
        renumbered = {h.chunk.chunk_id: replace(h, rank=r) for r, h in enumerate(hits, start=1)}
        final = tuple(replace(c, hit=renumbered[c.hit.chunk.chunk_id]) for c in ordered)
        parts = tuple(self._reread_part(part, index) for part in reading.parts)
        ms = (time.perf_counter() - t0) * 1000
        timings = {**retrieval.timings, "reader": ms}
        new_retrieval = replace(retrieval, hits=list(renumbered.values()), timings=timings)
        return replace(
            reading,
            retrieval=new_retrieval,
            candidates=final,
            p_unanswerable=p_unanswerable,
            parts=parts,
            abstention=self.abstention,
        )

    def _read(
        self, question: str, head: Sequence[Candidate], index: Index
    ) -> tuple[list[Candidate], float | None]:
        """``head`` read against ``question``: rescored by the mix, best first, each
        with the reader's probability and short answer; and P(unanswerable) over them."""
        scores = self.reader.score(question, self.inputs(index, head))
        read = [
            replace(
                c, score=self._mix(c, s), reader=s.p_answer, short=s.span, reader_cosine=s.cosine
            )
            for c, s in zip(head, scores, strict=True)
        ]
        read.sort(key=lambda c: (-c.score, c.hit.rank, c.start))
        if not self.reader.declines:
            return read, None
        return read, self.reader.p_unanswerable(scores)

    def _mix(self, cand: Candidate, score: ReaderScore) -> float:
        """A read candidate's new score.  A dense reader's cosine takes the place of
        the heuristic's own cosine feature, at that feature's weight (the rest of the
        heuristic stays: its lexical, type and rank evidence are what the 72 seed
        questions lean on); a cross-encoder's probability is mixed in at ``weight``."""
        if self.reader.gives_cosine and score.cosine is not None:
            return cand.score + COSINE_WEIGHT * cand.penalty * (score.cosine - cand.cosine)
        return (1 - self.weight) * cand.score + self.weight * score.p_answer

    def _reread_part(self, part: Part, index: Index) -> Part:
        """One part of a multi-part question: its best candidates (half the depth)
        read against the part alone."""
        head = part.candidates[: max(1, self.depth // 2)]
        if not head:
            return replace(part, p_unanswerable=1.0)
        read, p_unanswerable = self._read(part.question, head, index)
        return Part(part.question, tuple(read), p_unanswerable)


def load_reader(
    spec: str, *, base: Path | None = None, vectors: Path | None = None
) -> ReaderChoice:
    """The reader named by the ``reader`` setting: ``off`` (none, no notice),
    ``bundled`` (the package's artifact) or a folder holding another trained one.
    An artifact that cannot be used gives a logged one-line warning and a notice.
    A dense reader keeps its sentence embeddings under ``vectors`` (default: the
    model cache's ``reader-vectors``, i.e. CITECHAT_MODEL_CACHE)."""
    if spec == "off":
        return ReaderChoice(None)
    folder = BUNDLED if spec == "bundled" else Path(spec).expanduser()
    from .config import model_cache
    from .reader import Reader

    try:
        reader = Reader.load(folder, base=base, vectors=vectors or model_cache() / "reader-vectors")
    except ReaderArtifactError as exc:
        log.warning("reader not used: %s", exc)
        return ReaderChoice(
            None, f"The reader model is not used ({exc.problem}); answers come from the heuristic."
        )
    abstention = None
    if (folder / ABSTENTION).is_file():
        try:
            abstention = AbstentionModel.load(folder / ABSTENTION)
        except ConfigError as exc:
            log.warning("the reader's abstention model is not used: %s", exc)
    return ReaderChoice(ReaderStage(reader, abstention=abstention))
