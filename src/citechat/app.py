"""The web chat: ``create_app(pipeline) -> gradio.Blocks``; ``serve()`` launches it.

The page shows streamed answers with [n] markers, a Sources panel (title,
publisher, date, article or whose comment, the quoted passage with the cited
sentence highlighted), and a document panel that opens the full text of a
cited source with the span highlighted.  Every piece of document text is
HTML-escaped before it reaches the page.  Conversation state is per browser
session (``gr.State``); the pipeline (models, index) is shared read-only.

``create_app`` never launches, so tests build the app and serve it themselves.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from .config import Settings
from .errors import CitechatError
from .pipeline import Pipeline
from .types import Answer, Citation

log = logging.getLogger("citechat")

EXAMPLES = [
    "Who did Ed Balls appoint to run Haringey's children's services?",
    "Why did Sharon Shoesmith say Ed Balls was reckless?",
    "How many times was Baby P seen by professionals before he died?",
    "What did Nick Bromley say about joint working?",
]

CSS = """
.cc-source { border-left: 3px solid #8a8; padding: 4px 10px; margin: 8px 0; }
.cc-source.comment { border-left-color: #a8a; }
.cc-meta { font-size: 0.85em; color: #666; }
.cc-quote { margin: 4px 0; white-space: pre-wrap; }
.cc-quote mark, .cc-doc mark { background: #ffe58a; color: inherit; }
.cc-doc { white-space: pre-wrap; max-height: 520px; overflow-y: auto; font-size: 0.92em; }
.cc-flag { color: #b35c00; }
"""

#: characters of context shown around a quoted sentence in the Sources panel
CONTEXT_CHARS = 160


def _esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def source_meta(pipe: Pipeline, c: Citation) -> str:
    doc = pipe.index.documents.get(c.doc_id)
    parts = [p for p in (doc.source if doc else None, doc.date if doc else None) if p]
    kind = (
        f"reader comment by {c.commenter}"
        if c.section == "comment" and c.commenter
        else ("reader comment" if c.section == "comment" else "article")
    )
    return " · ".join([*parts, kind])


def render_sources(pipe: Pipeline, answer: Answer | None) -> str:
    """HTML for the Sources panel; all document text escaped."""
    if answer is None:
        return "<p class='cc-meta'>Sources of the latest answer appear here.</p>"
    if not answer.citations:
        return "<p class='cc-meta'>No source supports an answer to this question.</p>"
    out = []
    for c in answer.citations:
        doc = pipe.index.documents.get(c.doc_id)
        text = doc.text if doc else c.quote
        a, b = (c.start, c.end) if doc else (0, len(c.quote))
        before = text[max(0, a - CONTEXT_CHARS) : a]
        after = text[b : b + CONTEXT_CHARS]
        css = "cc-source comment" if c.section == "comment" else "cc-source"
        out.append(
            f"<div class='{css}' id='cc-source-{c.n}'>"
            f"<div><b>[{c.n}]</b> {_esc(c.title)}</div>"
            f"<div class='cc-meta'>{_esc(source_meta(pipe, c))} · {_esc(c.doc_id)} "
            f"chars {c.start}–{c.end}</div>"
            f"<div class='cc-quote'>…{_esc(before)}<mark>{_esc(c.quote)}</mark>{_esc(after)}…"
            "</div></div>"
        )
    return "\n".join(out)


def render_document(pipe: Pipeline, answer: Answer | None, n: int | None) -> str:
    """The full text of cited source ``n`` with its span highlighted."""
    if answer is None or n is None:
        return "<p class='cc-meta'>Choose a source to read the whole document.</p>"
    cit = next((c for c in answer.citations if c.n == n), None)
    doc = pipe.index.documents.get(cit.doc_id) if cit else None
    if cit is None or doc is None:
        return "<p class='cc-meta'>That source is not in the index any more.</p>"
    t = doc.text
    return (
        f"<h4>{_esc(doc.title)}</h4><div class='cc-meta'>{_esc(source_meta(pipe, cit))}</div>"
        f"<div class='cc-doc'>{_esc(t[: cit.start])}<mark id='cc-highlight'>"
        f"{_esc(t[cit.start : cit.end])}</mark>{_esc(t[cit.end :])}</div>"
    )


def render_answer(answer: Answer) -> str:
    """Markdown for the chat bubble; unsupported sentences are flagged."""
    text = answer.text
    flagged = [s for s in answer.sentences if not s.supported]
    if flagged:
        text += "\n\n⚠️ Not supported by the cited passages: " + " / ".join(
            f"“{s.text}”" for s in flagged
        )
    if answer.notice:
        text = f"_{answer.notice}_\n\n{text}"
    return text


def _stream_words(text: str) -> Iterator[str]:
    words = text.split(" ")
    for i in range(0, len(words), 4):
        yield " ".join(words[: i + 4])


def index_status(pipe: Pipeline) -> str:
    s = pipe.index.stats()
    return (
        f"**Index:** {s['documents']} documents, {s['chunks']} chunks · "
        f"embedder `{s['embedder']}` · built {s['built_at']}"
    )


def create_app(pipe: Pipeline) -> Any:
    import gradio as gr

    def respond(
        message: str, chat: list[dict[str, Any]], turns: list[list[str]], k: float
    ) -> Iterator[tuple[Any, ...]]:
        chat = [*chat, {"role": "user", "content": message}]
        try:
            answer = pipe.ask(message, k=int(k), history=[(r, t) for r, t in turns])
        except CitechatError as exc:
            chat.append({"role": "assistant", "content": f"⚠️ {exc}"})
            yield chat, turns, None, render_sources(pipe, None), gr.update(), ""
            return
        bubble = render_answer(answer)
        for partial in _stream_words(bubble):
            yield (
                [*chat, {"role": "assistant", "content": partial}],
                turns,
                None,
                gr.update(),
                gr.update(),
                "",
            )
        chat.append({"role": "assistant", "content": bubble})
        turns = [*turns, ["user", answer.question], ["assistant", answer.text]]
        choices = [(f"[{c.n}] {c.label()}", c.n) for c in answer.citations]
        yield (
            chat,
            turns,
            answer,
            render_sources(pipe, answer),
            gr.update(choices=choices, value=choices[0][1] if choices else None),
            "",
        )

    def open_source(answer: Answer | None, n: int | None) -> str:
        return render_document(pipe, answer, n)

    def api_ask(question: str, k: float = 5, history_json: str = "[]") -> dict[str, Any]:
        """Answer with citations as structured data (for gradio_client)."""
        try:
            turns = [(str(r), str(t)) for r, t in json.loads(history_json or "[]")]
            return pipe.ask(question, k=int(k), history=turns).to_json()
        except CitechatError as exc:
            return {"error": str(exc)}
        except (ValueError, TypeError) as exc:
            return {"error": f"history_json must be a JSON list of [role, text] pairs ({exc})"}

    with gr.Blocks(title="citechat") as demo:
        gr.Markdown("## citechat — answers with their sources")
        turns = gr.State([])
        last = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Chat", height=480, elem_id="cc-chat")
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="Ask a question about the documents…",
                        show_label=False,
                        scale=5,
                        elem_id="cc-question",
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="cc-send")
                gr.Examples(EXAMPLES, inputs=box)
                with gr.Accordion("Settings", open=False):
                    k = gr.Slider(
                        1, 20, value=pipe.settings.top_k, step=1, label="Passages (top-k)"
                    )
                    gr.Markdown(index_status(pipe), elem_id="cc-index-status")
            with gr.Column(scale=2):
                sources = gr.HTML(render_sources(pipe, None), label="Sources", elem_id="cc-sources")
                pick = gr.Dropdown(
                    choices=[], label="Open a source", elem_id="cc-pick", interactive=True
                )
                document = gr.HTML(render_document(pipe, None, None), elem_id="cc-document")
        outputs = [chat, turns, last, sources, pick, box]
        send.click(respond, [box, chat, turns, k], outputs, api_visibility="private")
        box.submit(respond, [box, chat, turns, k], outputs, api_visibility="private")
        pick.change(open_source, [last, pick], document, api_visibility="private")
        hidden_q = gr.Textbox(visible=False)
        hidden_k = gr.Number(value=pipe.settings.top_k, visible=False)
        hidden_h = gr.Textbox(value="[]", visible=False)
        hidden_out = gr.JSON(visible=False)
        hidden_q.submit(api_ask, [hidden_q, hidden_k, hidden_h], hidden_out, api_name="ask")
    return demo


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_from_env() -> tuple[str, str] | None:
    raw = os.environ.get("CITECHAT_AUTH")
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise CitechatError("CITECHAT_AUTH must look like user:password")
    return user, password


def serve(settings: Settings, *, answerer: str | None = None, share: bool = False) -> None:
    pipe = Pipeline.load(settings, answerer=answerer)
    if not _is_loopback(settings.host):
        log.warning(
            "serving on %s: anyone who can reach this address can use the chat; "
            "set CITECHAT_AUTH=user:password to require a login",
            settings.host,
        )
    demo = create_app(pipe)
    demo.queue(default_concurrency_limit=8)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=share,
        auth=auth_from_env(),
        css=CSS,
        show_error=False,
    )
