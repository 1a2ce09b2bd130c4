"""What a question itself says about where its answer is: the words it quotes and
the commenter it names.

A question that quotes the documents ("Who said “Blaming is not the answer”?") is
answered by the sentence that holds those words, wherever the scores put it, and the
documents do hold its answer: the quote is in them.  A question that names a reader
comment's author ("What does the commenter signing as Frustrated say …?") is answered
from that commenter's words, not from the article or other readers.

    quotes("Who said 'we can't stop people'?")      # ("we can't stop people",)
    holds_quote(sentence, quote)                     # verbatim, ignoring case and quotes
    named_commenter("What does commenter Adam say?")  # "Adam"

It does not score or choose sentences (reading.py, answering.py).
"""

from __future__ import annotations

import re
import unicodedata

#: a quotation inside a question: straight or curly double quotes, or single quotes
#: that open after a space and close before a space or punctuation
_QUOTED = re.compile(r"[\"“”]([^\"“”]+)[\"“”]|(?:^|\s)[‘']([^‘’']+?)[’'](?=[\s?.,!;:]|$)")
#: a quotation shorter than this (in words) is a phrase, not a quote
MIN_WORDS = 3
#: a sentence shorter than this (in words) inside a quote is a fragment of it, not a
#: sentence the quote runs over
MIN_SENTENCE = 5
#: "commenter Adam", "the commenter signing as Frustrated", "a comment by Nick Bromley",
#: "reader Lou", "posted by JIMB"
_COMMENTER = re.compile(
    r"\b(?:commenter|comment(?:s)?\s+(?:by|from)|reader|posted\s+by|signing\s+(?:off\s+)?as|"
    r"signed|who\s+signs\s+(?:off\s+)?as)\s+(?:signing\s+(?:off\s+)?as\s+|called\s+|named\s+)?"
    r"([A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)?)"
)
_PUNCT = {ord(c): " " for c in "\"“”‘’'`.,;:!?()[]–—-…"}


def quotes(question: str) -> tuple[str, ...]:
    """The quotations of at least :data:`MIN_WORDS` words in ``question``.

    >>> quotes('Who said "BLAMING IS NOT THE ANSWER"?')
    ('BLAMING IS NOT THE ANSWER',)
    >>> quotes("What is the ‘joined-up’ panel?")
    ()
    """
    out = []
    for m in _QUOTED.finditer(question):
        text = (m.group(1) or m.group(2) or "").strip()
        if len(normalise(text).split()) >= MIN_WORDS:
            out.append(text)
    return tuple(out)


def normalise(text: str) -> str:
    """Case, quote marks, punctuation and spacing folded away, for verbatim matching.

    >>> normalise("“We can’t stop people,” she said.")
    'we can t stop people she said'
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return " ".join(text.split())


def holds_quote(sentence: str, quote: str) -> bool:
    """True when ``sentence`` holds ``quote`` verbatim (up to case, punctuation and
    spacing), or is itself a whole sentence of a quote that runs over several.

    >>> holds_quote("However BLAMING IS NOT THE ANSWER.Reduce it.", "Blaming is not the answer")
    True
    >>> holds_quote("Blaming helps nobody.", "Blaming is not the answer")
    False
    """
    s, q = f" {normalise(sentence)} ", f" {normalise(quote)} "
    if q in s:
        return True
    return len(s.split()) >= MIN_SENTENCE and s in q


def named_commenter(question: str) -> str | None:
    """The name of the reader-comment author the question asks about, if it names one.

    >>> named_commenter("What does the commenter signing as Frustrated say?")
    'Frustrated'
    >>> named_commenter("According to commenter Nick Bromley, why did it fail?")
    'Nick Bromley'
    >>> named_commenter("What did the council say?") is None
    True
    """
    m = _COMMENTER.search(question)
    return m.group(1) if m else None


#: the words around a commenter's name that only say whose words to read
_ABOUT_COMMENT = re.compile(
    r"\b(according to|in (his|her|their) comment|on the [\w ]{1,40} post)\b,?\s*", re.I
)


def without_commenter(question: str) -> str:
    """The question with the words naming a commenter taken out: what it asks of them.

    >>> without_commenter("According to commenter Nick Bromley, how much does a care order cost?")
    'how much does a care order cost?'
    >>> without_commenter("What does the commenter signing as Frustrated say?")
    'What does the say?'
    """
    m = _COMMENTER.search(question)
    if m is None:
        return question
    rest = question[: m.start()] + question[m.end() :]
    rest = _ABOUT_COMMENT.sub("", rest)
    rest = re.sub(r"^\W+", "", re.sub(r"\s+", " ", rest)).strip()
    return re.sub(r"\s+([,?.])", r"\1", rest) or question


def same_commenter(named: str, commenter: str | None) -> bool:
    """Whether a chunk's ``commenter`` is the one ``named`` (a first name is enough).

    >>> same_commenter("Nick Bromley", "Nick Bromley"), same_commenter("Adam", "Adams")
    (True, False)
    >>> same_commenter("Nick", "Nick Bromley"), same_commenter("Adam", None)
    (True, False)
    """
    if not commenter:
        return False
    a, b = normalise(named).split(), normalise(commenter).split()
    return bool(a) and b[: len(a)] == a
