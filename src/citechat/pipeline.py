"""The library's front door: corpus + index + retriever + answerer, loaded once.

>>> pipe = Pipeline.load(Settings())                          # doctest: +SKIP
>>> pipe.ask("Who did Ed Balls appoint?").citations[0].doc_id  # doctest: +SKIP
'002_a97dc062ef764fe9.txt'

``sync_index`` (index/sync.py) builds the index when missing and updates it when
the corpus has changed; ``Pipeline.load`` calls it.  ``Pipeline.ask`` validates the
question, retrieves with the conversation in mind, scores the retrieved sentences
once (a :class:`Reading`, shared by the evidence rerank, the abstention gate and
the answerer), answers, verifies every sentence against its citations and times
each stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from .answerers import make_answerer
from .answering import Answerer, History, history_query
from .citations import verify
from .config import Settings
from .embedding import load_embedder
from .errors import (
    CitechatError,
    ModelError,
    UsageError,
)
from .index import Index
from .index.sync import SyncResult, sync_index
from .reading import Reading, SentenceScorer, rerank_by_evidence
from .rereading import ReaderChoice, load_reader
from .retrieval import Mode, Retrieval, Retriever
from .timeframe import as_of, as_of_lead, time_frame, within
from .types import Answer
from .uploads import AddReport, check_upload, copy_new

log = logging.getLogger("citechat")


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
        #: the sentence scorer of the current retriever, for :meth:`read`
        self._scorer: SentenceScorer | None = None
        #: the ``reader`` setting resolved, on first use (:meth:`reader`)
        self._reader: ReaderChoice | None = None
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
        """Re-sync the index with the corpus (after an upload) and swap it in; the index
        served now is checked as it is, and kept when the corpus has not changed."""
        served = self.index
        result = sync_index(
            self.settings, embedder=served.embedder, progress=progress, current=served
        )
        if result.index is not served:
            with self._lock:
                self._set_index(result.index)
        return result

    def answerer(self, spec: str | None = None) -> Answerer:
        spec = spec or self.default_answerer
        with self._lock:
            if spec not in self.answerers:
                self.answerers[spec] = make_answerer(spec, self.retriever, self.settings)
            return self.answerers[spec]

    def reader(self) -> ReaderChoice:
        """The reader stage of the ``reader`` setting, loaded once; an unusable
        artifact gives no stage and a notice (logged once), never an error."""
        with self._lock:
            if self._reader is None:
                self._reader = load_reader(self.settings.reader)
                if self._reader.stage is not None:
                    # a dense reader's sentence side, once per index (stored between runs)
                    self._reader.stage.prepare(self.index)
            return self._reader

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
        fallback: bool = False,
    ) -> Answer:
        """Answer ``question`` with cited, verified sentences.

        With ``fallback=True`` a :class:`ModelError` from an LLM answerer
        (endpoint down, timeout, model missing) gives the extractive answer
        instead, with a notice that says why (:meth:`extractive_fallback`): the
        web chat keeps answering.  Off by default, so ``eval`` and scripts never
        score or print a stand-in without asking for one.
        """
        if fallback:
            try:
                return self.ask(question, k=k, history=history, answerer=answerer)
            except ModelError as exc:
                if (answerer or self.default_answerer) == "extractive":
                    raise
                return self.extractive_fallback(question, exc, k=k, history=history)
        *_, last = self.ask_stream(question, k=k, history=history, answerer=answerer)
        assert isinstance(last, Answer)  # ask_stream always ends with the Answer
        return last

    def extractive_fallback(
        self, question: str, error: ModelError, *, k: int | None = None, history: History = ()
    ) -> Answer:
        """The extractive answer to ``question``, with a notice that the model failed.

        For callers that caught ``error`` from an LLM answerer themselves (a
        stream that broke off): the answer says what went wrong and what is
        shown instead, rather than ending the conversation.
        """
        log.warning("%s; showing the extractive answer instead", error)
        answer = self.ask(question, k=k, history=history, answerer="extractive")
        notice = f"The language model could not answer ({error}); showing the extractive answer."
        return replace(answer, notice=" ".join(n for n in (notice, answer.notice) if n))

    # -- added for the web chat: streaming answers and uploads ----------------------

    def _snapshot(self, spec: str | None) -> tuple[Index, Retriever, Answerer]:
        """The index, retriever and answerer of one moment, taken together: a
        refresh in between would otherwise pair an old retrieval with a new index."""
        spec = spec or self.default_answerer
        with self._lock:
            index, retriever = self._state
            if spec not in self.answerers:
                self.answerers[spec] = make_answerer(spec, retriever, self.settings)
            return index, retriever, self.answerers[spec]

    def read(self, query: str, k: int, *, retriever: Retriever | None = None) -> Reading:
        """The top ``k`` chunks and their candidate answer sentences, scored once:
        the retriever's top ``evidence_depth``, reordered by the best answer
        sentence each holds (:func:`rerank_by_evidence`).  A configured
        cross-encoder reads whole passages and has the last word: no evidence
        rerank after it.  ``retriever``: the one of an ask's snapshot (default:
        the current one)."""
        retriever = retriever or self.retriever
        with self._lock:
            scorer = self._scorer
            if scorer is None or scorer.retriever is not retriever:
                scorer = self._scorer = SentenceScorer(retriever)
        depth = self.settings.evidence_depth
        if depth <= 1 or retriever.reranker_name:
            reading = scorer.read(query, retriever.search(query, k))
        else:
            reading = rerank_by_evidence(
                scorer.read(query, retriever.search(query, max(k, depth))), k
            )
        reading = scorer.read_parts(reading)
        stage = self.reader().stage
        return reading if stage is None else stage.reread(reading, retriever.index)

    def retrieve(self, query: str, k: int, *, retriever: Retriever | None = None) -> Retrieval:
        """The retrieval of :meth:`read`: the top ``k`` chunks, evidence-reranked."""
        return self.read(query, k, retriever=retriever).retrieval

    def ask_stream(
        self,
        question: str,
        *,
        k: int | None = None,
        history: History = (),
        answerer: str | None = None,
    ) -> Iterator[str | Answer]:
        """:meth:`ask`, yielding an LLM's reply piece by piece (``str``) as it is
        written, then the verified :class:`Answer` (always the last item).  An
        answerer that cannot stream (``can_stream`` False: the extractive one)
        yields only the Answer.  Uploads swapping the index meanwhile do not
        affect it."""
        t0 = time.perf_counter()
        question, notice = self.check_question(question)
        index, retriever, chosen = self._snapshot(answerer)
        query = history_query(question, history)
        if history and chosen.can_condense:
            query = chosen.condense(question, history)
        top_k = k or self.settings.top_k
        # "by February 2009", "the latest on …": passages read by their dates, from twice
        # as many, so that leaving out the ones of other dates still leaves k
        frame = time_frame(question)
        reading = self.read(query, top_k if frame is None else 2 * top_k, retriever=retriever)
        left_out = 0
        if frame is not None:
            reading, left_out = within(reading, frame, index.documents, top_k)
        retrieval = reading.retrieval
        t1 = time.perf_counter()
        if chosen.can_stream:
            pieces: list[str] = []
            for piece in chosen.stream(question, reading, history):
                pieces.append(piece)
                yield piece
            generate_ms = (time.perf_counter() - t1) * 1000
            result = chosen.finish(question, reading, "".join(pieces), generate_ms=generate_ms)
        else:
            result = chosen.answer(question, reading, history=history)
        t2 = time.perf_counter()
        sentences = (
            result.sentences
            or verify(result.text, [c.quote for c in result.citations], index.embedder)
            if not result.abstained
            else ()
        )
        text, dated = result.text, None
        if frame is not None and not result.abstained:
            newest = as_of(result.citations, index.documents)
            if newest is not None:
                lead, support = as_of_lead(*newest)
                text, sentences = f"{lead} {text}", (support, *sentences)
            else:
                dated = "None of the cited sources gives its date."
        if frame is not None and left_out:
            dated = " ".join(
                n for n in (dated, f"Left out {left_out} passages {frame.describe()}.") if n
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
        notes = (
            " ".join(n for n in (notice, self.reader().notice, result.notice, dated) if n) or None
        )
        yield replace(
            result,
            text=text,
            question=question,
            sentences=sentences,
            latency_ms=latency,
            notice=notes,
            index_generation=index.generation or None,
        )

    def add_documents(
        self,
        files: Iterable[tuple[str, Path]],
        *,
        progress: Callable[[int, int], Callable[[int], None]] | None = None,
    ) -> AddReport:
        """Copy uploaded ``(name, path)`` files into the corpus folder and index them.

        Each file is checked first (type, size, readable text); a bad one is
        rejected with the reason and the others still go in.  Names are
        sanitised (:func:`upload_name`) and never replace an existing file: a
        taken name gets a ``-2``, ``-3`` ... suffix.  Nothing is written
        outside the corpus folder.
        """
        folder = self.settings.corpus
        if not folder.is_dir():
            raise UsageError(
                f"the corpus {folder} is a file, not a folder; uploads need a corpus folder"
            )
        limit = int(self.settings.max_upload_mb * 1024 * 1024)
        checked: list[tuple[str, Path, str]] = []
        rejected: list[tuple[str, str]] = []
        for name, path in files:
            try:
                checked.append((name, path, check_upload(name, path, limit)))
            except UsageError as exc:
                rejected.append((name, str(exc)))
        if not checked:
            return AddReport((), tuple(rejected), None)
        with _ADD_LOCK:  # one upload at a time, so index swaps land in order
            added: list[tuple[str, str]] = []
            for name, path, safe in checked:
                added.append((name, copy_new(path, folder, safe)))
            try:
                result = self.refresh(progress=progress)
            except CitechatError:
                for _, doc_id in added:  # leave the corpus as it was
                    (folder / doc_id).unlink(missing_ok=True)
                raise
        return AddReport(tuple(added), tuple(rejected), result)


#: serialises uploads in this process (the index's file lock serialises processes)
_ADD_LOCK = threading.Lock()
