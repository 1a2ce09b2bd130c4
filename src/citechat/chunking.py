"""Document -> Chunks: sentence-aware spans within a token budget, with overlap.

Sentences come from blingfire (a trained sentence-boundary model with character
offsets), run line block by line block so a headline without a full stop never
merges with the next paragraph.  A chunk packs whole sentences of ONE section
(body or a single comment) until the token budget is reached; the next chunk
repeats the last ``overlap`` sentences.  Every span indexes ``Document.text``
as read, so ``doc.text[c.start:c.end] == c.text``.

It does not embed, and it does not decide what is boilerplate (corpus.py does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace

from .types import Chunk, Document, Section

_BLOCK = re.compile(r"[^\n]+")
_WORD = re.compile(r"\S+")

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A fast word-piece estimate (English news runs ~1.3 pieces a word).

    >>> estimate_tokens("Sharon Shoesmith lost her appeal.")
    7
    """
    return (len(_WORD.findall(text)) * 4 + 2) // 3


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Absolute (start, end) sentence spans of ``text[start:end]``, trimmed.

    >>> t = "Headline\\nHe left. She stayed."
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['Headline', 'He left.', 'She stayed.']
    """
    import blingfire  # heavy-ish native import, only when chunking

    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for block in _BLOCK.finditer(text, start, end):
        line = block.group()
        if not line.strip():
            continue
        base = block.start()
        _, offsets = blingfire.text_to_sentences_and_offsets(line)
        for a, b in offsets:
            a, b = _trim(line, a, b)
            if b > a:
                spans.extend(_hard_split(text, base + a, base + b))
    return spans


def section_sentences(doc: Document, section: Section) -> list[tuple[int, int]]:
    """The sentence spans of a section: prose split by :func:`split_sentences`, each of
    the document's code blocks one sentence and each table row one, so they are
    quoted whole (only a block over ~120 words is cut, at words).

    >>> from citechat.types import Document, Section
    >>> t = "Run it:\\nx = 1. y = 2.\\nz = 3.\\nDone. Bye."
    >>> d = Document("d", t, "T", (Section("body", 0, len(t)),), blocks=((8, 28, "code"),))
    >>> [t[a:b] for a, b in section_sentences(d, d.sections[0])]
    ['Run it:', 'x = 1. y = 2.\\nz = 3.', 'Done.', 'Bye.']
    """
    text = doc.text
    spans: list[tuple[int, int]] = []
    start = section.start
    for a, b, kind in sorted(doc.blocks):
        if b <= start or a >= section.end:
            continue
        a, b = max(a, start), min(b, section.end)
        spans.extend(split_sentences(text, start, a))
        if kind == "table":
            for row in _BLOCK.finditer(text, a, b):
                ra, rb = _trim(text, row.start(), row.end())
                if rb > ra:
                    spans.extend(_hard_split(text, ra, rb))
        else:
            ra, rb = _trim(text, a, b)
            if rb > ra:
                spans.extend(_hard_split(text, ra, rb))
        start = b
    spans.extend(split_sentences(text, start, section.end))
    return spans


def _trim(s: str, a: int, b: int) -> tuple[int, int]:
    while a < b and s[a].isspace():
        a += 1
    while b > a and s[b - 1].isspace():
        b -= 1
    return a, b


def _hard_split(text: str, a: int, b: int, max_words: int = 120) -> Iterator[tuple[int, int]]:
    """Cut a run-on "sentence" (tables, lists without stops) at word boundaries,
    so one chunk never exceeds the embedder's window by much."""
    words = list(_WORD.finditer(text, a, b))
    if len(words) <= max_words:
        yield a, b
        return
    for i in range(0, len(words), max_words):
        group = words[i : i + max_words]
        yield group[0].start(), group[-1].end()


def chunk_section(
    doc: Document,
    section: Section,
    *,
    max_tokens: int = 200,
    overlap: int = 1,
    count_tokens: TokenCounter = estimate_tokens,
    first_index: int = 0,
) -> list[Chunk]:
    """Chunks of one section; ids continue from ``first_index``."""
    sentences = section_sentences(doc, section)
    header = Chunk("", doc.doc_id, 0, 0, "", section.kind, doc.title, section.commenter)
    header = replace(header, heading=section.heading)
    budget = max(8, max_tokens - count_tokens(header.embedding_text()))
    groups: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    used = 0
    fresh = 0  # sentences in `current` not carried over from the previous chunk
    for span in sentences:
        cost = count_tokens(doc.text[span[0] : span[1]])
        if current and fresh and used + cost > budget:
            groups.append(current)
            current = current[-overlap:] if overlap else []
            # carried sentences never push a chunk over budget on their own
            while current and sum(count_tokens(doc.text[a:b]) for a, b in current) + cost > budget:
                current = current[1:]
            used = sum(count_tokens(doc.text[a:b]) for a, b in current)
            fresh = 0
        current.append(span)
        used += cost
        fresh += 1
    if current and fresh:
        groups.append(current)
    chunks = []
    for i, group in enumerate(groups, start=first_index):
        start, end = group[0][0], group[-1][1]
        chunks.append(
            Chunk(
                chunk_id=f"{doc.doc_id}#{i}",
                doc_id=doc.doc_id,
                start=start,
                end=end,
                text=doc.text[start:end],
                section=section.kind,
                title=doc.title,
                commenter=section.commenter,
                sentences=tuple(group),
                page=section.page,
                page_label=section.page_label,
                heading=section.heading,
            )
        )
    return chunks


def chunk_document(
    doc: Document,
    *,
    max_tokens: int = 200,
    overlap: int = 1,
    count_tokens: TokenCounter = estimate_tokens,
) -> list[Chunk]:
    """All chunks of a document, section by section; a chunk never spans two sections.

    >>> from citechat.types import Document, Section
    >>> d = Document("a.txt", "T\\nOne. Two.", "T", (Section("body", 2, 11),))
    >>> [c.text for c in chunk_document(d)]
    ['One. Two.']
    """
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    if overlap < 0:
        raise ValueError(f"overlap must be 0 or more, got {overlap}")
    chunks: list[Chunk] = []
    for section in doc.sections:
        chunks.extend(
            chunk_section(
                doc,
                section,
                max_tokens=max_tokens,
                overlap=overlap,
                count_tokens=count_tokens,
                first_index=len(chunks),
            )
        )
    return chunks
