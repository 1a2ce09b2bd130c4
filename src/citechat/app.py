"""The web chat: ``create_app(pipeline) -> gradio.Blocks``; ``serve()`` launches it.

Each answer streams into the chat (an LLM's tokens as they come, then the
verified answer replaces them) with clickable [n] markers, sentences the
verifier could not support marked "unsupported", and a Sources section: title,
publisher, date, article or whose comment, the quoted passage with the cited
sentence highlighted.  Clicking a citation opens the whole document in the side
panel with the span highlighted and scrolled into view.  Uploads go into the
corpus folder and are indexed incrementally; the conversation exports as
Markdown; ``/ask`` answers as structured data for ``gradio_client``.

Every piece of document text (titles and file names included) is HTML-escaped
before Gradio's own sanitiser sees it (render.py builds the HTML).  Conversation
state is per browser session (``gr.State``); the pipeline is shared and swaps its
index atomically.
``create_app`` never launches, so tests build the app and serve it themselves
with :func:`launch_options`.  It does not retrieve or answer (pipeline.py).
"""

from __future__ import annotations

import atexit
import hashlib
import ipaddress
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import Settings, web_login
from .corpus import SUFFIXES
from .errors import CitechatError, IndexError_, ModelError
from .pipeline import Pipeline
from .render import (
    esc,
    export_markdown,
    index_status,
    render_answer,
    render_document,
    render_passages,
    render_streaming,
    source_choice,
)
from .types import Answer

log = logging.getLogger("citechat")

EXAMPLES = [
    "Who did Ed Balls appoint to run Haringey's children's services?",
    "Why did Sharon Shoesmith say Ed Balls was reckless?",
    "How many times was Baby P seen by professionals before he died?",
    "What did Nick Bromley say about joint working?",
]

CSS = """
.cc-answer { line-height: 1.5; }
.cc-notice { font-style: italic; color: #666; margin-bottom: 6px; }
a.cc-cite { font-weight: 600; text-decoration: none; color: #1f5fbf; cursor: pointer; }
a.cc-cite:hover { text-decoration: underline; }
.cc-unsupported { background: #fde2e1; text-decoration: underline dotted #c0392b; }
.cc-badge { font-size: 0.72em; color: #fff; background: #c0392b; border-radius: 4px;
  padding: 0 5px; margin-left: 3px; vertical-align: middle; }
.cc-sources { margin-top: 10px; border-top: 1px solid #ddd; padding-top: 6px; }
.cc-sources-h { font-weight: 600; font-size: 0.9em; margin-bottom: 2px; }
.cc-source { border-left: 3px solid #8a8; padding: 3px 10px; margin: 6px 0; cursor: pointer; }
.cc-source.comment { border-left-color: #a8a; }
.cc-title { font-weight: 600; }
/* Gradio's bundled semibold face holds only ~55 glyphs: mixing it with a fallback
   font mid-word looks broken, so bold text here uses the system font throughout */
.cc-title, .cc-sources-h, a.cc-cite, .cc-badge, #cc-document h4, .cc-passage b {
  font-family: ui-sans-serif, system-ui, sans-serif; }
.cc-source:hover { background: rgba(127, 127, 127, 0.08); }
.cc-meta { font-size: 0.85em; color: #666; }
.cc-quote { margin: 3px 0; font-size: 0.93em; }
.cc-quote mark, .cc-doc mark, .cc-passage mark { background: #ffe58a; color: inherit; }
.cc-doc { white-space: pre-wrap; max-height: 560px; overflow-y: auto; font-size: 0.92em;
  border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
.cc-doc mark#cc-highlight { outline: 2px solid #e0a800; }
.cc-stale { background: #fff4d6; border-left: 3px solid #e0a800; padding: 4px 8px;
  margin: 4px 0; font-weight: 600; }
.cc-quoted { margin: 4px 0 8px 0; padding-left: 8px; border-left: 3px solid #ccc; }
.cc-passage { font-size: 0.88em; margin: 6px 0; border-left: 3px solid #ccc; padding-left: 8px; }
.cc-streaming { white-space: pre-wrap; }
.cc-cursor { opacity: 0.6; }
"""

#: installed once per page: a click on [n] or a source card opens that document
CLICK_JS = """
() => {
  if (window.__ccClicks) return;
  window.__ccClicks = true;
  document.addEventListener("click", (ev) => {
    const hit = ev.target.closest ? ev.target.closest("a.cc-cite, .cc-source") : null;
    if (!hit) return;
    const link = hit.matches("a.cc-cite") ? hit : hit.querySelector("a.cc-cite");
    const m = link ? (link.getAttribute("href") || "").match(/^#cc-(\\d+)-(\\d+)$/) : null;
    if (!m) return;
    ev.preventDefault();
    ev.stopPropagation();
    window.__ccRef = m[1] + ":" + m[2];
    const button = document.querySelector("#cc-open");
    if (button) button.click();
  }, true);
}
"""

#: after the document panel updates: bring the highlighted span into view
SCROLL_JS = """
() => {
  setTimeout(() => {
    const mark = document.querySelector("#cc-document mark#cc-highlight");
    if (mark) mark.scrollIntoView({block: "center", behavior: "instant"});
  }, 60);
}
"""

_EXPORT_DIR: Path | None = None


def _export_file(text: str) -> str:
    """Write an export where Gradio may serve it (the temp dir): one file per content."""
    global _EXPORT_DIR
    if _EXPORT_DIR is None:
        _EXPORT_DIR = Path(tempfile.mkdtemp(prefix="citechat-export-"))
        atexit.register(shutil.rmtree, _EXPORT_DIR, True)
    folder = _EXPORT_DIR / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(exist_ok=True)
    path = folder / "citechat-conversation.md"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _parse_ref(ref: str | None) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+):(\d+)", (ref or "").strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def answerer_choices(pipe: Pipeline) -> list[str]:
    return list(dict.fromkeys([pipe.default_answerer, "extractive"]))


# -- the app ------------------------------------------------------------------------


def create_app(pipe: Pipeline) -> Any:
    import gradio as gr

    upload_mb = pipe.settings.max_upload_mb
    kinds = ", ".join(sorted(SUFFIXES))

    def respond(
        message: str,
        chat: list[dict[str, Any]],
        turns: list[list[str]],
        answers: list[Answer],
        k: float,
        answerer: str,
        show_passages: bool,
    ) -> Iterator[tuple[Any, ...]]:
        same = gr.update()

        busy, ready = gr.update(interactive=False), gr.update(interactive=True)

        def frame(bubble: str, box: Any = same, send: Any = busy) -> tuple[Any, ...]:
            """The chat with ``bubble`` as the answer being written; the rest unchanged
            (the question box too: the user may be typing the next question), and the
            Ask button disabled until the answer is complete."""
            shown = [*chat, {"role": "assistant", "content": bubble}]
            return shown, turns, answers, same, same, same, box, same, send

        if not (message or "").strip():
            yield chat, turns, answers, same, same, same, same, same, same
            return
        chat = [*chat, {"role": "user", "content": esc(message)}]
        yield frame("<div class='cc-answer cc-meta'>Searching the documents…</div>", box="")
        answer: Answer | None = None
        partial, history = "", [(r, t) for r, t in turns]
        try:
            try:
                for item in pipe.ask_stream(message, k=int(k), history=history, answerer=answerer):
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        partial += item
                        yield frame(render_streaming(partial))
            except ModelError as exc:  # the model failed: answer extractively, say why
                if answerer == "extractive":
                    raise
                answer = pipe.extractive_fallback(message, exc, k=int(k), history=history)
        except CitechatError as exc:
            yield frame(f"<div class='cc-answer'>⚠ {esc(str(exc))}</div>", send=ready)
            return
        assert answer is not None  # ask_stream always ends with the Answer
        turn = len(answers)
        answers = [*answers, answer]
        chat.append({"role": "assistant", "content": render_answer(pipe, answer, turn)})
        turns = [*turns, ["user", answer.question], ["assistant", answer.text]]
        choices = [(source_choice(c), f"{turn}:{c.n}") for c in answer.citations]
        yield (
            chat,
            turns,
            answers,
            render_passages(answer) if show_passages else "",
            gr.update(choices=choices, value=None),
            render_document(pipe, None, None),
            same,
            gr.update(value=_export_file(export_markdown(pipe, answers)), interactive=True),
            ready,
        )

    def open_ref(ref: str | None, answers: list[Answer]) -> tuple[str, Any]:
        parsed = _parse_ref(ref)
        if parsed is None or not 0 <= parsed[0] < len(answers):
            return render_document(pipe, None, None), gr.update()
        turn, n = parsed
        latest = turn == len(answers) - 1
        return render_document(pipe, answers[turn], n), gr.update(value=ref if latest else None)

    def show_retrieved(show: bool, answers: list[Answer]) -> Any:
        return gr.update(
            value=render_passages(answers[-1] if answers else None) if show else "", visible=show
        )

    def clear() -> tuple[Any, ...]:
        return (
            [],
            [],
            [],
            "",
            gr.update(choices=[], value=None),
            render_document(pipe, None, None),
            gr.update(value=None, interactive=False),
        )

    def add_files(files: list[str] | None, progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        if not files:
            return gr.update(), index_status(pipe), None
        progress(0, desc="Checking files")
        done = [0]

        def on_total(total: int, ndocs: int) -> Any:
            def step(n: int) -> None:
                done[0] += n
                progress((min(done[0], total), max(total, 1)), desc="Embedding new text")

            return step

        try:
            report = pipe.add_documents([(Path(f).name, Path(f)) for f in files], progress=on_total)
        except CitechatError as exc:
            return f"✗ Nothing was added: {esc(str(exc))}", index_status(pipe), None
        finally:
            for f in files:  # the upload's copy in Gradio's cache is no longer needed
                Path(f).unlink(missing_ok=True)
        lines = []
        for orig, doc_id in report.added:
            doc = pipe.index.documents.get(doc_id)
            renamed = f" (renamed from {esc(orig)})" if orig != doc_id else ""
            title = esc(doc.title if doc else doc_id)
            lines.append(f"✓ Added “{title}” as `{esc(doc_id)}`{renamed}")
        lines += [f"✗ **{esc(orig)}** not added: {esc(why)}" for orig, why in report.rejected]
        lines.append(index_status(pipe))
        return "\n\n".join(lines), index_status(pipe), None

    def api_ask(question: str, k: float = 5, history_json: str = "[]") -> dict[str, Any]:
        """Answer with citations as structured data (for gradio_client)."""
        try:
            turns = [(str(r), str(t)) for r, t in json.loads(history_json or "[]")]
            return pipe.ask(question, k=int(k), history=turns, fallback=True).to_json()
        except CitechatError as exc:
            return {"error": str(exc)}
        except (ValueError, TypeError) as exc:
            return {"error": f"history_json must be a JSON list of [role, text] pairs ({exc})"}

    with gr.Blocks(title="citechat") as demo:
        gr.Markdown("## citechat — answers with their sources")
        turns = gr.State([])
        answers = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    label="Chat",
                    height=620,
                    elem_id="cc-chat",
                    buttons=[],  # copy would copy the HTML; Export gives clean Markdown
                    latex_delimiters=[],
                    placeholder="Ask a question; every claim in the answer cites its source.",
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="Ask a question about the documents…",
                        show_label=False,
                        scale=5,
                        elem_id="cc-question",
                        max_length=pipe.settings.max_question_chars,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="cc-send")
                gr.Examples(EXAMPLES, inputs=box, label="Example questions")
                with gr.Row():
                    export = gr.DownloadButton(
                        "Export conversation (.md)",
                        value=None,
                        interactive=False,
                        elem_id="cc-export",
                        size="sm",
                    )
                    new_chat = gr.Button("New conversation", size="sm", elem_id="cc-clear")
                with gr.Accordion("Settings", open=False, elem_id="cc-settings"):
                    choice = gr.Dropdown(
                        answerer_choices(pipe),
                        value=pipe.default_answerer,
                        label="Answerer",
                        elem_id="cc-answerer",
                    )
                    k = gr.Slider(
                        1, 20, value=pipe.settings.top_k, step=1, label="Passages retrieved (top-k)"
                    )
                    show = gr.Checkbox(
                        False, label="Show retrieved passages with scores", elem_id="cc-show"
                    )
                    status = gr.Markdown(index_status(pipe), elem_id="cc-index-status")
                with gr.Accordion("Add documents", open=False, elem_id="cc-add"):
                    files = gr.File(
                        file_count="multiple",
                        file_types=sorted(SUFFIXES),
                        label=f"Upload {kinds} (up to {upload_mb:g} MB each)",
                        elem_id="cc-upload",
                    )
                    added = gr.Markdown("", elem_id="cc-upload-status")
            with gr.Column(scale=2):
                pick = gr.Dropdown(
                    choices=[], label="Open a source", elem_id="cc-pick", interactive=True
                )
                document = gr.HTML(render_document(pipe, None, None), elem_id="cc-document")
                passages = gr.HTML("", visible=False, elem_id="cc-passages")
        ref = gr.Textbox(visible="hidden", elem_id="cc-ref")
        open_button = gr.Button("open", visible="hidden", elem_id="cc-open")

        inputs = [box, chat, turns, answers, k, choice, show]
        outputs = [chat, turns, answers, passages, pick, document, box, export, send]
        # one event for both triggers: while an answer is being written, another click
        # or Enter is ignored (trigger_mode "once"), and the button shows it
        gr.on(
            [send.click, box.submit],
            respond,
            inputs,
            outputs,
            api_visibility="private",
            trigger_mode="once",
        )
        open_button.click(
            open_ref,
            [ref, answers],
            [document, pick],
            js="(ref, answers) => [window.__ccRef || '', answers]",
            api_visibility="private",
        ).then(None, js=SCROLL_JS)
        pick.input(open_ref, [pick, answers], [document, pick], api_visibility="private").then(
            None, js=SCROLL_JS
        )
        show.change(show_retrieved, [show, answers], passages, api_visibility="private")
        cleared = [chat, turns, answers, passages, pick, document, export]
        new_chat.click(clear, None, cleared, api_visibility="private")
        chat.clear(clear, None, cleared, api_visibility="private")
        files.upload(add_files, files, [added, status, files], api_visibility="private")
        demo.load(None, js=CLICK_JS)

        hidden_q = gr.Textbox(visible=False)
        hidden_k = gr.Number(value=pipe.settings.top_k, visible=False)
        hidden_h = gr.Textbox(value="[]", visible=False)
        hidden_out = gr.JSON(visible=False)
        hidden_q.submit(api_ask, [hidden_q, hidden_k, hidden_h], hidden_out, api_name="ask")
    return demo


# -- serving -------------------------------------------------------------------------


def launch_options(settings: Settings) -> dict[str, Any]:
    """What ``launch()`` needs besides the address: the page's CSS, the upload
    limit, no error details for visitors, no traffic monitoring endpoint."""
    return {
        "css": CSS,
        "max_file_size": int(settings.max_upload_mb * 1024 * 1024),
        "show_error": False,
        "enable_monitoring": False,
    }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_from_env() -> tuple[str, str] | None:
    """CITECHAT_AUTH as the login ``launch()`` asks for (config.web_login reads it)."""
    return web_login()


def serve(settings: Settings, *, answerer: str | None = None, share: bool = False) -> None:
    auth = auth_from_env()
    pipe, check_later = load_for_serving(settings, answerer)
    if not _is_loopback(settings.host):
        log.warning(
            "serving on %s: anyone who can reach this address can use the chat%s",
            settings.host,
            "" if auth else "; set CITECHAT_AUTH=user:password to require a login",
        )
    if share:
        log.warning("--share: Gradio makes the chat reachable from the internet through a link")
    demo = create_app(pipe)
    demo.queue(default_concurrency_limit=8)
    # the page first, then the embedder (seconds to import and load): the chat is up
    # while the model loads, and the first question does not wait for the load
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=share,
        auth=auth,
        prevent_thread_lock=True,
        **launch_options(settings),
    )
    warm_up(pipe)
    if check_later:
        sync_after_start(pipe)
    demo.block_thread()


def load_for_serving(settings: Settings, answerer: str | None) -> tuple[Pipeline, bool]:
    """The pipeline over the index's current generation as it is, so that the page is
    up in seconds at any size (the corpus is read and compared after start-up:
    :func:`sync_after_start`), and True; where there is no usable index (none yet,
    damaged, another format), the pipeline after a build or rebuild, and False."""
    try:
        return Pipeline.load(settings, answerer=answerer, sync=False), True
    except IndexError_:  # built, rebuilt, or refused (another embedder) by the sync
        return Pipeline.load(settings, answerer=answerer), False


def sync_after_start(pipe: Pipeline) -> None:
    """Bring the served index in line with the corpus while the page is up (a million
    chunks' corpus takes tens of seconds to compare); questions are answered from the
    last complete index until an updated one is swapped in.  A failure is logged in
    one line and the served index kept."""
    try:
        result = pipe.refresh()
    except CitechatError as exc:
        log.warning("the index was not brought up to date with the corpus: %s", exc)
        return
    if result.report is not None:
        log.info("index %s after start-up: %s", result.action, result.report.summary())


def warm_up(pipe: Pipeline) -> None:
    """Load the embedder by embedding one text, then the reader model; a model that
    fails to load is logged in one line here and reported again (an error for the
    embedder, a notice beside the heuristic answer for the reader) to whoever asks."""
    try:
        pipe.index.embedder.embed(["warm up"])
    except CitechatError as exc:
        log.warning("%s", exc)
    pipe.reader()  # logs its own one-line warning when the artifact is unusable
