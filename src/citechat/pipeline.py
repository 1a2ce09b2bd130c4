"""The library's front door: corpus + index + retriever + answerer, loaded once.

>>> pipe = Pipeline.load(Settings())                          # doctest: +SKIP
>>> pipe.ask("Who did Ed Balls appoint?").citations[0].doc_id  # doctest: +SKIP
'002_a97dc062ef764fe9.txt'

``sync_index`` builds the index when missing, updates it when the corpus has
changed (only changed documents are re-embedded) and saves it atomically under
the writer lock.  ``Pipeline.ask`` validates the question, retrieves with the
conversation in mind, answers, verifies every sentence against its citations
and times each stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .answering import Answerer, ExtractiveAnswerer, History, history_query
from .citations import verify
from .config import Settings
from .corpus import content_hash, load_corpus
from .embedding import Embedder, load_embedder
from .errors import IndexError_, IndexMismatchError, UsageError
from .index import Index, UpdateReport, write_lock
from .retrieval import Mode, Retriever
from .types import Answer, Document

log = logging.getLogger("citechat")


@dataclass(frozen=True)
class SyncResult:
    index: Index
    report: UpdateReport | None
    action: str  # "loaded" | "built" | "updated" | "rebuilt"
    skipped: tuple[tuple[str, str], ...] = ()


def sync_index(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
) -> SyncResult:
    """Bring the index at ``settings.index`` in line with ``settings.corpus``.

    ``progress(total)`` may return a callback that is told how many texts each
    embedding batch covered (the CLI hands in a tqdm bar).
    """
    embedder = embedder or load_embedder(settings.embedder)
    skipped: list[tuple[str, str]] = []

    def on_skip(path: Path | str, reason: str) -> None:
        skipped.append((str(path), reason))
        log.warning("skipped %s: %s", path, reason)

    docs = load_corpus(settings.corpus, on_skip=on_skip)
    with write_lock(settings.index):
        old: Index | None = None
        action = "built"
        if not rebuild:
            try:
                old = Index.load(settings.index, embedder, settings)
            except IndexMismatchError:
                raise
            except IndexError_ as exc:
                if (settings.index / "CURRENT").exists():
                    log.warning("%s; rebuilding it from %s", exc, settings.corpus)
                    action = "rebuilt"
        else:
            action = "rebuilt"
        if old is not None and old.is_current(docs):
            return SyncResult(old, None, "loaded", tuple(skipped))
        base = old or Index.build([], embedder, settings)
        callback = progress(_texts_to_embed(base, docs), len(docs)) if progress else None
        index, report = base.updated(docs, progress=callback)
        index.save(settings.index)
        return SyncResult(index, report, "updated" if old else action, tuple(skipped))


def _texts_to_embed(index: Index, docs: list[Document]) -> int:
    """A rough count for the progress bar: chunks+sentences scale with text size."""
    have = {d.doc_id: d.content_hash for d in index.documents.values()}
    todo = [d for d in docs if have.get(d.doc_id) != (d.content_hash or content_hash(d.text))]
    return sum(max(1, len(d.text) // 120) for d in todo)


def make_answerer(spec: str, retriever: Retriever, settings: Settings) -> Answerer:
    """``extractive`` or ``transformers:<model>`` or ``openai:<base_url>#<model>``."""
    if spec == "extractive":
        return ExtractiveAnswerer(retriever)
    from .generation import make_generative_answerer

    return make_generative_answerer(spec, retriever, settings)


class Pipeline:
    """Shared, read-mostly: one per process, safe to call from many threads."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        answerer_spec: str | None = None,
        mode: Mode = "hybrid",
    ) -> None:
        self.settings = settings
        self.mode = mode
        self._lock = threading.Lock()
        self._set_index(index)
        self.answerers: dict[str, Answerer] = {}
        self.default_answerer = answerer_spec or settings.answerer

    def _set_index(self, index: Index) -> None:
        retriever = Retriever(index, mode=self.mode, reranker=self.settings.reranker)
        # one assignment swaps both: an in-flight ask keeps the pair it started with
        self._state = (index, retriever)
        self.answerers = {}

    @property
    def index(self) -> Index:
        return self._state[0]

    @property
    def retriever(self) -> Retriever:
        return self._state[1]

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        answerer: str | None = None,
        mode: Mode = "hybrid",
        sync: bool = True,
    ) -> Pipeline:
        embedder = load_embedder(settings.embedder)
        if sync:
            index = sync_index(settings, embedder=embedder).index
        else:
            index = Index.load(settings.index, embedder, settings)
        return cls(settings, index, answerer, mode)

    def refresh(
        self, *, progress: Callable[[int, int], Callable[[int], None]] | None = None
    ) -> SyncResult:
        """Re-sync the index with the corpus (after an upload) and swap it in."""
        result = sync_index(self.settings, embedder=self.index.embedder, progress=progress)
        with self._lock:
            self._set_index(result.index)
        return result

    def answerer(self, spec: str | None = None) -> Answerer:
        spec = spec or self.default_answerer
        with self._lock:
            if spec not in self.answerers:
                self.answerers[spec] = make_answerer(spec, self.retriever, self.settings)
            return self.answerers[spec]

    def check_question(self, question: str) -> tuple[str, str | None]:
        """The question to use and a notice, or UsageError for an empty one."""
        cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in question)
        cleaned = cleaned.strip()
        if not cleaned:
            raise UsageError("the question is empty; type a question about the documents")
        limit = self.settings.max_question_chars
        if len(cleaned) > limit:
            return cleaned[:limit], f"The question was cut to its first {limit} characters."
        return cleaned, None

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        history: History = (),
        answerer: str | None = None,
    ) -> Answer:
        t0 = time.perf_counter()
        question, notice = self.check_question(question)
        index, retriever = self._state
        chosen = self.answerer(answerer)
        query = history_query(question, history)
        condense = getattr(chosen, "condense", None)
        if history and condense is not None:  # an LLM rewrites the follow-up itself
            query = condense(question, history)
        retrieval = retriever.search(query, k or self.settings.top_k)
        t1 = time.perf_counter()
        result = chosen.answer(question, retrieval, history=history)
        t2 = time.perf_counter()
        sentences = (
            result.sentences
            or verify(result.text, [c.quote for c in result.citations], index.embedder)
            if not result.abstained
            else ()
        )
        t3 = time.perf_counter()
        latency = {
            **{f"retrieve_{k}": v for k, v in retrieval.timings.items()},
            **result.latency_ms,
            "retrieve": (t1 - t0) * 1000,
            "answer": (t2 - t1) * 1000,
            "verify": (t3 - t2) * 1000,
            "total": (t3 - t0) * 1000,
        }
        notes = " ".join(n for n in (notice, result.notice) if n) or None
        return replace(
            result, question=question, sentences=sentences, latency_ms=latency, notice=notes
        )
