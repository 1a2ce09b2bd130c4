"""Find the article and the reader comments in a web page saved as text.

Pages copied out of a browser carry their chrome along: mastheads, datelines,
navigation, promos ("Listen to the full interview ..."), share and reply
forms, related links, copyright lines.  :func:`split_page` walks such a page
line by line and returns the headline, the metadata the page states
(publisher, date, author) and the spans of the article body and of each
comment; the small line classifiers it uses (:func:`is_footer`,
:func:`commenter`, :func:`iso_date` ...) are public so their rules can be read
and tested one at a time.

It works on strings and offsets only: it does not read files, decode bytes or
build Documents (that is :mod:`citechat.corpus`).  Every pattern is anchored to
the whole line, so an article sentence that merely mentions "sign in" is never
taken for the site's "Sign in" link.  The rules are general ("N Responses to",
numbered comments, "Name <date> #" lines), not tied to particular sites.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re

from citechat.types import Section

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?"
    r"|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"
# Three spellings pages use: "7 February 2009" (also "11 April , 2013",
# "30th Dec 2016"), "February 7, 2009" and "2009-02-07".
_DATE_RE = re.compile(
    rf"\b(?:(?P<d1>{_DAY})\s+(?P<m1>{_MONTH})\s*,?\s*(?P<y1>{_YEAR})"
    rf"|(?P<m2>{_MONTH})\s+(?P<d2>{_DAY})\s*,?\s*(?P<y2>{_YEAR})"
    rf"|(?P<y3>{_YEAR})-(?P<n3>\d{{2}})-(?P<d3>\d{{2}}))\b",
    re.IGNORECASE,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_TIME = r"(?:,?\s*(?:at\s+)?\d{1,2}[:.]\d{2}\s*(?:[ap]\.?m\.?)?)"

# Lines after which nothing belongs to the article: share/reply forms,
# related links, site navigation and legal notices.  A comment thread may
# still follow (it is found by its own heading), and a footer line also ends
# a comment thread.
_FOOTER_RE = re.compile(
    r"(?:leave a (?:reply|comment)|comments are closed\.?|related(?: articles| stories"
    r"| links| posts| content)?:?|more from .+|print sponsor|share this:?|like this:?"
    r"|sign in|(?:\w+\s+){1,2}navigation|.{0,40}not responsible for the content of.*"
    r"|copyright\b.*|©.*|fill in your details.*|you are commenting using.*"
    r"|connecting to %s|(?:top|bottom) of page|back to top)",
    re.IGNORECASE,
)
# Lines inside an article that are page furniture, not reporting: calls to
# action ("Listen to the full interview on ...") and tag lists that lost their
# links (", , , ,").  Captions and subheadings are kept: they are true
# statements from the page and give the passages around them context.
_PROMO_RE = re.compile(
    r"(?:listen|watch|click|tap|subscribe|sign up|follow us|advertisement|skip to"
    r"|read more|read the full|see also|share (?:on|via))\b[^.]*",
    re.IGNORECASE,
)
# "One thought on “Title", "0 thoughts on “Title", "15 Responses to Title",
# "12 Comments", "Comments (3)", "Reader comments".
_COMMENTS_HEADING_RE = re.compile(
    r"(?:(?:\d+|one|no)\s+(?:thoughts?|responses?|comments?|replies|reply)"
    r"(?:\s+(?:on|to)\s+.*)?|(?:reader\s+)?comments?(?:\s*\(\d+\))?|responses?)\s*:?",
    re.IGNORECASE,
)
_DATELINE_RE = re.compile(
    r"(?:page\s+)?(?:last\s+)?(?:updated|published|posted|first published)\b.*",
    re.IGNORECASE,
)
_BYLINE_RE = re.compile(r"[Bb]y\s+(?P<name>[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,3})")
_COPYRIGHT_RE = re.compile(
    r"(?:copyright\s*)?(?:©|\(c\))\s*(?:\d{4}(?:\s*[-–]\s*\d{4})?\s+)?(?P<name>[^.|,;]+)",
    re.IGNORECASE,
)
_MORE_FROM_RE = re.compile(r"more from (?P<name>.+)", re.IGNORECASE)
# The names copyright lines use for publishers whose articles carry another.
_PUBLISHER_ALIASES = {"BBC": "BBC News"}
# A first line longer than this is a paragraph, not a headline.
HEADLINE_MAX_WORDS = 25
# "  1. comment text" or "  12. Jerry Lonsdale 11 April , 2013 at 11:00 pm #";
# deeper indents are paragraphs inside a comment.
_NUMBERED_RE = re.compile(r"\s{0,3}(?P<n>\d{1,4})\.(?:\s+(?P<rest>.*))?")
# Links WordPress prints under each comment.
_COMMENT_CHROME_RE = re.compile(
    r"(?:reply|like|report(?: comment| abuse)?|permalink|loading\.*|\d+ likes?)\W*",
    re.IGNORECASE,
)
BULLETS = "•·*-–|>"
_PREPOSITIONS = frozenset(
    {"on", "at", "of", "in", "by", "to", "from", "since", "until", "before", "after", "dated"}
)


def iso_date(text: str) -> str | None:
    """The first calendar date written in ``text``, as ``YYYY-MM-DD``.

    >>> iso_date("Page last updated at 15:29 GMT, Saturday, 7 February 2009")
    '2009-02-07'
    >>> iso_date("Today [30th Dec 2016] we"), iso_date("no date"), iso_date("31 Feb 2009")
    ('2016-12-30', None, None)
    """
    match = _DATE_RE.search(text)
    if match is None:
        return None
    g = match.groupdict()
    if g["y3"]:
        year, month, day = int(g["y3"]), int(g["n3"]), int(g["d3"])
    else:
        name = g["m1"] or g["m2"]
        year = int(g["y1"] or g["y2"])
        month = _MONTHS.index(name[:3].lower()) + 1
        day = int(re.sub(r"\D", "", g["d1"] or g["d2"]))
    try:
        return _dt.date(year, month, day).isoformat()
    except ValueError:  # "31 February": looks like a date, is not one
        return None


def is_footer(line: str) -> bool:
    """Whether ``line`` (stripped) starts the page's footer.

    >>> is_footer("Leave a Reply"), is_footer("Print Sponsor"), is_footer("Sign in to vote.")
    (True, True, False)
    """
    return _FOOTER_RE.fullmatch(line) is not None


def is_inline_boilerplate(line: str) -> bool:
    """Whether ``line`` (stripped) is a promo or a bare tag line inside an article.

    >>> is_inline_boilerplate("Listen to the full interview on Weekend Woman's Hour, BBC Radio 4")
    True
    >>> is_inline_boilerplate(", , , ,"), is_inline_boilerplate("Insufficient supervision")
    (True, False)
    """
    line = line.lstrip(BULLETS).strip()
    if not re.search(r"[^\W_]", line):
        return True
    # Promos are short and never a full sentence; "Watch this space, he said."
    # opening a paragraph is reporting.
    return len(line.split()) <= 20 and _PROMO_RE.fullmatch(line) is not None


def is_comments_heading(line: str) -> bool:
    """Whether ``line`` (stripped) heads a thread of reader comments.

    A sentence that happens to start "One thought on ..." ends with a full stop;
    headings do not.

    >>> is_comments_heading("15 Responses to Baby P case"), is_comments_heading("12 Comments")
    (True, True)
    >>> is_comments_heading("One thought on this is that we should wait.")
    False
    """
    return (
        not line.endswith(".")
        and len(line.split()) <= 30
        and _COMMENTS_HEADING_RE.fullmatch(line) is not None
    )


def dateline(line: str) -> str | None:
    """The ISO date of a line that only states when the page was written.

    >>> dateline("Page last updated at 15:29 GMT, Saturday, 7 February 2009")
    '2009-02-07'
    >>> dateline("7 February 2009"), dateline("Balls rejected claims on 7 February 2009")
    ('2009-02-07', None)
    """
    date = iso_date(line)
    if date is None:
        return None
    if _DATELINE_RE.fullmatch(line):
        return date
    # A bare date, perhaps with a weekday or time: few words besides the date.
    rest = _DATE_RE.sub("", line, count=1)
    return date if len(re.findall(r"[^\W\d_]+", rest)) <= 2 else None


def byline(line: str) -> str | None:
    """The author named by a line like "by Amy Taylor".

    >>> byline("by Amy Taylor"), byline("By the time he died")
    ('Amy Taylor', None)
    """
    match = _BYLINE_RE.fullmatch(line)
    return match["name"] if match else None


def commenter(line: str, *, strict: bool) -> tuple[str, str | None] | None:
    """(name, ISO date) from the line above a comment, or None.

    Accepts "Name <date> [at <time>] [#]" and "Name says:".  With ``strict``
    (used where no "1." numbering marks comments) the line must also carry a
    time, "#" or "says:", because a comment sentence can end in a date.

    >>> commenter("Jerry Lonsdale 11 April , 2013 at 11:00 pm #", strict=True)
    ('Jerry Lonsdale', '2013-04-11')
    >>> commenter("Ann says:", strict=True), commenter("I wrote on 3 May 2009", strict=True)
    (('Ann', None), None)
    """
    says = re.fullmatch(r"(?P<name>\S.{0,59}?)\s+(?:says|said|wrote):", line)
    if says:
        return says["name"], None
    match = _DATE_RE.search(line)
    if match is None:
        return None
    name = line[: match.start()].strip(" ,|-–—")
    tail = line[match.end() :]
    marked = re.fullmatch(rf"\s*{_TIME}?\s*#?\s*", tail, re.IGNORECASE)
    if marked is None or not name or len(name) > 60 or len(name.split()) > 6:
        return None
    if strict and not tail.strip():
        return None
    # "the report of 3 May 2009" is a sentence, not a name.
    if name[-1] in ".!?;:" or name.split()[-1].lower() in _PREPOSITIONS:
        return None
    return name, iso_date(match.group())


def publisher(line: str) -> str | None:
    """The publisher a footer line names ("More from X", "Copyright © 2019 X.").

    >>> publisher("More from Community Care"), publisher("Copyright © 2019 BBC. Read more.")
    ('Community Care', 'BBC News')
    """
    match = _MORE_FROM_RE.fullmatch(line) or _COPYRIGHT_RE.match(line)
    if match is None:
        return None
    name = match["name"].strip()
    if not name or len(name.split()) > 5:
        return None
    return _PUBLISHER_ALIASES.get(name, name)


@dataclasses.dataclass(frozen=True)
class Page:
    """What :func:`split_page` found: metadata and the citable spans."""

    title: str | None
    sections: tuple[Section, ...]
    source: str | None = None
    date: str | None = None
    author: str | None = None


def split_page(text: str) -> Page:
    """Find the headline, metadata, body and comments of a page saved as text.

    The first lines may be a masthead, a dateline or navigation; the first
    other line is the headline (the title, outside every section); a
    "by Name" line after it is the author.  The body runs to the page footer
    ("Leave a Reply", "Related articles", "Print Sponsor" ...) or a comment
    heading ("One thought on ...", "15 Responses to ..."), one section per
    run of lines between promos; comments run from that heading to the next
    footer line, one section each.

    >>> page = split_page("News\\n\\nIt rained.\\n\\n1 Comment\\n  1. Ann 3 May 2009 #\\n    Wet!")
    >>> page.title, [(s.kind, s.start, s.end, s.commenter) for s in page.sections]
    ('News', [('body', 6, 16, None), ('comment', 54, 58, 'Ann')])
    """
    lines = _split_lines(text)
    head = _read_head(lines)
    body_end = _region_end(lines, head.next, body=True)
    body = _body_sections(text, lines[head.next : body_end])

    comments: list[Section] = []
    heading = next(
        (i for i in range(body_end, len(lines)) if is_comments_heading(lines[i].stripped)),
        None,
    )
    if heading is not None:
        stop = _region_end(lines, heading + 1, body=False)
        comments = _comment_sections(text, lines[heading + 1 : stop])

    sections = tuple(body + comments)
    if not sections and text.strip():
        # Nothing looked like an article (a one-line note, say): keep it all
        # citable rather than drop the document's only text.
        sections = (Section("body", *trim(text, 0, len(text))),)
    return Page(
        title=head.title,
        sections=sections,
        source=head.source or _footer_publisher(lines),
        date=head.date or _first_paragraph_date(text, body),
        author=head.author,
    )


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` moved inwards past whitespace.

    >>> trim("  ab \\n", 0, 6)
    (2, 4)
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


@dataclasses.dataclass(frozen=True)
class _Line:
    start: int  # offset of the line's first character in the text
    end: int  # offset just past its last character (before "\n")
    stripped: str


@dataclasses.dataclass
class _Head:
    title: str | None = None
    source: str | None = None
    date: str | None = None
    author: str | None = None
    next: int = 0  # index of the first line after the headline block


@dataclasses.dataclass
class _Comment:
    commenter: str | None = None
    date: str | None = None
    start: int | None = None
    end: int = 0

    def add(self, start: int, end: int) -> None:
        if self.start is None:
            self.start = start
        self.end = end


def _split_lines(text: str) -> list[_Line]:
    lines, pos = [], 0
    for raw in text.split("\n"):
        lines.append(_Line(pos, pos + len(raw), raw.strip()))
        pos += len(raw) + 1
    return lines


def _region_end(lines: list[_Line], start: int, *, body: bool) -> int:
    """Index of the footer line (or, for a body, comment heading) that ends a region.

    Footer-like lines before the region's first text ("Sign in" under a
    headline, "Leave a comment" under a comments heading) are chrome inside
    it, not its end: stopping there would lose the whole article.
    """
    has_text = False
    for i in range(start, len(lines)):
        line = lines[i].stripped
        if body and is_comments_heading(line):
            return i
        if is_footer(line):
            if has_text:
                return i
        elif line and not is_inline_boilerplate(line):
            has_text = True
    return len(lines)


def _is_masthead(lines: list[_Line], i: int) -> bool:
    """A short first line followed at once by a bullet line ("Community Care\\n  • Jobs")."""
    line = lines[i].stripped
    after = lines[i + 1].stripped if i + 1 < len(lines) else ""
    return (
        len(line.split()) <= 4
        and line[-1] not in ".!?:;,"
        and after[:1] in tuple(BULLETS)
        and len(after) > 1
    )


def _read_head(lines: list[_Line]) -> _Head:
    """Masthead, dateline and navigation, then the headline, then byline/dateline."""
    head, i, first = _Head(), 0, True
    while i < len(lines):
        line = lines[i].stripped
        if not line:
            i += 1
            continue
        if first and _is_masthead(lines, i):
            head.source = line
        elif date := dateline(line):
            head.date = head.date or date
        elif not (line[0] in "•·|" or is_inline_boilerplate(line) or is_footer(line)):
            break
        first = False
        i += 1
    if i < len(lines):
        headline = lines[i].stripped.lstrip("#").strip()  # "# Title" in Markdown
        if len(headline.split()) <= HEADLINE_MAX_WORDS and len(headline) <= 200:
            head.title = " ".join(headline.split())  # also turns no-break spaces into spaces
            i += 1
            while i < len(lines):
                line = lines[i].stripped
                if line and (author := byline(line)):
                    head.author = head.author or author
                elif line and (date := dateline(line)):
                    head.date = head.date or date
                elif line:
                    break
                i += 1
    head.next = i
    return head


def _body_sections(text: str, lines: list[_Line]) -> list[Section]:
    """One body section per run of article lines between boilerplate lines."""
    runs: list[tuple[int, int]] = []
    in_run = False
    for line in lines:
        if not line.stripped:
            continue  # blank lines separate paragraphs, not sections
        if is_inline_boilerplate(line.stripped) or is_footer(line.stripped):
            in_run = False
        elif in_run:
            runs[-1] = (runs[-1][0], line.end)
        else:
            runs.append((line.start, line.end))
            in_run = True
    spans = (trim(text, start, end) for start, end in runs)
    return [Section("body", start, end) for start, end in spans if start < end]


def _comment_sections(text: str, lines: list[_Line]) -> list[Section]:
    """One section per comment in the lines after a comments heading.

    Comments are numbered ("  1.", "  2.", ...), perhaps with a
    "Name <date> #" line; a number starts a comment only when it is the next
    one, so a "2." inside comment 1 stays text.  Unnumbered threads split at
    "Name <date> at <time>" and "Name says:" lines instead.
    """

    def marker(line: _Line) -> re.Match[str] | None:
        return _NUMBERED_RE.fullmatch(text, line.start, line.end)

    numbered = any(marker(line) for line in lines)
    items: list[_Comment] = []
    expected: int | None = None
    for line in lines:
        if not line.stripped or _COMMENT_CHROME_RE.fullmatch(line.stripped):
            continue
        if is_footer(line.stripped):  # only before the first comment: see _region_end
            continue
        number = marker(line) if numbered else None
        if number and expected in (None, int(number["n"])):
            expected = int(number["n"]) + 1
            items.append(_Comment())
            rest = (number["rest"] or "").strip()
            if who := commenter(rest, strict=False) if rest else None:
                items[-1].commenter, items[-1].date = who
            elif rest:
                items[-1].add(number.start("rest"), line.end)
            continue
        current = items[-1] if items else None
        waiting = current is not None and current.start is None
        who = commenter(line.stripped, strict=True)
        if who and current is not None and waiting and current.commenter is None:
            current.commenter, current.date = who  # "1." alone, the name below it
        elif who and not numbered:
            items.append(_Comment(*who))
        elif current is not None and waiting and (date := dateline(line.stripped)):
            current.date = current.date or date  # "Ann says:", then the date
        elif current is not None:
            current.add(line.start, line.end)
        elif not numbered:  # a numbered thread's preamble ("Subscribe") is chrome
            items.append(_Comment(start=line.start, end=line.end))
    spans = [(item, *trim(text, item.start, item.end)) for item in items if item.start is not None]
    return [
        Section("comment", start, end, item.commenter, item.date)
        for item, start, end in spans
        if start < end
    ]


def _footer_publisher(lines: list[_Line]) -> str | None:
    for line in lines:
        if is_footer(line.stripped) and (name := publisher(line.stripped)):
            return name
    return None


def _first_paragraph_date(text: str, body: list[Section]) -> str | None:
    """A bracketed date opening a blog post ("Today [30th Dec 2016] we ...")."""
    if not body:
        return None
    first = re.split(r"\n\s*\n", text[body[0].start : body[0].end], maxsplit=1)[0]
    match = re.search(r"\[([^\]\n]{4,40})\]", first)
    return iso_date(match[1]) if match else None
