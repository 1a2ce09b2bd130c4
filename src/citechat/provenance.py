"""Whose words a citation quotes, and when they were written: the publisher and date of
its document, or the commenter and date of its reader comment.

    p = provenance(doc, citation)
    p.said_by()     # "BBC News (7 February 2009)", "a reader comment by Lou (11 April 2013)"
    p.meta()        # "BBC News · 7 February 2009 · article" (the source cards, the export)
    relative_dates("She lost last month.", "2009-02-07")  # [("last month", "January 2009")]

The answerer attributes its quotes with it ("According to BBC News (7 February 2009):
“…” [1]"), the chat and the export label their sources with it.  It reads what the
corpus found (``Document.source``, ``Document.date``, a comment ``Section``'s commenter
and date) and invents nothing: what is unknown is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .types import Citation, Document


@dataclass(frozen=True)
class Provenance:
    """The publisher and date of a citation's document; its commenter and date when
    it quotes a reader comment.  Dates are ISO (``2009-02-07``) as the corpus read
    them, or None."""

    publisher: str | None
    date: str | None
    comment: bool = False
    commenter: str | None = None
    comment_date: str | None = None

    def said_by(self) -> str | None:
        """Who wrote the quoted words, for the answer text; None when nothing is known.

        >>> Provenance("BBC News", "2009-02-07").said_by()
        'BBC News (7 February 2009)'
        >>> Provenance(None, None, True, "Lou", "2013-04-11").said_by()
        'a reader comment by Lou (11 April 2013)'
        >>> Provenance(None, None).said_by() is None
        True
        """
        if self.comment:
            when = human_date(self.comment_date)
            return f"a {self._comment()} ({when})" if when else f"a {self._comment()}"
        when = human_date(self.date)
        if self.publisher:
            return f"{self.publisher} ({when})" if when else self.publisher
        return f"an article of {when}" if when else None

    def written(self) -> str | None:
        """The date of the quoted words: the comment's own, else the document's."""
        return self.comment_date if self.comment else self.date

    def meta(self) -> str:
        """The label of a source card: "Publisher · date · article", or the same with
        "reader comment by Ann, 3 May 2009".

        >>> Provenance("BBC News", "2009-02-07").meta()
        'BBC News · 7 February 2009 · article'
        >>> Provenance("Community Care", None, True, "Lou", "2013-04-11").meta()
        'Community Care · reader comment by Lou, 11 April 2013'
        """
        parts = [p for p in (self.publisher, human_date(self.date)) if p]
        if not self.comment:
            return " · ".join([*parts, "article"])
        when = human_date(self.comment_date)
        kind = self._comment()
        return " · ".join([*parts, f"{kind}, {when}" if when else kind])

    def _comment(self) -> str:
        return f"reader comment by {self.commenter}" if self.commenter else "reader comment"


def provenance(doc: Document | None, citation: Citation) -> Provenance:
    """The :class:`Provenance` of ``citation`` in ``doc`` (None: the document is gone,
    and only what the citation itself records is known)."""
    comment = citation.section == "comment"
    when = None
    if doc is not None and comment:
        when = next(
            (
                s.date
                for s in doc.sections
                if s.kind == "comment" and s.start <= citation.start < s.end and s.date
            ),
            None,
        )
    return Provenance(
        doc.source if doc else None,
        doc.date if doc else None,
        comment,
        citation.commenter if comment else None,
        when,
    )


def human_date(value: str | None) -> str | None:
    """An ISO date (or date-time) as people write it; anything else as it is.

    >>> human_date("2009-02-07"), human_date("2009-02-07T15:29:00"), human_date("Feb 2009")
    ('7 February 2009', '7 February 2009', 'Feb 2009')
    """
    day = _day(value)
    if day is None:
        return value or None
    return _human(day)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: a date given relative to when the words were written
_RELATIVE = re.compile(
    r"\b(yesterday|today|tomorrow|(?:last|this|next) (?:week|month|year)|"
    r"(?:on|last) (?:" + "|".join(_WEEKDAYS) + r"))\b",
    re.I,
)


def relative_dates(sentence: str, written: str | None) -> list[tuple[str, str]]:
    """Each relative date in ``sentence`` ("last month", "on Saturday") with the date
    it means, read against ``written`` (the ISO date of the words); [] without one.
    A weekday is the last one on or before that date: news reports what happened.

    >>> relative_dates("She, who lost an appeal last month, spoke on Saturday.", "2009-02-07")
    [('last month', 'January 2009'), ('on Saturday', '7 February 2009')]
    >>> relative_dates("It closed yesterday and reopens next year.", "2009-01-01")
    [('yesterday', '31 December 2008'), ('next year', '2010')]
    >>> relative_dates("It closed last month.", None)
    []
    """
    day = _day(written)
    if day is None:
        return []
    out = []
    for m in _RELATIVE.finditer(sentence):
        phrase = m.group(1)
        low = phrase.lower()
        if low in ("yesterday", "today", "tomorrow"):
            meant = _human(day + timedelta(days={"yesterday": -1, "today": 0, "tomorrow": 1}[low]))
        elif low.endswith("month"):
            first = day.replace(day=1)
            if low.startswith("last"):
                first = (first - timedelta(days=1)).replace(day=1)
            elif low.startswith("next"):
                first = (first + timedelta(days=31)).replace(day=1)
            meant = f"{first:%B %Y}"
        elif low.endswith("year"):
            shift = {"last": -1, "this": 0, "next": 1}[low.split()[0]]
            meant = str(day.year + shift)
        elif low.endswith("week"):
            shift = {"last": -7, "this": 0, "next": 7}[low.split()[0]]
            monday = day - timedelta(days=day.weekday()) + timedelta(days=shift)
            meant = f"the week of {_human(monday)}"
        else:
            back = (day.weekday() - _WEEKDAYS.index(low.split()[1])) % 7
            if low.startswith("last") and back == 0:
                back = 7
            meant = _human(day - timedelta(days=back))
        out.append((phrase, meant))
    return out


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None


def _human(day: date) -> str:
    return f"{day.day} {day:%B %Y}"
