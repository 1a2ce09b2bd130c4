"""Where the retrieved passages disagree: typed claims compared across sources.

    conflict = find_conflict("How many injuries did Baby P suffer?", passages)
    conflict.first.text, conflict.second.text      # "more than 50", "22"

A question that asks for a typed value (``how many`` a count, ``how old`` an age,
``when`` / ``on what day`` a date, ``who`` a name: :func:`answertypes.answer_type`)
gets one claim per passage at most: the phrase of that type (the reader's short answer
when it gave one) that sits next to the question's own words, about the question's
subject.  Two claims from different sources conflict only when their values cannot
both be true: numbers as intervals ("sixty" = 60; "more than 50" is above 50; "about
60" is 54-66), ages in months ("18 months old" vs "17-month-old"; a year of age is
twelve months wide, and an age read years apart may have grown), dates as the days
they cover ("August 2007" holds "3rd August 2007"), names by their words ("Lewis" is
"Peter Lewis").  Precision comes first, so a passage is not compared when:

* it reports a range or a change over time ("between 40 and 60", "rose from 12 to 20");
* the count does not count what the question counts ("8 months" for "how many visits");
* its sentence (or the one before it) does not name the question's subject (one it
  leaves out wholly may be named in the passage around, when the sentence says all
  else the question says), or names it with another version ("Debian 8");
* it says less than most of what the question says (both of two words, half of more);
* its phrase is not within a few words of the question's predicate (a count right
  after "had" may stand for the question's verb, when the sentence holds every other
  word of the question: "had six fractured ribs" for "suffer").

It neither retrieves nor phrases the answer: answering.py turns a :class:`Conflict`
into the answer's "Sources disagree: …" line and its ``disagreement`` JSON field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .answertypes import MONTH_NUMBERS as _MONTHS
from .answertypes import AnswerType, answer_phrases, answer_type
from .text import term_set, terms
from .typedvalues import (
    COUNT,
    DATE,
    age_months,
    bounds,
    date_days,
    in_age,
    in_date,
    number_value,
    qualifier,
    ranged,
)
from .verbforms import WORD as _WORD
from .verbforms import ordered as _ordered
from .verbforms import stems as _stems

#: the kinds of answer compared; a place or a frequency is too loose to call a conflict
COMPARED: frozenset[AnswerType] = frozenset({"number", "age", "time", "day", "person"})
#: words either side of a claim in which the question's own words must appear
WINDOW = 8
#: a count must be followed by what the question counts within this many words
NOUN_GAP = 3

#: an age as a bare number after "was" or "is", followed by nothing it could count:
#: "was 44 at the time", "is 62." (not "was 44 miles", "was 14 months old")
_WAS_AGE = re.compile(
    r"\b(?:was|is|turned)\s+(\d{1,3})(?=\s*(?:[,.;]|$|at\b|when\b|in\s+\d{4}|years?\s+old\b))"
)
#: a name and its version or number: "Debian 6.0", "FHS 3.0", "Debian 8"
_VERSION = re.compile(r"\b([A-Z][\w-]*)\s+(\d+(?:\.\d+)*)\b")
#: a credit: "…, by Bruce Perens", "was made by J.H.M. Dassen"
_CREDIT = re.compile(r"\bby\s+[A-Z]")
_NAME_RUN = re.compile(r"\b[A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*")


@dataclass(frozen=True)
class Passage:
    """A candidate sentence as the detector sees it.

    ``source``: who wrote it (equal strings, the same source: a document's body, or
    one reader comment); ``before``: the sentence before it in its section, where
    its subject may be named; ``short``: the reader's short answer, as a span of
    ``text``; ``written``: the ISO date of its words, when known; ``context``: the
    passage around it."""

    text: str
    source: str
    before: str = ""
    short: tuple[int, int] | None = None
    written: str | None = None
    #: the passage around it (its chunk, with the title and headings), where a name the
    #: sentence shortens ("Balls") is given in full ("Ed Balls"); empty: not checked
    context: str = ""


@dataclass(frozen=True)
class Claim:
    """The value one passage gives: ``text[start:end]`` of passage ``passage`` (its
    position in the list given), as an interval ``[low, high]`` (numbers; ages in
    months; dates as day ordinals) or, for a person, the words of the name."""

    passage: int
    start: int
    end: int
    text: str
    low: float = 0.0
    high: float = 0.0
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Conflict:
    """Two claims of ``kind`` from different sources that cannot both be true."""

    kind: AnswerType
    first: Claim
    second: Claim


def find_conflict(question: str, passages: Sequence[Passage]) -> Conflict | None:
    """The first pair of passages (best first) that disagree on what ``question``
    asks; None when they agree, say different things, or the question asks for no
    compared kind.  The first side is the best-ranked passage with a claim.

    >>> ps = [Passage("Baby P was seen sixty times by professionals.", "a"),
    ...       Passage("Professionals saw Baby P 60 times.", "b"),
    ...       Passage("Baby P was seen 78 times by professionals.", "c")]
    >>> c = find_conflict("How many times was Baby P seen by professionals?", ps)
    >>> c.first.text, c.second.text, c.second.passage
    ('sixty', '78', 2)
    >>> find_conflict("How many times was Baby P seen by professionals?", ps[:2]) is None
    True
    """
    kind = _kind(question)
    found = claims(question, passages)
    for a_pos, a in enumerate(found):
        for b in found[a_pos + 1 :]:
            pa, pb = passages[a.passage], passages[b.passage]
            if kind is not None and pa.source != pb.source and _conflicting(kind, a, b, pa, pb):
                return Conflict(kind, a, b)
    return None


def claims(question: str, passages: Sequence[Passage]) -> list[Claim]:
    """The claim each passage makes on what ``question`` asks, best passage first;
    none when the question asks for no compared kind.

    >>> [c.text for c in claims("How old was Jason Owen?", [Passage("Jason Owen, 36, was.", "a")])]
    ['36']
    """
    kind = _kind(question)
    if kind is None:
        return []
    asked = _Question.of(question, kind)
    if not asked.names and len(asked.predicates) < 2:
        return []  # no subject to hold a claim to ("Who designed the '50'?": "design")
    return [c for i, p in enumerate(passages) if (c := _claim(asked, i, p)) is not None]


def _kind(question: str) -> AnswerType | None:
    """The compared kind a question asks for: ``how many`` only, of the counts."""
    kind = answer_type(question)
    if kind not in COMPARED:
        return None
    if kind == "number" and not re.match(r"^\s*how many\b", question, re.I):
        return None  # "how long", "how much": durations and sums are not compared
    return kind


@dataclass(frozen=True)
class _Question:
    kind: AnswerType
    #: the terms of the names the question gives: its subject
    names: frozenset[str]
    #: the last term of each name ("ball" of "Ed Balls"): a passage must hold them
    surnames: frozenset[str]
    #: its other content terms: what is said about the subject
    predicates: frozenset[str]
    #: what a "how many" question counts ("social workers" of "how many social workers")
    counted: frozenset[str]
    #: the first predicate (its verb, mostly: "appoint" of "Who did Ed Balls appoint")
    main: str | None
    #: the last of what is counted, its noun ("rib" of "fractured ribs")
    head: str | None = None
    #: the terms of each name ("royal univers", "warsaw")
    runs: tuple[frozenset[str], ...] = ()
    #: the first predicate, when a passive question's verb is ``main`` ("goal" of
    #: "When was the goal … adopted?"): a date or a name may sit by either
    lead: str | None = None
    #: the terms of an age question's "when" clause ("defend", "decis" of "How old was
    #: Ed Balls when he defended his decision?"): the time of the age, which a sentence
    #: may give as "at the time"
    when: frozenset[str] = frozenset()
    #: a name with a version or number the question gives ("Debian", "6.0")
    versions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, question: str, kind: AnswerType) -> _Question:
        body = re.sub(r"^\s*\w+", "", question)  # the wh-word is capitalised, not a name
        runs = [
            run
            for m in _NAME_RUN.finditer(body)
            if (run := terms(m.group())) and m.group().lower() not in _MONTHS
        ]
        if re.search(r"\bBaby P\b", question):
            runs.append(["babi", "p"])  # "P" is a stop word to the tokeniser: the subject here
        names = frozenset(t for run in runs for t in run)
        surnames = frozenset(run[-1] for run in runs)
        counted: frozenset[str] = frozenset()
        head = None
        if kind == "number":
            words = _ordered(_counted(question))
            counted, head = frozenset(words), (words[-1] if words else None)
        ordered = [t for t in _ordered(question) if t not in names and t not in _TYPE_WORDS]
        predicates = frozenset(ordered)
        main = lead = next((t for t in ordered if t not in counted and not t.isdigit()), None)
        if m := _PASSIVE.match(question):  # "When was the goal … adopted?": "adopt"
            main = next(iter(_ordered(m.group(1))), main)
        # "P" of "Baby P" is no term: the run is checked by its other words
        full = tuple(frozenset(run) - {"p"} for run in runs)
        when: frozenset[str] = frozenset()
        if kind == "age" and (w := re.search(r"\bwhen\b(.*)$", question, re.I)):
            when = frozenset(_ordered(w.group(1))) - names
        versions = tuple((m.group(1).lower(), m.group(2)) for m in _VERSION.finditer(body))
        return cls(
            kind, names, surnames, predicates, counted, main, head, full, lead, when, versions
        )


#: a passive question ends in its verb ("When was the goal of … adopted?")
_PASSIVE = re.compile(r"^\s*(?:when|who)\s+(?:was|were|is|are)\b.*\b(\w+(?:ed|en))\s*\?*\s*$", re.I)
#: words that name the kind of answer, not what it is about
_TYPE_WORDS = frozenset({"old", "age", "time", "year", "date", "day", "month", "mani"})
#: a light verb that stands for the question's own ("had six fractured ribs" answers
#: "how many fractured ribs did he suffer", "only had 90 social workers" "employ"), read
#: only just before a count followed by what the question counts, in a sentence that
#: holds every other word of the question
_LIGHT = frozenset({"have"})
#: auxiliaries and light verbs, which say nothing a sentence must repeat ("has" of
#: "why Baby P has not been named")
_LIGHT_WORDS = frozenset({"have", "has", "had", "been", "be", "is", "are", "was", "were", "do"})
#: a question's verbs that a credit "X, by Y" answers: Y wrote (made, edited …) X
_AUTHORED = frozenset(
    t
    for w in (
        "write",
        "made",
        "make",
        "creat",
        "compos",
        "design",
        "author",
        "edit",
        "publish",
        "develop",
        "compil",
        "produc",
        "direct",
    )
    for t in terms(w)
)
_AUX = re.compile(
    r"\b(did|do|does|was|were|is|are|has|have|had|will|would|before|after|during|since|"
    r"of|in|on|at|for|to|from|by|with)\b.*$",
    re.I,
)


def _counted(question: str) -> str:
    """What a "how many" question counts: its words up to the last plural before an
    auxiliary, a preposition or a name, else the first two (whose second may be a verb).

    >>> _counted("How many volunteer package maintainers work on Debian?")
    'volunteer package maintainers'
    >>> _counted("How many social workers left Haringey?"), _counted("How many people died?")
    ('social workers', 'people died')
    """
    m = re.match(r"^\s*how many\s+((?:[a-z][\w-]*\s+){0,3}[a-z][\w-]*)", question, re.I)
    if m is None:
        return ""
    words = _aux_cut(m.group(1)).split()
    plural = [k for k, w in enumerate(words) if re.search(r"[^s']s$", w)]
    return " ".join(words[: plural[-1] + 1] if plural else words[:2])


def _aux_cut(words: str) -> str:
    """The words before an auxiliary or a preposition: "social workers" of "social
    workers did", "months" of "months before"."""
    return _AUX.sub("", words)


def _claim(asked: _Question, i: int, p: Passage) -> Claim | None:
    """The claim of passage ``i`` about the question's subject, or None."""
    words = _stems(p.text) | _stems(p.before)
    if "p" in asked.surnames:
        words |= {"p"} if re.search(r"\bBaby P\b", p.text + " " + p.before) else frozenset()
    # what the question says besides its subject, its light verbs and its numbers
    # (the "3.0" of "FHS 3.0" is part of a name)
    said = frozenset(t for t in asked.predicates - _LIGHT_WORDS - asked.when if not t.isdigit())
    if asked.main in _AUTHORED and _CREDIT.search(p.text):
        words |= {asked.main}  # "the Linux FAQ, by Ian Jackson" says who wrote it
    # about the question's subject: every name it gives, or all but one of several
    # ("Ed Balls" of "Ed Balls … Haringey's services"); or the passage around names it
    # when the sentence says all else the question says ("The safeguarding board met
    # only 9 times in 2008", a comment on a page about Haringey's board)
    if len(asked.surnames - words) > (1 if len(asked.surnames) > 1 else 0):
        around = words | _stems(p.context)
        if re.search(r"\bBaby P\b", p.context):
            around |= {"p"}
        # a name left out, not another one half-named ("Debian GNU/Linux" is not the
        # "Debian Project")
        unnamed = all(not (run & words) for run in asked.runs if not run <= words)
        if not (said and said <= words and asked.surnames <= around and unnamed):
            return None
    if _other_version(asked.versions, p.text):
        return None  # "Debian 8 jessie, released in …" is not Debian 6.0
    # and says most of what the question says: "the committee decided that
    # systemd-shim should be …" is another decision than "the default init system";
    # both of two ("designed … buildings" does not say who designed the garden)
    missing = len(said - words)
    if missing * 2 > len(said) or (len(said) == 2 and missing):
        return None
    if p.context:
        # each name in full in the passage around ("Harvey Martin", not another Martin;
        # the Royal University of Warsaw, not another university), all but one of several
        near = words | _stems(p.context)
        missing = sum(1 for run in asked.runs if not run <= near)
        if missing > (1 if len(asked.runs) > 1 else 0):
            return None
    if not asked.names and len(asked.predicates - words) > len(asked.predicates) // 4:
        return None  # no name to hold it to: the sentence says what the question says
    found = [c for c in _phrases(asked, i, p.text, p.context) if _near(asked, p.text, c)]
    if not found:
        return None
    if p.short is not None:  # the reader's short answer, when it is one of them
        a, b = p.short
        inside = [c for c in found if c.start < b and a < c.end]
        if inside:
            return inside[0]
    main = asked.main
    if asked.kind in ("person", "time", "day") and main is not None:
        # the name or date nearest the question's verb ("led by Ofsted", not "Baby")
        verbs = {main, asked.lead} - {None}
        return min(found, key=lambda c: min(_distance(v, p.text, c) for v in verbs if v))
    return max(found, key=lambda c: len(_around(asked, p.text, c)))


def _distance(term: str, text: str, claim: Claim) -> int:
    """Words between the claim and the nearest word of ``text`` with stem ``term``."""
    words = [(m.start(), m.end(), _stems(m.group())) for m in _WORD.finditer(text)]
    at = [k for k, (_, _, ts) in enumerate(words) if term in ts]
    inside = [k for k, (s, e, _) in enumerate(words) if s < claim.end and claim.start < e]
    if not at or not inside:
        return len(words)
    return min(abs(k - j) for k in at for j in inside)


def _proper(word: str, context: str) -> bool:
    """Whether a sentence's capitalised first word is a name: the passage around writes
    it capitalised inside a sentence too ("Hemming has …" after "John Hemming").

    >>> _proper("Hemming", "MP John Hemming said so."), _proper("However", "However, no.")
    (True, False)
    """
    return bool(re.search(rf"(?:\w|,)\s+{re.escape(word)}\b", context))


def _phrases(asked: _Question, i: int, text: str, context: str = "") -> list[Claim]:
    kind = asked.kind
    out: list[Claim] = []
    if kind == "number":
        for m in COUNT.finditer(text):
            after = text[m.end() : m.end() + 40]
            # what it counts is named before any punctuation ("two kinds: binary
            # packages" counts kinds, not packages)
            noun = _WORD.findall(re.split(r"[:;,()]", after, maxsplit=1)[0])[:NOUN_GAP]
            if (
                asked.head
                and asked.head not in _stems(" ".join(noun))
                and not _ones(asked, text, m)
            ):
                continue  # counts something else: "8 months" for "how many visits"
            if re.match(r"\s*(%|per ?cent)", after) or ranged(text, m.start(), m.end()):
                continue
            value = number_value(m.group(1))
            if value is None or in_date(text, m.start(), m.end()) or in_age(text, m.start()):
                continue  # a year, a day of a date, an age ("14 months old") counts nothing
            low, high = bounds(text[: m.start()], value)
            a = m.start() - qualifier(text[: m.start()])  # "more than 50", as written
            out.append(Claim(i, a, m.end(), text[a : m.end()], low, high))
    elif kind == "age":
        spans = list(answer_phrases(text, "age"))
        for m in _WAS_AGE.finditer(text):  # "Ed Balls was 44 at the time"
            if not any(a <= m.start(1) < b for a, b in spans):
                spans.append((m.start(1), m.end(1)))
        for a, b in spans:
            months = age_months(text[a:b])
            if months is not None and not ranged(text, a, b):
                out.append(Claim(i, a, b, text[a:b], *months))
    elif kind in ("time", "day"):
        for m in DATE.finditer(text):
            days = date_days(m)
            if days is None or ranged(text, m.start(), m.end()):
                continue
            if kind == "day" and days[1] - days[0] > 0:
                continue  # "on what day": a month or a year is no day
            a = m.start("y4") if m.group("y4") else m.start()  # "in 2008": the year
            out.append(Claim(i, a, m.end(), text[a : m.end()], *days))
    elif kind == "person":
        for a, b in answer_phrases(text, "person"):
            a = _after_asked(asked, text, a, b)
            names = term_set(text[a:b])
            if a == 0 and " " not in text[a:b] and not _proper(text[a:b], context):
                continue  # a capitalised first word ("However") is no name
            if text[a:b].lower() in _MONTHS:
                continue  # nor is a month
            if re.search(r"['’]s?$", text[a:b]) or re.match(r"['’]s\b", text[b:]):
                continue  # an owner ("Haringey's former head") is not who is asked about
            if names & asked.names:
                continue  # the subject, or what is named after it ("Debian-derived")
            if re.fullmatch(r"[A-Z][\w]*-[a-z][\w-]*", text[a:b]):
                continue  # nor is an adjective made from a name ("Unix-compatible")
            if names and not names <= asked.names | asked.predicates:
                out.append(Claim(i, a, b, text[a:b], names=frozenset(names - asked.names)))
    return out


def _after_asked(asked: _Question, text: str, a: int, b: int) -> int:
    """The start of the name in ``text[a:b]`` after the question's own words that title
    it ("Ed Balls" of "Children's Secretary Ed Balls" for "Who is the children's
    secretary?"), so that they count as beside it."""
    own = asked.predicates | asked.names
    while (m := re.match(r"(\S+)\s+(?=\S)", text[a:b])) and _stems(m.group(1)) <= own:
        a += m.end()
    return a


def _ones(asked: _Question, text: str, m: re.Match[str]) -> bool:
    """Whether the count at ``m`` is of "ones" that stand for what the question counts,
    named earlier in the sentence ("terrorist incidents – of which there have been only
    2 major ones")."""
    noun = {w.lower() for w in _WORD.findall(text[m.end() : m.end() + 40])[:NOUN_GAP]}
    return bool({"one", "ones"} & noun) and asked.head in _stems(text[: m.start()])


def _near(asked: _Question, text: str, claim: Claim) -> bool:
    """Whether the claim sits by what the question asks about, within ``WINDOW`` words:
    an age by its subject's name ("Jason Owen, 36,"); a date or a name by the
    question's verb ("removed … in December 2008"); a count by another of the
    question's words than what it counts ("suffered more than 50 injuries")."""
    around = _around(asked, text, claim)
    if asked.kind == "age":
        return bool(asked.names & around) if asked.names else asked.main in around
    if asked.kind == "number":
        others = asked.predicates - asked.counted
        if asked.head is not None and _LIGHT & _stems_near(text, claim):
            # "had six fractured ribs" for "suffer": the sentence says all the question
            # says but its verb ("had 90 social workers" is not "left in the year after")
            return others - _stems(text) <= {asked.main}
        others -= _LIGHT_WORDS
        if others:
            return bool(others & around)
        # "How many major distributions does Debian have?": the subject beside the
        # count, or named only in the passage around ("There are three major …")
        return bool(asked.names & around) or not (asked.names & _stems(text))
    return bool({asked.main, asked.lead} & around) or _credited(asked, text, claim)


def _credited(asked: _Question, text: str, claim: Claim) -> bool:
    """Whether a name is credited with what a "who wrote …" question asks about: "X,
    by Y" or "X was made by Y", where X (the words before "by", back to the last
    comma) holds the question's other words, all but one of three or more.

    >>> q = _Question.of("Who wrote the Linux FAQ?", "person")
    >>> t = "From: the Debian-1.1 announcement, by Bruce Perens, the Linux FAQ, by Ian Jackson."
    >>> [_credited(q, t, Claim(0, t.index(n), t.index(n) + len(n), n)) for n in ("Bruce", "Ian")]
    [False, True]
    """
    if asked.main not in _AUTHORED:
        return False
    # initials the name phrase leaves out may stand between ("by J.H.M. Dassen")
    m = re.search(r"([^,;:()]*?),?\s+by\s+(?:(?:[A-Z]\.)+\s*)?$", text[: claim.start])
    if m is None:
        return False
    need = (asked.predicates - {asked.main} - _LIGHT_WORDS) | asked.names
    missing = len(need - _stems(m.group(1)))
    return bool(need) and missing <= (1 if len(need) >= 3 else 0)


def _stems_near(text: str, claim: Claim) -> frozenset[str]:
    """The stems of the two words before the claim ("only had" of "only had 90")."""
    before = _WORD.findall(text[: claim.start])[-2:]
    return _stems(" ".join(before))


def _around(asked: _Question, text: str, claim: Claim) -> frozenset[str]:
    """The question's terms within ``WINDOW`` words of the claim, the claim's own aside."""
    words = [(m.start(), m.end(), _stems(m.group())) for m in _WORD.finditer(text)]
    inside = [k for k, (s, e, _) in enumerate(words) if s < claim.end and claim.start < e]
    if not inside:
        return frozenset()
    lo, hi = max(0, inside[0] - WINDOW), inside[-1] + WINDOW + 1
    near = {t for k, (_, _, ts) in enumerate(words[lo:hi], lo) if k not in inside for t in ts}
    return frozenset(near & (asked.predicates | asked.names))


def _conflicting(kind: AnswerType, a: Claim, b: Claim, pa: Passage, pb: Passage) -> bool:
    if kind == "person":
        return not _same_people(a, b)
    slack = 0.0
    if kind == "age":  # an age read years apart has grown: allow the years between
        ya, yb = _year(pa.written), _year(pb.written)
        if ya is not None and yb is not None:
            slack = 12.0 * abs(ya - yb)
    return a.high + slack < b.low or b.high + slack < a.low


def _other_version(versions: Sequence[tuple[str, str]], text: str) -> bool:
    """Whether ``text`` gives a name of the question with another version.

    >>> _other_version([("debian", "6.0")], "Debian 8 jessie, released in April 2016")
    True
    >>> _other_version([("debian", "6.0")], "Debian 6.0 Squeeze, released in 2011")
    False
    """
    return any(
        m.group(1).lower() == name and m.group(2) != number
        for m in _VERSION.finditer(text)
        for name, number in versions
    )


def _same_people(a: Claim, b: Claim) -> bool:
    """Whether two names can be the same people: one holds the other's words ("Lewis"
    of "Peter Lewis", "Sven Rudolph" of "Susan G. Kleinmann and Sven Rudolph") or both
    end in one surname ("Mr Balls", "Ed Balls"); a shared first name is not enough.

    >>> n = lambda t: Claim(0, 0, len(t), t, names=term_set(t))
    >>> _same_people(n("Ian Murdock"), n("Ian Jackson")), _same_people(n("Mr Balls"), n("Ed Balls"))
    (False, True)
    """
    if a.names <= b.names or b.names <= a.names:
        return True
    last_a, last_b = terms(a.text)[-1:], terms(b.text)[-1:]
    return bool(last_a) and last_a == last_b


def _year(iso: str | None) -> int | None:
    m = re.match(r"(\d{4})", iso or "")
    return int(m.group(1)) if m else None
