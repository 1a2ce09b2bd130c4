"""Typed values as the intervals they mean: counts ("sixty", "more than 50", "about
60"), ages in months ("17-month-old", "aged 36") and dates as the days they cover
("August 2007", "3rd August 2007").  disagreement.py compares claims with them.

    >>> number_value("sixty"), bounds("more than ", 50), age_months("17-month-old")
    (60, (50.5, inf), (17.0, 17.0))

It finds no claims and compares nothing (disagreement.py does).
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from .answertypes import MONTH as _MONTH
from .answertypes import MONTH_NUMBERS as _MONTHS
from .answertypes import answer_phrases

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_WORDS = "|".join([*_TENS, *_UNITS, "a dozen", "dozen", "a hundred", "hundred"])
#: a count as written: "60", "1,200", "sixty", "sixty-five", "a dozen"
COUNT = re.compile(
    rf"(?<![\w£$€.,-])(\d{{1,3}}(?:,\d{{3}})+|\d+(?:\.\d+)?|(?:{_WORDS})(?:[-\s](?:{_WORDS}))?)"
    r"(?![\w%]|[.,]\d)",
    re.I,
)
#: qualifiers before a count that make it a bound or an estimate
_LOWER = re.compile(r"\b(more than|over|at least|upwards of|in excess of|no fewer than)\s+$", re.I)
_UPPER = re.compile(r"\b(less than|fewer than|under|up to|at most|no more than)\s+$", re.I)
_ABOUT = re.compile(r"\b(about|around|nearly|almost|some|roughly|approximately|circa)\s+$", re.I)
#: a range or a change over time next to a claim: never compared
RANGE = re.compile(
    r"\b(between\s+\S+\s+and|from\s+\S+\s+to|rose|risen|rising|fell|fallen|falling|increased|"
    r"decreased|dropped|grew|grown|doubled|halved|up from|down from)\b"
    r"|\d\s*(-|–|to)\s*\d",
    re.I,
)
DATE = re.compile(
    rf"\b(?:(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m1>{_MONTH})(?:,?\s+(?P<y1>\d{{4}}))?"
    rf"|(?P<m2>{_MONTH})\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y2>\d{{4}}))?"
    rf"|(?P<m3>{_MONTH})(?:\s+of)?\s+(?P<y3>\d{{4}})"
    r"|(?:in\s+|of\s+)(?:(?:early|late|mid)[\s-]+)?(?P<y4>1[89]\d\d|20\d\d))\b",
    re.I,
)
_AGE_NUMBER = re.compile(r"\d{1,3}")
_AGE_UNIT = re.compile(r"(year|month|week|day)", re.I)


def ranged(text: str, a: int, b: int) -> bool:
    """A range or a change over time around ``text[a:b]``."""
    return bool(RANGE.search(text[max(0, a - 30) : b + 30]))


def in_date(text: str, a: int, b: int) -> bool:
    """A year, or the day of a date ("7 February"), is no count."""
    return any(m.start() <= a and b <= m.end() for m in DATE.finditer(text)) or bool(
        re.fullmatch(r"1[89]\d\d|20\d\d", text[a:b])
    )


def in_age(text: str, a: int) -> bool:
    """Whether the number at ``text[a:]`` is an age ("14 months old", "Owen, 36,")."""
    return any(s <= a < e for s, e in answer_phrases(text, "age"))


def bounds(before: str, value: float) -> tuple[float, float]:
    """The interval a count means with the qualifier before it.

    >>> bounds("more than ", 50), bounds("about ", 60), bounds("", 60)
    ((50.5, inf), (54.0, 66.0), (60, 60))
    """
    if _LOWER.search(before):
        return value + 0.5, float("inf")
    if _UPPER.search(before):
        return float("-inf"), value - 0.5
    if _ABOUT.search(before):
        return value * 0.9, value * 1.1
    return value, value


def qualifier(before: str) -> int:
    """The length of the qualifier ("more than ", "about ") that ends ``before``."""
    for pattern in (_LOWER, _UPPER, _ABOUT):
        if m := pattern.search(before):
            return len(before) - m.start()
    return 0


def number_value(text: str) -> float | None:
    """A count as a number; None when it is not one.

    >>> number_value("sixty"), number_value("Sixty-five"), number_value("1,200")
    (60, 65, 1200)
    >>> number_value("a dozen"), number_value("seven"), number_value("lots")
    (12, 7, None)
    """
    low = text.lower().strip()
    if re.fullmatch(r"\d{1,3}(,\d{3})+|\d+(\.\d+)?", low):
        value = float(low.replace(",", ""))
        return int(value) if value.is_integer() else value
    total = 0
    for word in re.split(r"[-\s]+", low):
        if word == "a":
            continue
        if word in _UNITS:
            total += _UNITS[word]
        elif word in _TENS:
            total += _TENS[word]
        elif word == "dozen":
            total = (total or 1) * 12
        elif word == "hundred":
            total = (total or 1) * 100
        else:
            return None
    return total


def age_months(phrase: str) -> tuple[float, float] | None:
    """An age phrase as the interval of months it allows.

    >>> age_months("17-month-old"), age_months("aged 36"), age_months("2 weeks old")
    ((17.0, 17.0), (432.0, 443.0), (0.0, 0.0))
    """
    m = _AGE_NUMBER.search(phrase)
    if m is None:
        return None
    n = float(m.group())
    unit = _AGE_UNIT.search(phrase)
    kind = unit.group(1).lower() if unit else "year"  # "aged 36", "Owen, 36,": years
    if kind == "month":
        return n, n
    if kind in ("week", "day"):
        months = float(int(n / (4.35 if kind == "week" else 30.4)))
        return months, months
    return 12 * n, 12 * n + 11


def date_days(m: re.Match[str]) -> tuple[float, float] | None:
    """A :data:`DATE` match as the first and last day (ordinals) it covers; None
    without a year (a bare "December" could be any)."""
    year = m.group("y1") or m.group("y2") or m.group("y3") or m.group("y4")
    if year is None:
        return None
    y = int(year)
    month_name = m.group("m1") or m.group("m2") or m.group("m3")
    day = m.group("d1") or m.group("d2")
    if month_name is None:
        return float(date(y, 1, 1).toordinal()), float(date(y, 12, 31).toordinal())
    month = _MONTHS[month_name.lower().rstrip(".")]
    try:
        if day is not None:
            d = float(date(y, month, int(day)).toordinal())
            return d, d
    except ValueError:
        return None
    last = calendar.monthrange(y, month)[1]
    return float(date(y, month, 1).toordinal()), float(date(y, month, last).toordinal())
