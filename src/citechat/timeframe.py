"""Questions about time: what a question says about *when* ("by February 2009", "as of
2010", "before 7 February 2009", "since 2013", "the latest on …"), and the retrieved
passages read in that light.

    frame = time_frame("What had happened by February 2009?")
    # TimeFrame(phrase='by February 2009', not_before=None, not_after=date(2009, 2, 28))
    reading = within(reading, frame, index.documents)   # passages dated later left out
    as_of(citations, index.documents)                   # ("7 February 2009", 2)

A passage's date is the date its words were written: a reader comment's own date,
else its document's (provenance.py reads both from the corpus).  A bounded frame
leaves out passages dated outside it and keeps undated ones (nothing says they are
outside); "latest" puts the newest dated passages first among those that answer
about as well as the best.  A question without such words has no frame and nothing
here touches its answer.

It does not read dates from documents (corpus.py does) nor choose sentences
(answering.py).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from .answertypes import MONTH as _MONTH
from .answertypes import MONTH_NUMBERS
from .provenance import human_date
from .reading import Candidate, Reading
from .types import Citation, Document, Hit, SentenceSupport, marker

_YEAR = r"(?:1[89]\d\d|20\d\d)"
#: "7 February 2009", "7th Feb 2009", "February 7, 2009", "February 2009", "2009-02-07", "2009"
_DATE = (
    rf"(?:\d{{4}}-\d\d-\d\d|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+{_YEAR}|"
    rf"{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{_YEAR}|{_MONTH},?\s+{_YEAR}|{_YEAR})"
)
#: the words before a date that bound it: to ("by") or from ("after") that date
_BOUND = re.compile(
    rf"\b(by|as\s+of|as\s+at|up\s+to|until|till|before|prior\s+to|after|since)\s+"
    rf"(?:the\s+end\s+of\s+)?({_DATE})\b",
    re.I,
)
_LATEST = re.compile(r"\b(latest|most\s+recent(?:ly)?|newest|current(?:ly)?)\b", re.I)
#: "latest" puts the newest first among passages scoring at least this share of the best
LATEST_BAND = 0.75


@dataclass(frozen=True)
class TimeFrame:
    """What a question says about when: the dates its sources may have (inclusive
    bounds, None: open) and whether it asks for the latest.  ``phrase``: its words."""

    phrase: str
    not_before: date | None = None
    not_after: date | None = None
    latest: bool = False

    def admits(self, when: date | None) -> bool:
        """Whether a passage written on ``when`` may answer (undated ones may).

        >>> TimeFrame("by 2009", not_after=date(2009, 12, 31)).admits(date(2010, 1, 1))
        False
        """
        if when is None:
            return True
        if self.not_before is not None and when < self.not_before:
            return False
        return self.not_after is None or when <= self.not_after

    def describe(self) -> str:
        """The frame in words, for notices.

        >>> TimeFrame("by Feb 2009", not_after=date(2009, 2, 28)).describe()
        'dated after 28 February 2009'
        """
        parts = []
        if self.not_before is not None:
            parts.append(f"before {human_date(self.not_before.isoformat())}")
        if self.not_after is not None:
            parts.append(f"after {human_date(self.not_after.isoformat())}")
        return "dated " + " or ".join(parts) if parts else ""


def time_frame(question: str) -> TimeFrame | None:
    """The :class:`TimeFrame` of ``question``, or None when it says nothing about when.

    >>> time_frame("What had happened by February 2009?")
    TimeFrame(phrase='by February 2009', not_before=None, not_after=datetime.date(2009, 2, 28), latest=False)
    >>> f = time_frame("What is the latest on Shoesmith after 2012?")
    >>> f.latest, f.not_before, f.not_after
    (True, datetime.date(2013, 1, 1), None)
    >>> time_frame("How many times was Baby P seen by professionals before he died?") is None
    True
    """  # noqa: E501
    not_before: date | None = None
    not_after: date | None = None
    phrases = []
    for m in _BOUND.finditer(question):
        span = _span(m.group(2))
        if span is None:
            continue
        word = " ".join(m.group(1).lower().split())
        first, last = span
        if word in ("before", "prior to"):
            not_after = _earlier(not_after, first - timedelta(days=1))
        elif word == "after":
            not_before = _later(not_before, last + timedelta(days=1))
        elif word == "since":
            not_before = _later(not_before, first)
        else:  # by, as of, as at, up to, until, till: up to the end of that date
            not_after = _earlier(not_after, last)
        phrases.append(m.group(0))
    latest = next((m for m in _LATEST.finditer(question) if not _described(question, m)), None)
    if latest:
        phrases.append(latest.group(0))
    if not phrases:
        return None
    return TimeFrame("; ".join(phrases), not_before, not_after, latest is not None)


#: "who is currently", "that are currently": a relative clause inside the question
_RELATIVE = re.compile(r"\b(who|which|that)\s+(is|are|was|were)\s+$", re.I)


def _described(question: str, m: re.Match[str]) -> bool:
    """Whether "current(ly)" at ``m`` describes what is asked about, in a relative
    clause ("Which file records who is currently using the system?"), rather than
    asking for the latest ("Who is currently the director?": the question's own word).

    >>> q = "Which file records who is currently using the system?"
    >>> _described(q, _LATEST.search(q)), time_frame(q) is None
    (True, True)
    >>> time_frame("Who is currently the director?").latest
    True
    """
    before = question[: m.start()]
    rel = _RELATIVE.search(before)
    return rel is not None and rel.start() > 0


def _span(text: str) -> tuple[date, date] | None:
    """The first and last day ``text`` (a date, a month or a year) covers.

    >>> _span("Feb 2009"), _span("7th February 2009")[0], _span("2008")[1]
    ((datetime.date(2009, 2, 1), datetime.date(2009, 2, 28)), datetime.date(2009, 2, 7), datetime.date(2008, 12, 31))
    """  # noqa: E501
    words = re.findall(r"[A-Za-z]+\.?|\d+", text)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        return day, day
    year = int(next(w for w in reversed(words) if w.isdigit() and len(w) == 4))
    month = next(
        (MONTH_NUMBERS[m] for w in words if (m := w.lower().rstrip(".")) in MONTH_NUMBERS), None
    )
    if month is None:
        return date(year, 1, 1), date(year, 12, 31)
    days = [int(w) for w in words if w.isdigit() and len(w) <= 2]
    try:
        if days:
            day = date(year, month, days[0])
            return day, day
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    except ValueError:  # "31 February 2009"
        return None


def as_of_lead(when: str, n: int) -> tuple[str, SentenceSupport]:
    """The words that date an answer, citing the source whose date they give (its date
    is that source's own, so the sentence is supported by construction).

    >>> as_of_lead("7 February 2009", 2)[0]
    'As of 7 February 2009 [2]:'
    """
    lead = f"As of {when} {marker(n)}:"
    return lead, SentenceSupport(lead, (n,), True, 1.0)


def _earlier(a: date | None, b: date) -> date:
    return b if a is None else min(a, b)


def _later(a: date | None, b: date) -> date:
    return b if a is None else max(a, b)


def written(doc: Document | None, section: str, start: int) -> date | None:
    """When the words at ``start`` of ``doc`` were written: the date of the reader
    comment holding them, else the document's; None when undated (a comment without
    a date of its own too: it was written some time after its page)."""
    if doc is None:
        return None
    if section == "comment":
        found = next(
            (s for s in doc.sections if s.kind == "comment" and s.start <= start < s.end), None
        )
        return _day(found.date) if found is not None else None
    return _day(doc.date)


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def within(
    reading: Reading, frame: TimeFrame, documents: Mapping[str, Document], k: int | None = None
) -> tuple[Reading, int]:
    """``reading`` read in ``frame``, and how many of its hits were left out as dated
    outside it: those passages left out (hits and candidates), for "latest" the newest
    dated candidates first among those whose evidence (retrieval rank aside) is at
    least :data:`LATEST_BAND` of the best; then the first ``k`` hits (all: None) and
    their candidates, renumbered.  An undated reader comment counts as written no
    earlier than its page."""

    def when(hit: Hit) -> date | None:
        c = hit.chunk
        return written(documents.get(c.doc_id), c.section, c.start)

    def admitted(hit: Hit) -> bool:
        day = when(hit)
        if day is None and hit.chunk.section == "comment":
            doc = documents.get(hit.chunk.doc_id)
            page = _day(doc.date) if doc is not None else None
            return page is None or frame.not_after is None or page <= frame.not_after
        return frame.admits(day)

    hits = [h for h in reading.hits if admitted(h)]
    left_out = len(reading.hits) - len(hits)
    cands = [c for c in reading.candidates if admitted(c.hit)]
    if frame.latest and cands:
        cutoff = LATEST_BAND * max(reading.evidence(c) for c in cands)
        band = [c for c in cands if reading.evidence(c) >= cutoff]
        rest = [c for c in cands if reading.evidence(c) < cutoff]

        def newest(c: Candidate) -> tuple[int, int]:
            day = when(c.hit)
            return (0, -day.toordinal()) if day is not None else (1, 0)

        cands = sorted(band, key=newest) + rest  # stable: equal dates keep their order
        first = {c.hit.chunk.chunk_id: i for i, c in reversed(list(enumerate(cands)))}
        hits.sort(key=lambda h: first.get(h.chunk.chunk_id, len(cands)))
    kept = hits[:k] if k is not None else hits
    renumbered = {h.chunk.chunk_id: replace(h, rank=r) for r, h in enumerate(kept, start=1)}
    cands = [
        replace(c, hit=renumbered[c.hit.chunk.chunk_id])
        for c in cands
        if c.hit.chunk.chunk_id in renumbered
    ]
    retrieval = replace(reading.retrieval, hits=list(renumbered.values()))
    return replace(reading, retrieval=retrieval, candidates=tuple(cands)), left_out


def as_of(
    citations: Sequence[Citation], documents: Mapping[str, Document]
) -> tuple[str, int] | None:
    """The date of the newest cited source as people write it, and that source's number;
    None when no cited source is dated.

    >>> from citechat.types import Section
    >>> d = Document("d", "Hi.", "T", (Section("body", 0, 3),), date="2009-02-07")
    >>> as_of([Citation(1, "d", "T", "body", None, 0, 3, "Hi.")], {"d": d})
    ('7 February 2009', 1)
    """
    dated = [
        (day, c.n)
        for c in citations
        if (day := written(documents.get(c.doc_id), c.section, c.start)) is not None
    ]
    if not dated:
        return None
    day, n = max(dated, key=lambda d: (d[0], -d[1]))
    return human_date(day.isoformat()) or day.isoformat(), n
