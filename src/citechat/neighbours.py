"""The neighbouring sentence an answer sentence needs: who is speaking, and why.

A quote answers "who said …?" only with the sentence that names its speaker, often a
paragraph or two before it ("Ms Shoesmith said she was 'shocked' …  'And now you've
got this, a local tragedy …'"); a decision answers "why …?" only with the reason that
follows it ("… because …"); an instruction ending in a colon needs the code block
or table it introduces ("To list the files, run: / dpkg --listfiles foo").
:class:`Neighbours` finds that sentence in the same section of the same document,
from the index's own sentence spans, so it can be quoted and cited like any other.

    nb = Neighbours(index)
    nb.speaker(candidate, question)     # (start, end) of the speaker's sentence, or None
    nb.reason(candidate, question)      # (start, end) of the reason that follows, or None
    nb.shown(candidate)                 # (start, end) of the code block it introduces
    nb.antecedent(candidate, question)  # (start, end) of the sentence naming its "she"
    nb.continuation(candidate, question)  # (start, end) of the sentence that goes on

It does not choose the answer sentence (answering.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .reading import Candidate
from .text import terms

if TYPE_CHECKING:
    from .index import Index

_VERB = r"(?:said|says|told|tells|added|adds|spoke|speaks|wrote|writes|argued|claimed|insisted)"
_TITLE = r"(?:Mr|Ms|Mrs|Miss|Dr|Lord|Lady|Sir|Baroness)\.?"
_NAME = r"[A-Z][\w’'-]+(?:\s+[A-Z][\w’'-]+)*"
#: a named person speaking: "Ms Shoesmith said", "Ed Balls, the children's secretary, told",
#: "said Ed Balls", or a titled name anywhere ("Lord Laming")
_NAMED_SPEAKER = re.compile(
    rf"\b{_TITLE}\s+{_NAME}"
    rf"|\b{_NAME}(?:,[^,.]{{1,80}},)?\s+(?:has\s+|had\s+|also\s+)?{_VERB}\b"
    rf"|\b{_VERB}\s+{_NAME}"
    rf"|\baccording to\s+{_NAME}"
)
#: a speaker the sentence does not name: "she said", "he told", "said he"
_PRONOUN_SPEAKER = re.compile(
    rf"\b(?:he|she|they)\s+(?:has\s+|had\s+|also\s+)?{_VERB}\b|\b{_VERB}\s+(?:he|she)\s*[.,;:!?]",
    re.I,
)
_QUOTE_MARK = re.compile(r"[“”\"‘’]|(?:^|\s)'")
#: "Who said …?", "Which MP told …?", "According to whom …?", "Whose words …?"
_WHO_SAID = re.compile(
    rf"^\s*who\b.*\b(?:say|said|says|{_VERB}|call|called|describe)"
    # the wh-phrase is the speaker: "Which MP said …", not "Which officer did she say …"
    rf"|^\s*which\s+[\w’'-]+(?:\s+[\w’'-]+)?\s+(?:has\s+|had\s+|also\s+)?(?:{_VERB}|called|"
    r"described)\b|^\s*according to whom\b|^\s*whose (?:words|comment|remark|view)s?\b",
    re.I,
)
_WHY = re.compile(
    r"^\s*(why\b|for what reasons?|what (was|were) the reasons?\b|what reasons? (did|does|do|was|"
    r"were|is|are|had|has)\b|what (made|prompted|led)\b)",
    re.I,
)
#: a sentence that gives the reason for the one before it
_REASON_START = re.compile(
    r"^\W*((partly|largely|mainly|mostly|chiefly|simply|not least|precisely)\s+because|because|"
    r"(this|that|it) (is|was) (partly |largely |mainly |simply )?because|the reasons? (is|was|were|"
    r"are|being)\b|the reason|as a result|since|so that|in order to|this meant|that meant|"
    r"due to|owing to|for (this|that) reason)\b"
    # the speaker of the sentence before goes on to explain: "She said there had been …"
    r"|^\W*(she|he|they)\s+(said|says|added|adds|argued|explained|claimed|insisted)\b",
    re.I,
)
#: a sentence that gives the consequence of the one before it, which holds the reason
_CONSEQUENCE_START = re.compile(
    r"^\W*(so(?![-\s]+(far|much|many|long|called|that)\b)|therefore|thus|hence|consequently|"
    r"as a result|as a consequence|for (this|that) reason|that is why|this is why|that was why|"
    r"this was why|which is why)\b",
    re.I,
)
#: a sentence whose subject is a pronoun: "She was in charge at the time …"
_PRONOUN_SUBJECT = re.compile(r"^\W*(she|he|they)\b", re.I)
#: a named person: two capitalised words ("Sharon Shoesmith") or a titled name
_PERSON = re.compile(rf"\b{_TITLE}\s+[A-Z][\w’'-]+|\b[A-Z][\w’'-]+\s+[A-Z][\w’'-]+")
_WHO = re.compile(r"^\s*(who|whom|whose)\b", re.I)
#: a sentence that cannot stand without the one before it and goes on with it: the
#: example after a definition ("For example, the files in user home directories …"),
#: the verdict after what it answers ("Something Hemming dismissed as “nonsense.”"),
#: the step after a need ("In order to install this environment you just need …"),
#: the items after a count ("There are two reasons …" / "One: …")
_CONTINUES = re.compile(
    r"^\W*(for (example|instance)|e\.g\.|such as|namely|specifically|in order to|"
    r"to do (this|so|that)|something|one\s*:|first(ly)?\s*[:,]|the first (is|was)\b)",
    re.I,
)
#: "There are two reasons …", "three ways", "several things": a count of items the
#: next sentences list
_ANNOUNCES = re.compile(
    r"\b(two|three|four|several|a few|a number of|some)\s+(\w+\s+)?(reasons?|ways?|things?|"
    r"points?|problems?|issues?|factors?|causes?|steps?|options?|examples?|kinds?|types?)\b",
    re.I,
)
#: how many sentences after an announcing one are joined to it, by its count word
_ITEMS = {"two": 2, "three": 3}
#: the most, whatever the count
MAX_ITEMS = 3
#: how many sentences back a speaker may be named
LOOK_BACK = 6


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    section: str
    commenter: str | None


class Neighbours:
    """Sentence neighbours within one document's sections, from the index's chunks."""

    def __init__(self, index: Index) -> None:
        self.index = index
        # one document's sentences at a time, from its own chunks: the last few kept
        self._sentences = functools.lru_cache(maxsize=256)(self._of_document)

    def _of_document(self, doc_id: str) -> list[_Sentence]:
        spans: dict[tuple[int, int], _Sentence] = {}
        for row in self.index.chunk_rows(doc_id):
            chunk = self.index.chunks[row]
            for a, b in chunk.sentences:
                spans.setdefault((a, b), _Sentence(a, b, chunk.section, chunk.commenter))
        return sorted(spans.values(), key=lambda x: x.start)

    def _around(self, cand: Candidate) -> tuple[list[_Sentence], int]:
        sentences = self._sentences(cand.hit.chunk.doc_id)
        at = next((i for i, s in enumerate(sentences) if s.start == cand.start), -1)
        return sentences, at

    def _next(self, cand: Candidate) -> _Sentence | None:
        """The sentence after ``cand``'s, when it is in the same section (and comment)."""
        sentences, at = self._around(cand)
        if at < 0 or at + 1 >= len(sentences):
            return None
        here, nxt = sentences[at], sentences[at + 1]
        return nxt if (nxt.section, nxt.commenter) == (here.section, here.commenter) else None

    def _previous(self, cand: Candidate) -> _Sentence | None:
        """The sentence before ``cand``'s, when it is in the same section (and comment)."""
        sentences, at = self._around(cand)
        if at <= 0:
            return None
        here, before = sentences[at], sentences[at - 1]
        same = (before.section, before.commenter) == (here.section, here.commenter)
        return before if same else None

    def speaker(self, cand: Candidate, question: str) -> tuple[int, int] | None:
        """For a "who said …?" question answered by a body sentence that does not name
        its speaker: the nearest sentence before it, in the same section, that does."""
        if cand.hit.chunk.section == "comment" or not _WHO_SAID.search(question):
            return None  # a comment's speaker is its commenter, already attributed
        if _NAMED_SPEAKER.search(cand.text) and not _PRONOUN_SPEAKER.search(cand.text):
            return None
        if not (_QUOTE_MARK.search(cand.text) or _PRONOUN_SPEAKER.search(cand.text)):
            return None
        sentences, at = self._around(cand)
        if at < 0:
            return None
        text = self.index.documents[cand.hit.chunk.doc_id].text
        here = sentences[at]
        for s in reversed(sentences[max(0, at - LOOK_BACK) : at]):
            if (s.section, s.commenter) != (here.section, here.commenter):
                break
            said = text[s.start : s.end]
            # "But he said that … Mr Balls had to act": names someone, not its speaker
            if _NAMED_SPEAKER.search(said) and not _PRONOUN_SPEAKER.search(said):
                return s.start, s.end
        return None

    def antecedent(self, cand: Candidate, question: str) -> tuple[int, int] | None:
        """For a "who …?" question (not "who said", see :meth:`speaker`) answered by a
        sentence whose subject is "she", "he" or "they": the sentence just before it,
        in the same section, when that one names a person ("… Sharon Shoesmith – the
        former head of Children's Services … She was in charge at the time …")."""
        if not _WHO.search(question) or _WHO_SAID.search(question):
            return None
        if not _PRONOUN_SUBJECT.search(cand.text):
            return None
        sentences, at = self._around(cand)
        if at <= 0:
            return None
        here, before = sentences[at], sentences[at - 1]
        if (before.section, before.commenter) != (here.section, here.commenter):
            return None
        text = self.index.documents[cand.hit.chunk.doc_id].text
        named = _PERSON.search(text[before.start : before.end])
        return (before.start, before.end) if named else None

    def continuation(self, cand: Candidate, question: str) -> list[tuple[int, int]]:
        """The sentences after ``cand``'s, in the same section, that the answer needs
        to be whole: the next one when it goes on from it ("For example, …",
        "Something X dismissed as …", "In order to …") and shares a word with the
        question; or, after a sentence announcing a count of items the question asks
        about ("There are two reasons …" for "What two reasons …?"), the next few."""
        nxt = self._next(cand)
        if nxt is None:
            return []
        text = self.index.documents[cand.hit.chunk.doc_id].text
        asked = set(terms(question))
        said = text[nxt.start : nxt.end]
        if _CONTINUES.search(said) and asked & set(terms(said)):
            return [(nxt.start, nxt.end)]
        announced = _ANNOUNCES.search(cand.text)
        if announced is None or not asked & set(terms(announced.group(0))):
            return []
        out = [(nxt.start, nxt.end)]
        sentences, at = self._around(cand)
        here = sentences[at]
        items = _ITEMS.get(announced.group(1).lower(), MAX_ITEMS)
        for s in sentences[at + 2 : at + 1 + items]:
            if (s.section, s.commenter) != (here.section, here.commenter):
                break
            out.append((s.start, s.end))
        return out

    def reason(self, cand: Candidate, question: str) -> tuple[int, int] | None:
        """For a "why …?" question: the next sentence of the same section when it
        gives the reason ("Because …", "This was because …"); or the one before, when
        this one is its consequence ("So she stayed.", "That is why …")."""
        if not _WHY.search(question):
            return None
        text = self.index.documents[cand.hit.chunk.doc_id].text
        if _CONSEQUENCE_START.search(cand.text):
            before = self._previous(cand)
            return None if before is None else (before.start, before.end)
        nxt = self._next(cand)
        if nxt is None:
            return None
        return (nxt.start, nxt.end) if _REASON_START.search(text[nxt.start : nxt.end]) else None

    def shown(self, cand: Candidate) -> tuple[int, int] | None:
        """For a sentence that introduces a code block or table ("… run the command:"):
        that block, the next sentence of the same section, so the answer holds it."""
        nxt = self._next(cand) if cand.text.rstrip().endswith(":") else None
        if nxt is None:
            return None
        blocks = self.index.documents[cand.hit.chunk.doc_id].blocks
        inside = any(a <= nxt.start and nxt.end <= b for a, b, _ in blocks)
        return (nxt.start, nxt.end) if inside else None
