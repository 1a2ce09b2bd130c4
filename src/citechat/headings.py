"""Heading paths, and body sections cut at every heading.

A document's own headings (HTML ``<h1>``–``<h6>``, Markdown ``#`` lines) name the part
of it a passage sits in.  :func:`split_at_headings` cuts body sections at each heading
so that no chunk straddles one, and gives each piece its path from the top heading
down ("APT › Configuring apt-get"), which citations show and the embedding header
includes.  Heading lines themselves lie between sections: they are named in the path,
not quoted.  :func:`markdown_headings` and :func:`markdown_code_blocks` find the
Markdown ones; :mod:`citechat.htmltext` finds HTML's.

It works on strings and offsets only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .types import Section

#: the separator of a heading path
SEPARATOR = " › "
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_NUMBERED = re.compile(
    r"^(?:(?P<chapter>(?:Chapter|Appendix|Part)\s+[\dA-Z]+\.?)|(?P<number>\d+(?:\.\d+)+)\.?)"
    r"[ \t]+\S[^\n]*$",
    re.MULTILINE,
)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Heading:
    """A heading at ``text[start:end]`` (its whole line), its level (1–6) and title."""

    start: int
    end: int
    level: int
    title: str


def heading_paths(headings: Sequence[Heading]) -> list[str]:
    """The path of each heading: the titles of the open headings above it and its own.

    >>> hs = [Heading(0, 1, 1, "APT"), Heading(2, 3, 2, "Setup"), Heading(4, 5, 2, "Use")]
    >>> heading_paths(hs)
    ['APT', 'APT › Setup', 'APT › Use']
    """
    open_: list[Heading] = []
    paths = []
    for h in headings:
        while open_ and open_[-1].level >= h.level:
            open_.pop()
        open_.append(h)
        paths.append(SEPARATOR.join(x.title for x in open_))
    return paths


def split_at_headings(
    text: str, sections: Sequence[Section], headings: Sequence[Heading]
) -> tuple[Section, ...]:
    """Body sections cut at each heading, each piece with its heading path (pieces
    before the first heading keep none); comment sections are left as they are.

    >>> t = "# APT\\nIntro.\\n## Setup\\nEdit it."
    >>> doc = split_at_headings(t, [Section("body", 0, len(t))], markdown_headings(t))
    >>> [(t[s.start : s.end], s.heading) for s in doc]
    [('Intro.', 'APT'), ('Edit it.', 'APT › Setup')]
    """
    ordered = sorted(headings, key=lambda h: h.start)
    paths = heading_paths(ordered)
    out: list[Section] = []
    for section in sections:
        if section.kind != "body":
            out.append(section)
            continue
        start, path = section.start, _path_at(ordered, paths, section.start)
        for h, h_path in zip(ordered, paths, strict=True):
            if h.end <= section.start or h.start >= section.end:
                continue
            out.extend(_piece(text, section, start, h.start, path))
            start, path = max(start, h.end), h_path
        out.extend(_piece(text, section, start, section.end, path))
    return tuple(out)


def markdown_headings(text: str) -> list[Heading]:
    """ATX headings (``# Title`` … ``###### Title``) outside fenced code blocks.

    >>> [(h.level, h.title) for h in markdown_headings("# A\\n```\\n# not\\n```\\n## B ##\\n")]
    [(1, 'A'), (2, 'B')]
    """
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)]
    return [
        Heading(m.start(), m.end(), len(m.group(1)), m.group(2).strip())
        for m in _ATX.finditer(text)
        if not any(a <= m.start() < b for a, b in fences)
    ]


def numbered_headings(text: str, start: int = 0, end: int | None = None) -> list[Heading]:
    """Numbered heading lines, as technical documents and standards number them:
    "Chapter 3. The Root Filesystem" (level 1), "3.14. /root : Home directory" (level
    2), "3.14.1. Purpose" (level 3).  A line numbered "1." alone is a list item, not a
    heading; a heading line is short and does not end a sentence.

    >>> t = "Chapter 3. Root\\n3.1. Purpose\\nIt must boot.\\n1. Not a heading\\n3.1.1. Notes"
    >>> [(h.level, h.title) for h in numbered_headings(t)]
    [(1, 'Chapter 3. Root'), (2, '3.1. Purpose'), (3, '3.1.1. Notes')]
    """
    out = []
    for m in _NUMBERED.finditer(text, start, len(text) if end is None else end):
        line = m.group(0).strip()
        if len(line) > 90 or line.endswith((".", ",", ";")):
            continue
        level = 1 if m.group("chapter") else m.group("number").count(".") + 1
        out.append(Heading(m.start(), m.end(), level, line))
    return out


def markdown_code_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of each fenced code block, fences included.

    >>> t = "Run:\\n```sh\\nls -l\\n```\\n"
    >>> [t[a:b] for a, b in markdown_code_blocks(t)]
    ['```sh\\nls -l\\n```']
    """
    return [(m.start(), m.end()) for m in _FENCE.finditer(text)]


def _path_at(headings: Sequence[Heading], paths: Sequence[str], at: int) -> str | None:
    path = None
    for h, h_path in zip(headings, paths, strict=True):
        if h.end <= at:
            path = h_path
    return path


def _piece(text: str, section: Section, start: int, end: int, path: str | None) -> list[Section]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end <= start:
        return []
    return [replace(section, start=start, end=end, heading=path)]
