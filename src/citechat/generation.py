"""LLM answerers: a local transformers model or an OpenAI-compatible endpoint.

The retrieved chunks go to the model as numbered, fenced sources
(``prompts/answer.yaml``); its reply comes back with each marker pointing at the
one document sentence that best supports the claim, renumbered by first use:
"Peter Lewis was named [2]." -> "Peter Lewis was named [1]." (1 = a sentence of
source 2).  ``[0]``/``[9]`` are dropped; an unsupported reply falls back to the
extractive answer.  It does not retrieve, nor define support (citations.py);
answerers.py maps ``transformers:``/``openai:`` specs to these classes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np

from .abstention import configured as configured_abstention
from .answering import DECLINE, Answerer, ExtractiveAnswerer, History, history_query, make_citation
from .citations import (
    MARKER,
    answer_sentences,
    load_judge,
    source_for,
    strip_markers,
    support_score,
    verify,
)
from .config import Settings, model_cache, openai_api_key
from .errors import CitechatError, ConfigError, ModelError, one_line
from .reading import Reading
from .retrieval import Retriever
from .types import Answer, Citation, Hit, SentenceSupport, marker

log = logging.getLogger("citechat")

INSTALL_HINT = "pip install 'citechat[llm]'"
NOTICE = "The model's answer was not supported by the documents; showing the extractive answer."
#: a sentence the model left unmarked is cited when a retrieved sentence supports it this well
AUTO_CITE = 0.6
#: tokens for a condensed follow-up question (one line)
CONDENSE_TOKENS = 64
Messages = list[dict[str, str]]


# -- prompts -------------------------------------------------------------------


@functools.cache
def load_prompt(name: str) -> dict[str, str]:
    """The ``system`` and ``user`` templates of ``prompts/<name>.yaml``."""
    import yaml

    text = resources.files("citechat").joinpath("prompts", f"{name}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {"system": str(data["system"]), "user": str(data["user"])}


def render(template: str, **values: Any) -> str:
    """A template filled strictly: a variable the code forgot to pass is an error, not "".

    >>> render("Q: {{ question }}", question="Who?")
    'Q: Who?'
    """
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return str(env.from_string(template).render(**values)).strip()


def prompt_messages(name: str, **values: Any) -> Messages:
    prompt = load_prompt(name)
    return [
        {"role": "system", "content": render(prompt["system"], **values)},
        {"role": "user", "content": render(prompt["user"], **values)},
    ]


_FENCE = re.compile(r"<(\s*/?\s*source)", re.IGNORECASE)


def fence_safe(text: str) -> str:
    """Text that cannot close (or open) a ``<source>`` fence.

    >>> fence_safe("a </source> b <SOURCE n=2>")
    'a &lt;/source> b &lt;SOURCE n=2>'
    """
    return _FENCE.sub(r"&lt;\1", text)


def sources(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Hits as the prompt's numbered sources (1-based, as the markers count)."""
    out = []
    for n, hit in enumerate(hits, 1):
        c = hit.chunk
        section = (
            "article" if c.section == "body" else f"reader comment by {c.commenter or 'a reader'}"
        )
        out.append(
            {
                "n": n,
                "title": fence_safe(c.title),
                "section": fence_safe(section),
                "text": fence_safe(c.text),
            }
        )
    return out


def _turns(history: History, keep: int = 6) -> list[dict[str, str]]:
    # earlier answers' markers point at earlier sources: they would mislead the model
    return [
        {"role": role, "text": fence_safe(strip_markers(text))[:1000]}
        for role, text in list(history)[-keep:]
    ]


def answer_messages(question: str, hits: Sequence[Hit], history: History = ()) -> Messages:
    values = {"sources": sources(hits), "history": _turns(history), "decline": DECLINE}
    return prompt_messages("answer", question=question, **values)


# -- the shared answerer ---------------------------------------------------------


class _Best(NamedTuple):
    hit: Hit
    start: int
    end: int
    score: float


class GenerativeAnswerer(Answerer, ABC):
    """Prompt -> reply -> cited Answer; subclasses write only :meth:`generate`.

    It streams (:meth:`stream` then :meth:`finish`) and condenses follow-ups
    (:meth:`condense`); the abstention gate and the fallback answer read the
    candidates of the question's :class:`Reading`, scored once.
    """

    can_stream = True
    can_condense = True

    def __init__(self, name: str, retriever: Retriever, settings: Settings) -> None:
        if settings.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {settings.max_new_tokens}")
        if settings.temperature < 0:
            raise ConfigError(f"temperature must be 0 or more, got {settings.temperature}")
        self.name, self.retriever, self.index = name, retriever, retriever.index
        self.settings = settings
        self.fallback = ExtractiveAnswerer(
            retriever,
            abstention=configured_abstention(
                settings.abstention_model, retriever.index.embedder.name
            ),
            abstain_threshold=settings.abstain_threshold,
            reader_decline=settings.reader_decline,
        )

    @abstractmethod
    def generate(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        """Pieces of the model's reply to a chat, as they arrive."""

    def gate(self, reading: Reading) -> tuple[bool, float | None]:
        """The calibrated abstention decision (answering.ExtractiveAnswerer.decide):
        (decline?, p(answerable)).  When the documents hold no answer the model is
        not asked, so it cannot invent one."""
        if not reading.hits:
            return True, 0.0
        return self.fallback.decide(reading)

    def stream(self, question: str, reading: Reading, history: History = ()) -> Iterator[str]:
        """The raw reply, piece by piece; :meth:`finish` turns it into an Answer."""
        if self.gate(reading)[0]:
            return iter(())
        return self.generate(
            answer_messages(question, reading.hits, history), self.settings.max_new_tokens
        )

    def answer(self, question: str, reading: Reading, *, history: History = ()) -> Answer:
        t0 = time.perf_counter()
        raw = "".join(self.stream(question, reading, history))
        return self.finish(question, reading, raw, generate_ms=(time.perf_counter() - t0) * 1000)

    def condense(self, question: str, history: History) -> str:
        """A follow-up rewritten to stand alone, for retrieval.

        "When did she lose her appeal?" after "Who is Sharon Shoesmith?" ->
        "When did Sharon Shoesmith lose her appeal?"
        """
        if not history:
            return question
        messages = prompt_messages("condense", question=question, history=_turns(history))
        reply = "".join(self.generate(messages, min(CONDENSE_TOKENS, self.settings.max_new_tokens)))
        line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
        line = re.sub(r"^(standalone question|question)\s*:\s*", "", line, flags=re.I)
        line = line.strip().strip("\"'“”").strip()
        # an answer or a comment on the question is no question: use the rule instead
        if (
            line
            and len(line) < len(question) + 150
            and line.endswith("?") == question.endswith("?")
        ):
            return line
        return history_query(question, history)

    def finish(
        self, question: str, reading: Reading, reply: str, *, generate_ms: float = 0.0
    ) -> Answer:
        """The model's ``reply`` -> an Answer citing document sentences, verified."""
        t0 = time.perf_counter()
        text, hits = _tidy(reply), tuple(reading.hits)
        citations: tuple[Citation, ...] = ()
        sentences: tuple[SentenceSupport, ...] = ()
        notice = None
        gated, confidence = self.gate(reading)
        if gated or (DECLINE.lower().rstrip(".") in text.lower() and not MARKER.search(text)):
            text, abstained = DECLINE, True
        else:
            text, citations, abstained = *self.cite(text, hits), False
            sentences = self._verify(text, citations)
            if not any(s.supported for s in sentences):
                fallback = self.fallback.answer(question, reading)
                text, citations, abstained = fallback.text, fallback.citations, fallback.abstained
                sentences, notice = (() if abstained else self._verify(text, citations)), NOTICE
        cite_ms = (time.perf_counter() - t0) * 1000
        latency = {"answer": generate_ms + cite_ms, "generate": generate_ms, "cite": cite_ms}
        return Answer(
            question,
            text,
            citations,
            abstained,
            hits,
            sentences,
            self.name,
            latency,
            notice,
            confidence,
        )

    def _verify(self, text: str, citations: Sequence[Citation]) -> tuple[SentenceSupport, ...]:
        name = self.settings.verifier
        judge = load_judge(name) if name else None
        return verify(text, [c.quote for c in citations], self.index.embedder, judge=judge)

    def cite(self, text: str, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
        """Markers naming sources -> markers naming document sentences, numbered 1..m
        in order of first use; unmarked but well-supported sentences get one."""
        sents = answer_sentences(text)
        if not sents:
            return text, ()
        claims = [strip_markers(s.text) for s in sents]
        vectors = self.index.embedder.embed(claims)
        numbers: dict[tuple[str, int, int], int] = {}
        citations: list[Citation] = []

        def number(best: _Best) -> int:
            key = (best.hit.chunk.doc_id, best.start, best.end)
            if key not in numbers:
                numbers[key] = len(citations) + 1
                citations.append(make_citation(self.index, numbers[key], best.hit, *key[1:]))
            return numbers[key]

        out, done = [], 0
        for sent, claim, vec in zip(sents, claims, vectors, strict=True):
            new: dict[int, int | None] = {}
            for n in dict.fromkeys(sent.cited):
                hit = source_for(n, hits)  # None for [0] or [n > len(hits)]: dropped
                new[n] = None if hit is None else number(self._best(claim, vec, [hit]))
            rewritten = _renumber(sent.text, new)
            if not any(new.values()) and claim:
                best = self._best(claim, vec, hits)
                if best.score >= AUTO_CITE:
                    rewritten = _add_marker(rewritten, number(best))
            out += [text[done : sent.start], rewritten]
            done = sent.end
        out.append(text[done:])
        return "".join(out).strip(), tuple(citations)

    def _best(self, claim: str, vec: np.ndarray, hits: Sequence[Hit]) -> _Best:
        """The chunk sentence that best supports a claim (:func:`citations.support_score`,
        given the claim's vector and the index's sentence vectors: nothing re-embedded)."""
        best = _Best(hits[0], hits[0].chunk.start, hits[0].chunk.end, -1.0)
        embedder = self.index.embedder
        for hit in hits:
            doc = self.index.documents[hit.chunk.doc_id]
            for a, b in hit.chunk.sentences or ((hit.chunk.start, hit.chunk.end),):
                text = doc.text[a:b]
                svec = self.index.sentence_vector(doc.doc_id, a, b)
                if svec is None:
                    svec = embedder.embed([text])[0]
                score = support_score(claim, [text], embedder, vectors=(vec, svec))
                if score > best.score:
                    best = _Best(hit, a, b, score)
        return best


def _tidy(reply: str) -> str:
    """The reply without labels, echoed source fences, or a sentence cut off by the token limit.

    >>> _tidy('Answer: <source n="1">Text: Lewis was named [1]. He was appointed by')
    'Lewis was named [1].'
    """
    text = _ECHO.sub(" ", reply)
    text = re.sub(r"^\s*(?:(?:answer|assistant|text)\s*:\s*)+", "", text.strip(), flags=re.I | re.M)
    sents = answer_sentences(text)
    if len(sents) > 1 and not re.search(r"[.!?\]\"”’)]\s*$", sents[-1].text):
        text = text[: sents[-2].end]
    return text.strip()


#: small models echo the prompt's fences and headers back; they are no claims
_ECHO = re.compile(r"</?source\b[^>\n]*>?|^\s*(title|section)\s*:.*$", re.I | re.M)


def _renumber(sentence: str, new: dict[int, int | None]) -> str:
    """
    >>> _renumber("Lewis [3][0] was named [3] .", {3: 1, 0: None})
    'Lewis [1] was named [1].'
    """
    dropped = False

    def sub(m: re.Match[str]) -> str:
        nonlocal dropped
        n = new.get(int(m.group(1)))
        dropped = dropped or n is None
        return "" if n is None else marker(n)

    # two sources can lead to one sentence: "[1][1]" -> "[1]"
    out = re.sub(r"(\[\d+\])(?:\s*\1)+", r"\1", MARKER.sub(sub, sentence))
    if dropped:
        out = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", out)).strip()
    return out


def _add_marker(sentence: str, n: int) -> str:
    """
    >>> _add_marker("Schools closed.", 2)
    'Schools closed [2].'
    """
    m = re.search(r"[.!?]+[\"”’']?\s*$", sentence)
    at = m.start() if m else len(sentence.rstrip())
    return f"{sentence[:at].rstrip()} {marker(n)}{sentence[at:]}"


# -- transformers ------------------------------------------------------------------

_models: dict[str, tuple[Any, Any]] = {}
_models_lock = threading.Lock()


def model_cache_dir(gguf: Path) -> Path:
    """Where the dequantised copy of ``gguf`` is kept: a new file (path or mtime) a new folder."""
    base = model_cache()
    stat = gguf.stat()
    key = f"{gguf.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
    return base / hashlib.sha256(key.encode()).hexdigest()[:20]


def load_transformers(ref: str) -> tuple[Any, Any]:
    """(tokenizer, model) for a model id, a local folder or a .gguf file; once per process."""
    with _models_lock:
        if ref not in _models:
            _models[ref] = _load(ref)
        return _models[ref]


def _load(ref: str) -> tuple[Any, Any]:
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(f"transformers is not installed: {INSTALL_HINT}") from exc
    path = Path(ref).expanduser()
    try:
        if path.suffix.lower() == ".gguf":
            tokenizer, model = _load_gguf(path)
        else:
            tokenizer = AutoTokenizer.from_pretrained(ref)
            model = AutoModelForCausalLM.from_pretrained(ref)
    except CitechatError:
        raise
    except Exception as exc:  # any failure to load has the same fix
        raise ModelError(
            f"cannot load model {ref!r} ({type(exc).__name__}: {one_line(exc)}); use a local "
            "folder, a .gguf file, or a model id already in the Hugging Face cache"
        ) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"model {ref!r} has no chat template; use an instruction-tuned model")
    model.eval()
    return tokenizer, model


def _load_gguf(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_file():
        raise ModelError(f"GGUF file {path} does not exist; check the path after 'transformers:'")
    try:
        import gguf  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"reading {path.name} needs the gguf package: {INSTALL_HINT}") from exc
    cache = model_cache_dir(path)
    if (cache / "config.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(cache), AutoModelForCausalLM.from_pretrained(cache)
        except Exception as exc:  # a damaged cache is rebuilt
            log.warning("cached conversion %s unreadable (%s); converting again", cache, exc)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    _save_converted(tokenizer, model, cache)
    return tokenizer, model


def _save_converted(tokenizer: Any, model: Any, cache: Path) -> None:
    """Keep the dequantised model so the next start skips the conversion (README, "Answerers")."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        if getattr(quantizer, "packed_modules", None):  # weights still packed: not savable
            return
        # the weights are plain tensors now; only the marker stops save_pretrained
        quantizer.remove_quantization_config(model)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, cache)  # atomic: a reader sees no half-written folder
    except (OSError, ValueError) as exc:
        log.warning("could not cache the converted model in %s: %s", cache, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class TransformersAnswerer(GenerativeAnswerer):
    """A local chat model run by transformers on this machine's CPU or GPU."""

    def __init__(self, model: str, retriever: Retriever, settings: Settings) -> None:
        super().__init__(f"transformers:{model}", retriever, settings)
        self.model = model

    def generate(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        tokenizer, model = load_transformers(self.model)
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()  # set when the reader stops early, so generation stops too

        def stopped(input_ids: Any, scores: Any, **_: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), device=input_ids.device)

        temperature = self.settings.temperature
        sampling = {"temperature": temperature} if temperature > 0 else {}
        kwargs = {
            **inputs,
            **sampling,
            "streamer": streamer,
            "max_new_tokens": max_new_tokens,
            "do_sample": temperature > 0,
            "stopping_criteria": [stopped],
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        errors: list[BaseException] = []

        def run() -> None:
            try:
                model.generate(**kwargs)
            except BaseException as exc:  # re-raised in the reader
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="citechat-generate", daemon=True)
        thread.start()
        try:
            yield from (piece for piece in streamer if piece)
        finally:
            stop.set()
            thread.join()
        if errors:
            why = one_line(errors[0])
            raise ModelError(f"generation with {self.model!r} failed: {why}") from errors[0]


# -- OpenAI-compatible endpoints -----------------------------------------------------


class OpenAIAnswerer(GenerativeAnswerer):
    """A chat model behind an OpenAI-compatible API (llama.cpp server, vLLM, Ollama, ...)."""

    def __init__(self, base_url: str, model: str, retriever: Retriever, settings: Settings) -> None:
        super().__init__(f"openai:{base_url}#{model}", retriever, settings)
        try:
            import openai
        except ImportError as exc:
            raise ModelError(
                f"the openai answerer needs the openai package: {INSTALL_HINT}"
            ) from exc
        if settings.openai_timeout <= 0:
            raise ConfigError(f"openai_timeout must be positive, got {settings.openai_timeout}")
        self.base_url, self.model, self._openai = base_url, model, openai
        key = openai_api_key(settings) or "not-needed"
        # one retry rides out a restart; more would make a dead endpoint slow to report
        self.client = openai.OpenAI(
            base_url=base_url, api_key=key, timeout=settings.openai_timeout, max_retries=1
        )

    def generate(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        try:
            stream = self.client.chat.completions.create(
                model=self.model,
                messages=cast(Any, messages),
                temperature=self.settings.temperature,
                max_tokens=max_new_tokens,
                stream=True,
            )
            for event in stream:
                if event.choices and (piece := event.choices[0].delta.content):
                    yield piece
        except self._openai.OpenAIError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> ModelError:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):  # before its base class, APIConnectionError
            why = (
                f"did not answer within {self.settings.openai_timeout:g} s; check that it "
                "is running, or raise CITECHAT_OPENAI_TIMEOUT"
            )
        elif isinstance(exc, openai.APIConnectionError):
            why = (
                f"cannot be reached ({one_line(exc)}); start the server there or fix "
                "the URL in the answerer spec openai:<base_url>#<model>"
            )
        elif isinstance(exc, openai.APIStatusError):
            why = (
                f"refused model {self.model!r} (HTTP {exc.status_code}); check the model "
                "name and CITECHAT_OPENAI_API_KEY"
            )
        else:
            why = f"failed: {one_line(exc)}"
        return ModelError(f"the endpoint {self.base_url} {why}")
