"""HTML -> the page's main text, its headings, code blocks, tables and comments.

A general extractor (trafilatura) tuned for news pages dropped whole plain paragraphs
of manual pages and the words before a paragraph's first inline element.  This one
keeps every block of the main content and drops only the chrome around it:

* the main content is ``<main>``, else ``[role=main]``, else the one ``<article>``,
  else ``<body>``;
* chrome is removed before reading: ``<nav>``, ``<header>`` and ``<footer>`` outside
  an ``<article>``, ``<aside>``, forms, scripts and styles, ARIA navigation, banner
  and search roles, and elements whose class or id names navigation ("navheader",
  "breadcrumb", "menu", "sidebar", "pager", "toc", "skip-link", ...);
* each block element (paragraph, list item, heading, ...) is one line; ``<pre>`` keeps
  its lines as they are and is one code block; each table row is one line of
  " | "-joined cells and the table one block;
* ``<h1>``–``<h6>`` are returned as :class:`~citechat.headings.Heading` spans;
* a reader-comment region (``id``/``class`` "comments") is read apart, one string per
  comment.

It returns strings and offsets (:class:`HtmlText`); building a Document is
:mod:`citechat.corpus`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .headings import Heading

_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "body", "br", "caption", "dd"),
        *("details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure"),
        *("footer", "form", "header", "hr", "li", "main", "nav", "ol", "p", "section"),
        *("summary", "ul", "h1", "h2", "h3", "h4", "h5", "h6"),
    }
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_DROP_TAGS = frozenset(
    {
        *("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"),
        *("embed", "form", "button", "select", "input", "textarea", "aside", "head", "nav"),
    }
)
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "menu", "menubar"})
#: class or id tokens that name page chrome
_CHROME = re.compile(
    r"^(?:nav|navs|navbar|navigation|navheader|navfooter|breadcrumbs?|crumbs|menu|menubar"
    r"|sidebar|side-bar|toc|pager|pagination|skip|skip-?link|skiplinks?|site-header"
    r"|site-footer|masthead|footer|cookie\w*|share|sharing|social|related|relatedlinks"
    r"|prevnext|prev-next|topbar|top-bar|toolbar|headerlink|anchorjs-link)$",
    re.IGNORECASE,
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_COMMENTS = re.compile(r"^(?:comments?|commentlist|comment-list|responses)$", re.IGNORECASE)
_COMMENT = re.compile(r"^(?:comment|comment-body|commentbody)$", re.IGNORECASE)


@dataclass(frozen=True)
class HtmlText:
    """``text`` of the main content; its headings; its (start, end, kind) blocks,
    kind "code" or "table"; the reader comments; the first ``<h1>`` (or "")."""

    text: str
    headings: tuple[Heading, ...]
    blocks: tuple[tuple[int, int, str], ...]
    comments: tuple[str, ...]
    h1: str


def extract(html: str) -> HtmlText:
    """The main text of a page.

    >>> page = ("<html><body><nav>Home | Next</nav><main><h1>APT</h1><p>Use <b>apt</b> "
    ...         "now.</p><h2>Setup</h2><pre>apt update\\napt upgrade</pre></main>"
    ...         "<footer>© Me</footer></body></html>")
    >>> got = extract(page)
    >>> print(got.text)
    APT
    Use apt now.
    Setup
    apt update
    apt upgrade
    >>> [(h.level, h.title) for h in got.headings], [got.text[a:b] for a, b, _ in got.blocks]
    ([(1, 'APT'), (2, 'Setup')], ['apt update\\napt upgrade'])
    """
    root = _parse(html)
    comments = _take_comments(root)
    main = _main(root)
    _drop_chrome(main, root)
    writer = _Writer()
    writer.block(main)
    return HtmlText(
        text=writer.text(),
        headings=tuple(writer.headings),
        blocks=tuple(writer.blocks),
        comments=tuple(comments),
        h1=next((h.title for h in writer.headings if h.level == 1), ""),
    )


def visible_words(html: str) -> int:
    """Words a reader sees on the page: all text outside scripts, styles and ``<head>``
    (chrome included), the yardstick for how much of a page :func:`extract` keeps.

    >>> visible_words("<html><head><title>T</title></head><body><p>a b</p>c</body></html>")
    3
    """
    root = _parse(html)
    for el in root.iter("script", "style", "noscript", "template", "head"):
        el.drop_tree()
    return len(" ".join(root.itertext()).split())


def _parse(html: str) -> Any:
    import lxml.html  # lxml comes with trafilatura

    # lxml refuses a str that declares its encoding ("<?xml ... encoding=...?>")
    return lxml.html.document_fromstring(_XML_DECLARATION.sub("", html, count=1))


def _classes(el: Any) -> list[str]:
    return [*(el.get("class") or "").split(), *(el.get("id") or "").split()]


def _is_chrome(el: Any) -> bool:
    if (el.get("role") or "").lower() in _CHROME_ROLES or el.get("aria-hidden") == "true":
        return True
    return any(_CHROME.match(token) for token in _classes(el))


def _main(root: Any) -> Any:
    for found in (root.xpath("//main"), root.xpath('//*[@role="main"]')):
        if found:
            return found[0]
    articles = root.xpath("//article")
    if len(articles) == 1:
        return articles[0]
    body = root.find("body")
    return body if body is not None else root


def _drop_chrome(main: Any, root: Any) -> None:
    """Remove chrome around and inside ``main``: nav, chrome-named parts, and header
    and footer outside an ``<article>`` (an article's own ``<header>`` holds its
    headline)."""
    doomed = []
    for el in root.iter():
        if not isinstance(el.tag, str):  # HTML comments, processing instructions
            doomed.append(el)
        elif el is main or _within(main, el):  # main and the elements holding it
            continue
        else:
            # a page's header and footer are chrome; an <article>'s own are not
            around = el.tag in ("header", "footer") and not el.xpath("ancestor::article")
            if around or el.tag in _DROP_TAGS or _is_chrome(el):
                doomed.append(el)
    for el in doomed:
        el.drop_tree()


def _within(el: Any, ancestor: Any) -> bool:
    parent = el.getparent()
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.getparent()
    return False


def _take_comments(root: Any) -> list[str]:
    regions = [
        el
        for el in root.iter()
        if isinstance(el.tag, str) and any(_COMMENTS.match(t) for t in _classes(el))
    ]
    regions = [r for r in regions if not any(_within(r, other) for other in regions)]
    out = []
    for region in regions:
        items = [
            el
            for el in region.iter()
            if isinstance(el.tag, str) and any(_COMMENT.match(t) for t in _classes(el))
        ]
        items = [i for i in items if not any(_within(i, other) for other in items)] or [region]
        for item in items:
            for el in list(item.iter("script", "style", "form")):
                el.drop_tree()
            text = " ".join(item.text_content().split())
            if text:
                out.append(text)
        region.drop_tree()
    return out


class _Writer:
    """Writes blocks as lines, recording heading and block offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.line: list[str] = []
        self.headings: list[Heading] = []
        self.blocks: list[tuple[int, int, str]] = []

    def text(self) -> str:
        self.flush()
        return "".join(self.parts).rstrip("\n")

    def emit(self, text: str) -> tuple[int, int]:
        """Write ``text`` as whole lines; its (start, end) span."""
        self.flush()
        start = self.length
        self.parts.append(text + "\n")
        self.length += len(text) + 1
        return start, start + len(text)

    def flush(self) -> None:
        line = " ".join("".join(self.line).split())
        self.line = []
        if line:
            self.parts.append(line + "\n")
            self.length += len(line) + 1

    def block(self, el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _HEADINGS:
            title = " ".join(el.text_content().split())
            if title:
                a, b = self.emit(title)
                self.headings.append(Heading(a, b, _HEADINGS[tag], title))
            return
        if tag == "pre":
            code = el.text_content().strip("\n")
            if code.strip():
                a, b = self.emit(code.rstrip())
                self.blocks.append((a, b, "code"))
            return
        if tag == "table":
            self._table(el)
            return
        if tag in _BLOCKS:
            self.flush()
        if el.text:
            self.line.append(el.text)
        for child in el:
            self.block(child)
            if child.tail:
                self.line.append(child.tail)
        if tag in _BLOCKS:
            self.flush()

    def _table(self, table: Any) -> None:
        rows = []
        for tr in table.iter("tr"):
            cells = [" ".join(c.text_content().split()) for c in tr if c.tag in ("td", "th")]
            cells = [c for c in cells if c]
            if cells:
                rows.append(" | ".join(cells))
        if rows:
            a, b = self.emit("\n".join(rows))
            self.blocks.append((a, b, "table"))
