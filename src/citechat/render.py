"""HTML and Markdown views of answers, sources and documents for the web chat.

Pure functions of the pipeline and an :class:`Answer`: the Sources cards (title,
publisher, date, article or whose comment, the page and heading path where the
document has them, the quote with the cited sentence marked), the answer bubble
with linked [n] markers and unsupported sentences flagged, the document panel,
retrieved passages, index status, and the Markdown export.  Every piece of
document text is HTML-escaped here, before it reaches the page.  app.py wires
these into Gradio.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from .pipeline import Pipeline
from .provenance import provenance
from .types import MARKER_PATTERN, Answer, Citation

#: characters of context shown around a quoted sentence in a Sources card
CONTEXT_CHARS = 100
MARKER = re.compile(MARKER_PATTERN)


# -- rendering (pure functions of the pipeline and an Answer; all text escaped) -------


def esc(text: str | None) -> str:
    """HTML-escaped text, quotes included (safe in attributes too)."""
    return html.escape(text or "", quote=True)


def _flat(text: str) -> str:
    """Escaped text on one line: a blank line inside the chat's HTML block would end
    it and hand the rest to the Markdown renderer."""
    return esc(re.sub(r"\s+", " ", text))


def _ref(turn: int, n: int) -> str:
    return f"<a class='cc-cite' href='#cc-{turn}-{n}' title='Open source {n}'>[{n}]</a>"


def source_meta(pipe: Pipeline, c: Citation) -> str:
    """ "Publisher · date · article" or "… · reader comment by Ann, 3 May 2009"."""
    return provenance(pipe.index.documents.get(c.doc_id), c).meta()


def _where(c: Citation) -> str:
    """The page and heading path of a source, as a line of its card ("" when unknown)."""
    where = c.location()
    return f"<div class='cc-meta cc-where'>{_flat(where)}</div>" if where else ""


def source_choice(c: Citation) -> str:
    """How the "Open a source" menu names a source: "[2] “Title” — p. 5 · Setup".

    >>> source_choice(Citation(2, "d", "T", "body", None, 0, 1, "x", page=5))
    '[2] “T” — p. 5'
    """
    where = c.location()
    return f"[{c.n}] {c.label()}" + (f" — {where}" if where else "")


def render_sources(pipe: Pipeline, answer: Answer | None, turn: int = 0) -> str:
    """The Sources section under an answer: one card per citation."""
    if answer is None or not answer.citations:
        return ""
    cards = []
    for c in answer.citations:
        doc = pipe.index.documents.get(c.doc_id)
        text = doc.text if doc else c.quote
        a, b = (c.start, c.end) if doc else (0, len(c.quote))
        before, after = text[max(0, a - CONTEXT_CHARS) : a], text[b : b + CONTEXT_CHARS]
        css = "cc-source comment" if c.section == "comment" else "cc-source"
        cards.append(
            f"<div class='{css}'>{_ref(turn, c.n)} <span class='cc-title'>{_flat(c.title)}</span>"
            f"<div class='cc-meta'>{_flat(source_meta(pipe, c))}</div>{_where(c)}"
            f"<div class='cc-quote'>…{_flat(before)}<mark>{_flat(c.quote)}</mark>"
            f"{_flat(after)}…</div></div>"
        )
    return (
        "<div class='cc-sources'><div class='cc-sources-h'>Sources</div>"
        + "".join(cards)
        + "</div>"
    )


_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")


def _inline(text: str, turn: int, valid: set[int]) -> str:
    """Escaped answer text whose [n] markers link to their sources."""

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return _ref(turn, n) if n in valid else m.group(0)

    # the reader's short answer leads in **bold** (Markdown, as the CLI and export show it)
    bold = _BOLD.sub(r"<strong class='cc-short'>\1</strong>", esc(text))
    return MARKER.sub(link, bold).replace("\n", "<br>")


def render_answer(pipe: Pipeline, answer: Answer, turn: int = 0) -> str:
    """The chat bubble: the answer with linked markers, unsupported sentences
    marked, then its Sources.  One HTML block, so Markdown leaves it alone."""
    valid = {c.n for c in answer.citations}
    text, pos, out = answer.text, 0, []
    for s in answer.sentences:
        at = text.find(s.text, pos)
        if at < 0:
            continue
        out.append(_inline(text[pos:at], turn, valid))
        inner = _inline(s.text, turn, valid)
        if s.supported:
            out.append(f"<span class='cc-sent'>{inner}</span>")
        else:
            why = f"The cited passages do not support this sentence (support {s.score:.2f})"
            out.append(
                f"<span class='cc-sent cc-unsupported' title='{why}'>{inner}</span>"
                f"<span class='cc-badge' title='{why}'>unsupported</span>"
            )
        pos = at + len(s.text)
    out.append(_inline(text[pos:], turn, valid))
    notice = f"<div class='cc-notice'>{_flat(answer.notice)}</div>" if answer.notice else ""
    body, sources = "".join(out), render_sources(pipe, answer, turn)
    return f"<div class='cc-answer'>{notice}<div>{body}</div>{confidence(answer)}{sources}</div>"


def confidence(answer: Answer) -> str:
    """The abstention model's verdict, shown small under the answer.

    >>> a = Answer("q", "x", (), False, confidence=0.8123)
    >>> confidence(a)
    "<div class='cc-meta cc-confidence' title='...'>answerable from the documents: 81%</div>"
    """
    if answer.confidence is None:
        return ""
    why = "the calibrated estimate that the retrieved passages hold the answer"
    pct = round(100 * answer.confidence)
    return (
        f"<div class='cc-meta cc-confidence' title='{why}'>"
        f"answerable from the documents: {pct}%</div>"
    )


def render_streaming(partial: str) -> str:
    """An LLM's reply while it is being written."""
    return (
        f"<div class='cc-answer cc-streaming'>{esc(partial)}<span class='cc-cursor'>▌</span></div>"
    )


def render_document(pipe: Pipeline, answer: Answer | None, n: int | None) -> str:
    """The full text of cited source ``n`` with its span highlighted; when the document
    has changed since the answer was written (or left the index), a notice saying so
    and the words as they were quoted, never a highlight at offsets into other text."""
    if answer is None or n is None:
        return (
            "<p class='cc-meta'>Click a citation such as [1], or choose a source above, "
            "to read the whole document here.</p>"
        )
    cit = next((c for c in answer.citations if c.n == n), None)
    if cit is None:
        return "<p class='cc-meta'>That source is not in the index any more.</p>"
    doc = pipe.index.documents.get(cit.doc_id)
    if not cit.still_in(doc):
        return stale_document(pipe, cit)
    assert doc is not None  # still_in(None) is False
    t = doc.text
    return (
        f"<h4>[{cit.n}] {esc(doc.title)}</h4>"
        f"<div class='cc-meta'>{esc(source_meta(pipe, cit))} · {esc(doc.doc_id)}, "
        f"characters {cit.start}–{cit.end}</div>{_where(cit)}"
        f"<div class='cc-doc'>{esc(t[: cit.start])}<mark id='cc-highlight'>"
        f"{esc(t[cit.start : cit.end])}</mark>{esc(t[cit.end :])}</div>"
    )


#: what the document panel says of a citation whose document is not the one it quoted
CHANGED = "This document changed after the answer was written"
GONE = "This document is no longer in the index"


def stale_document(pipe: Pipeline, cit: Citation) -> str:
    """The panel for a citation whose document changed or went: the notice, the words
    the answer quoted (from the citation itself), and the current text unmarked."""
    doc = pipe.index.documents.get(cit.doc_id)
    what = GONE if doc is None else CHANGED
    quoted = (
        f"<div class='cc-meta'>The answer quoted {esc(cit.doc_id)}, characters "
        f"{cit.start}–{cit.end}:</div><blockquote class='cc-quoted'>{esc(cit.quote)}"
        "</blockquote>"
    )
    current = (
        ""
        if doc is None
        else "<div class='cc-meta'>The document as it is now:</div>"
        f"<div class='cc-doc'>{esc(doc.text)}</div>"
    )
    return (
        f"<h4>[{cit.n}] {esc(doc.title if doc else cit.title)}</h4>"
        f"<div class='cc-stale' role='status'>{what}; the quoted words may not be in it "
        f"now.</div>{quoted}{current}"
    )


def render_passages(answer: Answer | None) -> str:
    """The retrieved passages of an answer with their fused, dense and BM25 scores."""
    if answer is None or not answer.hits:
        return ""
    rows = ["<div class='cc-sources-h'>Retrieved passages</div>"]
    for h in answer.hits:
        c = h.chunk
        scores = f"score {h.score:.4f}"
        if h.dense_score is not None:
            scores += f" · dense {h.dense_score:.3f}"
        if h.bm25_score is not None:
            scores += f" · BM25 {h.bm25_score:.2f}"
        who = f"comment by {c.commenter or 'a reader'}" if c.section == "comment" else "article"
        text = c.text if len(c.text) <= 500 else c.text[:500] + "…"
        rows.append(
            f"<div class='cc-passage'><b>#{h.rank}</b> {esc(c.title)} "
            f"<span class='cc-meta'>({esc(who)}; {scores}; {esc(c.chunk_id)})</span>"
            f"<div>{esc(text)}</div></div>"
        )
    return "".join(rows)


def index_status(pipe: Pipeline) -> str:
    s = pipe.index.stats()
    return (
        f"**Index:** {s['documents']} documents, {s['chunks']} chunks · "
        f"model `{s['embedder']}` · last built {s['built_at']}"
    )


def export_markdown(pipe: Pipeline, answers: Sequence[Answer]) -> str:
    """The conversation as Markdown: each question, its answer, its numbered sources,
    with the index generation and each cited document's content hash, so a reader can
    tell later whether a source still says what was quoted."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    generation = pipe.index.generation or "unknown"
    out = [f"# citechat conversation\n\nExported {when} from index generation `{generation}`.\n"]
    for i, a in enumerate(answers, 1):
        out.append(f"## {i}. {a.question}\n")
        if a.index_generation and a.index_generation != pipe.index.generation:
            out.append(f"_Answered from index generation `{a.index_generation}`._\n")
        if a.notice:
            out.append(f"_{a.notice}_\n")
        out.append(a.text + "\n")
        flagged = [s.text for s in a.sentences if not s.supported]
        if flagged:
            out.append("Not supported by the cited passages: " + " / ".join(flagged) + "\n")
        if a.citations:
            out.append("**Sources**\n")
            for c in a.citations:
                quote = re.sub(r"\s+", " ", c.quote).strip()
                doc = pipe.index.documents.get(c.doc_id)
                stale = "" if c.still_in(doc) else f" — {GONE if doc is None else CHANGED}"
                digest = f", sha256 `{c.content_hash}`" if c.content_hash else ""
                where = f", {c.location()}" if c.location() else ""
                out.append(
                    f"{c.n}. {c.title} — {source_meta(pipe, c)} ({c.doc_id}{where}, characters "
                    f"{c.start}–{c.end}{digest}){stale}\n   > {quote}"
                )
            out.append("")
    return "\n".join(out).rstrip() + "\n"
