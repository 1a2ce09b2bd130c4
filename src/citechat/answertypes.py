"""Answer types: the kind of phrase a question asks for ("who" a name, "when" a date,
"how many" a count, "on what day" a day) and how well a sentence offers one of that
kind beside the question's own words: the sliding-window test of classic factoid QA.

    answer_type("How many visits were there?")             # "number"
    answer_phrases("On 7 Feb 2009, 60 visits.", "number")  # [(15, 17)]: not the date
    typed_phrase(sentence, kind, terms, predicates, idf)   # (support, phrase span)

reading.py scores candidate sentences with it; it neither scores nor chooses them.
"""

from __future__ import annotations

import calendar
import re
from functools import lru_cache
from typing import Literal

from .text import term_set

AnswerType = Literal["person", "time", "day", "number", "frequency", "age", "place"]

_TYPE_PATTERNS: tuple[tuple[re.Pattern[str], AnswerType], ...] = (
    (re.compile(r"^\s*(who|whom|whose)\b", re.I), "person"),
    # an age: "Sharon Shoesmith, 55,", "the 17-month-old boy", "aged 36"
    (re.compile(r"^\s*(how old|at what age|what age)\b", re.I), "age"),
    # how often: "monthly", "every day", "twice a year", "three times"
    (re.compile(r"^\s*(how often|how frequently)\b", re.I), "frequency"),
    # a day, not a month or a year: "On what day …?", "What date …?"
    (re.compile(r"^\s*(on )?(what|which) (day|date)\b", re.I), "day"),
    (
        re.compile(
            r"^\s*(when\b|(in |on )?(what|which) (year|date|month|day|decade|century)\b)", re.I
        ),
        "time",
    ),
    (
        re.compile(
            r"^\s*(how (many|much|long|far)|what (percentage|proportion|number))\b",
            re.I,
        ),
        "number",
    ),
    (re.compile(r"^\s*where\b", re.I), "place"),
    # a name the question asks for without a wh-word of its own: "What was the name of
    # …?", "Which doctor …?", "Which hospital …?"
    (re.compile(r"^\s*(what|which) (was|is|were|are) (the )?(full )?names?\b", re.I), "person"),
    (
        re.compile(
            r"^\s*(which|what) (doctor|social worker|judge|minister|official|person|man|woman|"
            r"officer|director|councillor|secretary|paediatrician|journalist|reporter|"
            r"presenter|mp|chief executive|commenter)s?\b",
            re.I,
        ),
        "person",
    ),
    (
        re.compile(
            r"^\s*(which|what) (hospital|council|court|body|organi[sz]ation|agency|school|"
            r"newspaper|company|tribunal|authority|borough|city|country|town|department|"
            r"charity)s?\b",
            re.I,
        ),
        "place",
    ),
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
#: a month as written: "February", "Feb", "Feb.", "Sept" (timeframe.py and
#: disagreement.py read dates with it too)
MONTH = rf"(?:{_MONTHS}|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?"
_MONTH = MONTH
#: a month's name or abbreviation, lower case, without its dot -> its number (1-12)
MONTH_NUMBERS: dict[str, int] = {
    name.lower(): i
    for i in range(1, 13)
    for name in (calendar.month_name[i], calendar.month_abbr[i])
} | {"sept": 9}
#: a day: a weekday, or a day of the month next to its month ("7 February", "Feb. 7th")
_DAY = re.compile(
    r"\b((mon|tues|wednes|thurs|fri|satur|sun)day"
    rf"|\d{{1,2}}(st|nd|rd|th)?\s+(of\s+)?{_MONTH}|{_MONTH}\s+\d{{1,2}}(st|nd|rd|th)?)\b",
    re.I,
)
#: an age: "17-month-old", "aged 36", "55 years old", or a number between commas after
#: a name ("Jason Owen, 36, was convicted")
_AGE = re.compile(
    r"\b\d{1,3}[-\s](year|month|week|day)s?[-\s]old\b|\baged\s+\d{1,3}\b"
    r"|\b\d{1,3}\s+(years?|months?)\s+old\b|(?<=[a-z], )\d{1,3}(?=,)",
    re.I,
)
#: an age phrase supports its sentence at least this much: it is rare, and the name it
#: follows is often the question's (which the predicates leave out)
AGE_SUPPORT = 0.3
#: how often something happens: "monthly", "every day", "twice a year", "three times"
_FREQUENCY = re.compile(
    r"\b(hourly|daily|nightly|weekly|fortnightly|monthly|quarterly|yearly|annually|"
    r"once|twice|always|never|rarely|seldom|often|regularly|constantly|"
    r"every\s+(single\s+)?(\w+\s+)?(day|night|week|month|year|morning|evening|time)|"
    r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|several|many)\s+times)\b",
    re.I,
)
#: a number that is a year or part of a date, which counts nothing ("in 2008", "7 Feb")
_NOT_A_COUNT = re.compile(
    rf"^(1[5-9]\d\d|20\d\d)$|^\d{{1,2}}(st|nd|rd|th)?\s+(of\s+)?{_MONTH}|{_MONTH}\s+\d", re.I
)
#: "who wrote …?": the name of a byline ("by Amy Taylor", alone on its line) answers it
_AUTHORSHIP = frozenset({"wrote", "write", "written", "author"})
_BYLINE = re.compile(r"\s*by\s+[A-Z][\w’'-]+(\s+[A-Z][\w’'-]+)*\s*$")
#: a sum of money: the number after one of these is never a year
_CURRENCY = frozenset("£$€¥")
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
    pattern = {
        "person": _NAME,
        "place": _NAME,
        "time": _TIME,
        "day": _DAY,
        "number": _NUMBER,
        "frequency": _FREQUENCY,
        "age": _AGE,
    }
    spans = [m.span() for m in pattern[kind].finditer(sentence)]
    if kind == "number":
        spans = [(a, b) for a, b in spans if not _date_part(sentence, a, b)]
    return spans


def _date_part(sentence: str, a: int, b: int) -> bool:
    """Whether the number at ``sentence[a:b]`` is a year or a day of a date.

    >>> s = "On 7 February 2009, 60 visits, over £2000 per case."
    >>> [_date_part(s, m.start(), m.end()) for m in _NUMBER.finditer(s)]
    [True, True, False, False]
    """
    if sentence[max(0, a - 1) : a] in _CURRENCY:
        return False  # "£2000" is a sum, not the year 2000
    if _NOT_A_COUNT.match(sentence[a:b]):
        return True
    after, before = sentence[a : b + 16], sentence[max(0, a - 12) : b]
    return bool(_NOT_A_COUNT.match(after) or _NOT_A_COUNT.search(before))


def typed_phrase(
    sentence: str,
    kind: AnswerType,
    question_terms: set[str],
    predicates: set[str],
    idf: dict[str, float],
) -> tuple[float, tuple[int, int] | None]:
    """(support, phrase): the share (IDF-weighted) of the question's predicates found
    within ``WINDOW`` words of a phrase of the wanted kind that the question itself
    does not contain, and the (start, end) in ``sentence`` of the phrase that scores
    best (None when none scores).  A sentence that restates the question without
    naming anything new scores (0, None).

    >>> idf = {"appoint": 2.0, "servic": 0.5, "run": 1.0}
    >>> preds = {"appoint", "servic", "run"}
    >>> q = {"ed", "ball", "haringey", *preds}
    >>> s = "He ordered the appointment of Peter Lewis."
    >>> support, (a, b) = typed_phrase(s, "person", q, preds, idf)
    >>> round(support, 3), s[a:b]
    (0.571, 'Peter Lewis')
    >>> typed_phrase("Ed Balls rejected claims by Haringey.", "person", q, preds, idf)
    (0.0, None)
    """
    total = sum(idf.get(t, 0.0) for t in predicates)
    if total <= 0:
        return 0.0, None
    words = _words(sentence)
    best, where = 0.0, None
    for a, b in answer_phrases(sentence, kind):
        phrase = term_set(sentence[a:b])
        if not phrase or phrase <= question_terms:
            continue  # a name the question already gives is not an answer
        inside = [i for i, (s, e, _) in enumerate(words) if s < b and a < e]
        if not inside:
            continue
        lo, hi = max(0, inside[0] - WINDOW), inside[-1] + WINDOW + 1
        near = {t for _, _, ts in words[lo:hi] for t in ts} - phrase
        support = sum(idf.get(t, 0.0) for t in predicates & near) / total
        if kind == "age" or (
            kind == "person" and predicates & _AUTHORSHIP and _BYLINE.match(sentence[:b])
        ):
            # an age is rare; a byline ("by Amy Taylor") names who wrote the piece
            support = max(support, AGE_SUPPORT)
        if support > best:
            best, where = support, (a, b)
    return best, where


def typed_support(
    sentence: str,
    kind: AnswerType,
    question_terms: set[str],
    predicates: set[str],
    idf: dict[str, float],
) -> float:
    """The support of :func:`typed_phrase` alone."""
    return typed_phrase(sentence, kind, question_terms, predicates, idf)[0]


@lru_cache(maxsize=1 << 14)
def _words(sentence: str) -> tuple[tuple[int, int, frozenset[str]], ...]:
    """(start, end, terms) of each word of a sentence, cached like :func:`term_set`."""
    return tuple((m.start(), m.end(), term_set(m.group())) for m in _WORD.finditer(sentence))
