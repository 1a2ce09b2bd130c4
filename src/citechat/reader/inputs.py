"""What the reader reads and what it says: one candidate sentence in its context in,
an answer probability and a short answer span (in document characters) out.

It does not tokenise (encoding.py) or run a model (model.py); it only says how a
sentence of a document becomes a :class:`ReaderInput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ReaderInput:
    """One candidate sentence, with its chunk's header and one neighbour each side.

    ``start`` is where ``sentence`` begins in its document's text, so a span the
    reader finds inside it maps back to document offsets:
    ``doc.text[start : start + len(sentence)] == sentence``.
    """

    header: str
    previous: str
    sentence: str
    next: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.sentence)


@dataclass(frozen=True)
class ReaderScore:
    """The reader's verdict on one :class:`ReaderInput`.

    ``p_answer``: probability that the sentence answers the question.  ``span``:
    the short answer's (start, end) in document characters, inside the sentence,
    or None when the sentence kept no token; ``text`` is that slice of the document
    (empty when ``span`` is None).  ``logit`` is the answer head's raw score, which
    :meth:`Reader.p_unanswerable` pools over a question's candidates.
    """

    p_answer: float
    logit: float
    span: tuple[int, int] | None
    text: str
    #: a dense reader's cosine of question and sentence (dense.py); None from a
    #: cross-encoder.  The answer stage puts it in place of the heuristic's cosine.
    cosine: float | None = None


def header_of(title: str, section: str = "body", commenter: str | None = None) -> str:
    """A chunk's context header, as :meth:`citechat.types.Chunk.embedding_text` writes it.

    >>> header_of("Budget", "comment", "Ann")
    'Budget | comment by Ann'
    >>> header_of("Budget")
    'Budget'
    """
    if section == "comment":
        return f"{title} | comment by {commenter or 'a reader'}"
    return title


def inputs_for_sentences(
    text: str, sentences: Sequence[tuple[int, int]], header: str
) -> list[ReaderInput]:
    """One :class:`ReaderInput` per sentence span of ``text``, each with the spans
    before and after it in ``sentences`` (in document order) as its neighbours.

    >>> t = "One. Two. Three."
    >>> [(i.previous, i.sentence, i.next) for i in inputs_for_sentences(t, [(0, 4), (5, 9)], "T")]
    [('', 'One.', 'Two.'), ('One.', 'Two.', '')]
    """
    spans = sorted(sentences)
    out = []
    for i, (a, b) in enumerate(spans):
        prev = text[slice(*spans[i - 1])] if i > 0 else ""
        nxt = text[slice(*spans[i + 1])] if i + 1 < len(spans) else ""
        out.append(ReaderInput(header, prev, text[a:b], nxt, a))
    return out
