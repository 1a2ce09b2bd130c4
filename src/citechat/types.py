"""The dataclasses that flow between citechat's stages.

corpus -> Document(sections) -> chunking -> Chunk -> index/retrieval -> Hit
-> answering -> Answer(citations, sentences).  Everything is frozen: stages
return new objects instead of mutating old ones.  JSON is produced at the edge
(CLI ``--json``, eval files) with :func:`dataclasses.asdict` or the ``to_json``
helpers here.

Offsets (``start``, ``end``) always index ``Document.text`` exactly as read,
so ``doc.text[start:end] == quote`` for every chunk, sentence and citation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SectionKind = Literal["body", "comment"]


@dataclass(frozen=True)
class Section:
    """A citable span of a document: the article body or one reader comment.

    Boilerplate (navigation, "Leave a Reply", share prompts) lies between
    sections and is never inside one, so it is never chunked or cited.
    """

    kind: SectionKind
    start: int
    end: int
    commenter: str | None = None
    date: str | None = None
    #: the PDF page the span is on (1-based, as a viewer numbers it) and the label
    #: printed on it ("iv", "14") where the PDF defines page labels
    page: int | None = None
    page_label: str | None = None
    #: the path of the headings the span sits under ("APT › Configuring apt-get")
    heading: str | None = None


@dataclass(frozen=True)
class Document:
    """One corpus file (or JSONL record) as read: ``text`` exactly as decoded, which every
    offset in citechat indexes, and its body and comment :class:`Section` spans."""

    doc_id: str
    text: str
    title: str
    sections: tuple[Section, ...]
    source: str | None = None
    date: str | None = None
    author: str | None = None
    content_hash: str = ""
    #: (start, end, kind) of the code blocks ("code": one sentence, quoted whole) and
    #: tables ("table": one sentence a row) in ``text``; prose is split into sentences
    blocks: tuple[tuple[int, int, str], ...] = ()

    def section_text(self, section: Section) -> str:
        return self.text[section.start : section.end]


@dataclass(frozen=True)
class Chunk:
    """A span of one section, a few sentences long.

    ``sentences`` are absolute (start, end) spans of the sentences inside the
    chunk; the extractive answerer and the citation verifier quote them.
    """

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str
    section: SectionKind
    title: str
    commenter: str | None = None
    sentences: tuple[tuple[int, int], ...] = ()
    #: where the chunk is, from its section (None where the document has no pages or
    #: headings; chunks saved before these fields existed load with None)
    page: int | None = None
    page_label: str | None = None
    heading: str | None = None

    def embedding_text(self) -> str:
        """Text given to the embedder: a context header plus the span.

        >>> Chunk("d#0", "d", 0, 3, "Hi.", "comment", "T", "Ann").embedding_text()
        'T | comment by Ann\\nHi.'
        >>> Chunk("d#0", "d", 0, 3, "Hi.", "body", "T", heading="APT › Setup").embedding_text()
        'T | APT › Setup\\nHi.'
        """
        header = self.title
        # the path under the title's own heading ("Guide › Setup" under "Guide")
        heading = (self.heading or "").removeprefix(f"{self.title} › ")
        if heading and heading != self.title:
            header += f" | {heading}"
        if self.section == "comment":
            header += f" | comment by {self.commenter or 'a reader'}"
        return f"{header}\n{self.text}" if header else self.text


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: the fused score that ranked it (1-based ``rank``) and the dense
    and BM25 scores it was fused from, where the retrieval mode had them."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None


@dataclass(frozen=True)
class Citation:
    """Source ``[n]`` of an answer: the document span it quotes (``quote`` is
    ``text[start:end]`` of the document) and whose words they are.  ``content_hash``
    is the document's hash when the answer was written: a document whose hash has
    changed since no longer holds ``quote`` at ``start:end`` (see :meth:`still_in`)."""

    n: int
    doc_id: str
    title: str
    section: SectionKind
    commenter: str | None
    start: int
    end: int
    quote: str
    content_hash: str | None = None

    #: the PDF page of the quote (1-based) and its printed label, and the heading path
    #: of the section it is in (JSON: ``page``, ``page_label``, ``heading``)
    page: int | None = None
    page_label: str | None = None
    heading: str | None = None

    def still_in(self, doc: Document | None) -> bool:
        """Whether ``doc`` (the document as the index holds it now; None: gone) is the
        one this citation quoted; a citation without a recorded hash trusts its quote.

        >>> d = Document("d", "Hi.", "T", (), content_hash="a")
        >>> c = Citation(1, "d", "T", "body", None, 0, 3, "Hi.", "a")
        >>> c.still_in(d), c.still_in(None), Citation(1, "d", "T", "body", None, 0, 3, "Hi.", "b").still_in(d)
        (True, False, False)
        """  # noqa: E501
        if doc is None:
            return False
        if self.content_hash and doc.content_hash:
            return doc.content_hash == self.content_hash
        return doc.text[self.start : self.end] == self.quote

    def label(self) -> str:
        """How the UI and CLI name the source.

        >>> Citation(1, "d", "T", "comment", "Nick", 0, 1, "x").label()
        'comment by Nick on “T”'
        """
        if self.section == "comment":
            return f"comment by {self.commenter or 'a reader'} on “{self.title}”"
        return f"“{self.title}”"

    def location(self) -> str:
        """Where in its document the quote is: page and heading path, "" when unknown.

        >>> Citation(1, "d", "T", "body", None, 0, 1, "x", page=20, page_label="14").location()
        'p. 20 (printed 14)'
        >>> Citation(1, "d", "T", "body", None, 0, 1, "x", heading="APT › Setup").location()
        'APT › Setup'
        """
        parts = []
        if self.page is not None:
            page = f"p. {self.page}"
            if self.page_label and self.page_label != str(self.page):
                page += f" (printed {self.page_label})"
            parts.append(page)
        if self.heading:
            parts.append(self.heading)
        return " · ".join(parts)


@dataclass(frozen=True)
class ShortAnswer:
    """The reader's short answer: ``text`` is ``document.text[start:end]`` of the
    document that citation ``n`` quotes (inside that quote)."""

    text: str
    n: int
    start: int
    end: int


@dataclass(frozen=True)
class Side:
    """One side of a disagreement: the value ``text`` that the quote of citation ``n``
    gives, whose words they are (``source``: "BBC News (7 February 2009)", "a reader
    comment by Lou (11 April 2013)", or the document's title) and their ISO ``date``."""

    n: int
    text: str
    source: str
    date: str | None
    quote: str


@dataclass(frozen=True)
class Disagreement:
    """Passages that make incompatible claims of ``kind`` (a number, an age, a date, a
    name) about what the question asks; ``line`` is how the answer says so."""

    kind: str
    sides: tuple[Side, ...]
    line: str


@dataclass(frozen=True)
class SentenceSupport:
    """One sentence of an answer and how well its cited passages support it."""

    text: str
    citations: tuple[int, ...]
    supported: bool
    score: float


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...]
    abstained: bool
    hits: tuple[Hit, ...] = ()
    sentences: tuple[SentenceSupport, ...] = ()
    answerer: str = "extractive"
    latency_ms: dict[str, float] = field(default_factory=dict)
    notice: str | None = None
    #: the abstention model's probability that the documents answer the question
    confidence: float | None = None
    #: the reader's short answer, when a reader found one (JSON: ``short_answer``)
    short_answer: ShortAnswer | None = None
    #: the index generation the answer was read from (JSON: ``index_generation``)
    index_generation: str | None = None
    #: sources that disagree on what the question asks (JSON: ``disagreement``)
    disagreement: Disagreement | None = None

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape (field names are a contract: add, never rename)."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [asdict(c) for c in self.citations],
            "retrieved": [
                {
                    "rank": h.rank,
                    "doc_id": h.chunk.doc_id,
                    "chunk_id": h.chunk.chunk_id,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                    "score": round(h.score, 6),
                }
                for h in self.hits
            ],
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "sentences": [asdict(s) for s in self.sentences],
            "answerer": self.answerer,
            "notice": self.notice,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "short_answer": None if self.short_answer is None else asdict(self.short_answer),
            "index_generation": self.index_generation,
            "disagreement": None if self.disagreement is None else asdict(self.disagreement),
        }


#: The one citation-marker pattern: "[3]" cites source 3 (1-based).
MARKER_PATTERN = r"\[(\d{1,4})\]"


def marker(n: int) -> str:
    """The marker for source ``n``.

    >>> marker(2)
    '[2]'
    """
    return f"[{n}]"
