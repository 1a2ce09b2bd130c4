"""Evaluation over JSONL question sets: per-question results, metrics, comparisons.

Input lines: ``{"id", "question"}`` plus optional gold ``answers``, ``gold_docs``
(or ``gold_ids``, as in the SQuAD/PubMedQA conversions), ``evidence``
(``[{"doc", "quote"}]``), ``gold_page`` (the 1-based PDF page of the evidence),
``answerable`` and ``type``.  Output lines follow the
public results schema::

    {"id","question","answer","abstained","citations":[{"n","doc_id","title","section",
     "commenter","start","end","quote"}],"retrieved":[{"rank","doc_id","chunk_id","start",
     "end","score"}],"latency_ms":{"retrieve","answer","total"}}

plus added fields (``sentences``, ``answerer``, ``config``, ``latency_detail_ms``, a
citation's ``content_hash``);
names never change.  Models load once, also when ``compare=True`` runs BM25, dense
and hybrid side by side.  Every metric is computed here from the result lines, none
taken on trust; report.py's ``DEFINITIONS`` (in each report.md) says how.  It does
not draw or write reports (report.py does).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .answer_metrics import (
    DEPTH,
    exact_match,
    first_gold_rank,
    gold_contained,
    ndcg,
    parts_contained,
    token_f1,
)
from .citations import strip_markers
from .config import Settings
from .disagreement_eval import disagreement_summary
from .errors import UsageError
from .stats import percentiles

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .retrieval import Mode

KS = (1, 3, 5, 10)
STAGES = ("retrieve", "answer", "verify", "total")
#: (name, retrieval mode, keep the configured reranker) of the ``--compare`` runs
COMPARED: tuple[tuple[str, Mode, bool], ...] = (
    ("bm25", "bm25", False),
    ("dense", "dense", False),
    ("hybrid", "hybrid", False),
)


def read_questions(
    path: Path, limit: int | None = None, split: str | None = None
) -> list[dict[str, Any]]:
    """The question rows of ``path``; with ``split``, only the rows whose ``split``
    field names it (a set's tuning and report halves), then the first ``limit``."""
    if not path.is_file():
        raise UsageError(f"question file not found: {path}; pass a JSONL file of questions")
    out = []
    splits: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{path}:{lineno} is not valid JSON ({exc})") from exc
            if not isinstance(row, dict) or "question" not in row:
                raise UsageError(f'{path}:{lineno} has no "question" field')
            row.setdefault("id", str(lineno))
            splits.add(str(row.get("split")))
            if split is not None and row.get("split") != split:
                continue
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
    if split is not None and not out:
        named = sorted(s for s in splits if s != "None")
        have = f"its splits are {', '.join(named)}" if named else "its rows name no split"
        raise UsageError(f"no questions of split {split!r} in {path}: {have}")
    return out


def gold_docs(row: dict[str, Any]) -> list[str]:
    return list(row.get("gold_docs") or row.get("gold_ids") or [])


def has_gold(row: dict[str, Any]) -> bool:
    return is_answerable(row) is not None or bool(row.get("evidence"))


def is_answerable(row: dict[str, Any]) -> bool | None:
    """True/False when the row says; None when it carries no gold at all."""
    if "answerable" in row:
        return bool(row["answerable"])
    if row.get("is_impossible") is not None:
        return not row["is_impossible"]
    if "answers" in row or "gold_docs" in row or "gold_ids" in row:
        return bool(row.get("answers") or gold_docs(row))
    return None


def doc_ranking(retrieved: Sequence[dict[str, Any]]) -> list[str]:
    """Documents in the order their first chunk was retrieved.

    >>> doc_ranking([{"doc_id": "a"}, {"doc_id": "b"}, {"doc_id": "a"}])
    ['a', 'b']
    """
    return list(dict.fromkeys(h["doc_id"] for h in retrieved))


Span = tuple[str, int, int]  # (doc_id, start, end)


def evidence_spans(
    evidence: Sequence[dict[str, Any]], doc_texts: dict[str, str]
) -> tuple[list[Span], int]:
    """(located spans, number of quotes not found verbatim in their document)."""
    spans: list[Span] = []
    missing = 0
    for ev in evidence:
        quote = ev.get("quote") or ""
        start = doc_texts.get(ev.get("doc", ""), "").find(quote) if quote else -1
        if start < 0:
            missing += 1
            continue
        spans.append((ev["doc"], start, start + len(quote)))
    return spans, missing


def overlaps(item: dict[str, Any], span: Span) -> bool:
    """Does a retrieved chunk or citation ``[start, end)`` overlap ``span``?

    >>> overlaps({"doc_id": "d", "start": 0, "end": 10}, ("d", 9, 20))
    True
    >>> overlaps({"doc_id": "d", "start": 0, "end": 10}, ("d", 10, 20))
    False
    """
    doc, start, end = span
    return bool(item["doc_id"] == doc and item["start"] < end and start < item["end"])


def citation_on_evidence(
    citation: dict[str, Any], evidence: Sequence[dict[str, Any]], doc_texts: dict[str, str]
) -> bool:
    """True when a citation's span overlaps an evidence quote of the same document."""
    return any(overlaps(citation, s) for s in evidence_spans(evidence, doc_texts)[0])


def quoted_verbatim(sentence: dict[str, Any], quotes: dict[int, str]) -> bool:
    """Is the sentence (markers, comment attribution and quotation marks aside) text
    one of its cited quotes holds verbatim?  Checked here, whatever the answerer
    claims: an extractive sentence passes because it *is* its quote.

    >>> s = {"text": "A reader comment by Lou says: “It is bad.” [2]", "citations": [2]}
    >>> quoted_verbatim(s, {2: "It is bad."}), quoted_verbatim(s, {1: "It is bad."})
    (True, False)
    """
    text = _MEANT.sub("", sentence["text"])
    claim = _ATTRIBUTION.sub(r"\1", strip_markers(text)).strip().strip("“”\"' ")
    claim = " ".join(claim.split())
    for n in sentence.get("citations", ()):
        quote = " ".join(strip_markers(quotes.get(n, "")).split())
        # a fragment of a few words ("bad.") is not a claim the quote makes
        if claim and (claim == quote or (len(claim.split()) >= 3 and claim in quote)):
            return True
    return False


def sentence_supported(sentence: dict[str, Any], quotes: dict[int, str]) -> bool:
    """ALCE's test for one answer sentence: quoted verbatim, or the verifier says supported."""
    return quoted_verbatim(sentence, quotes) or bool(sentence.get("supported"))


def unchecked_text(answer: str, sentences: Sequence[dict[str, Any]]) -> bool:
    """Does the answer say anything no sentence record covers (so nothing checked it)?

    >>> unchecked_text("A [1]. B [2].", [{"text": "A [1]."}]), unchecked_text("A [1].", [])
    (True, True)
    """
    for s in sentences:
        answer = answer.replace(s["text"], " ", 1)
    return bool(strip_markers(answer).strip())


#: what an answer says a quote's relative dates mean, after its marker
_MEANT = re.compile(r"\s*\((?:“[^”]+”: [^;)]+(?:; )?)+\)\s*$")
_ATTRIBUTION = re.compile(
    r"^(?:A reader comment (?:by .+? )?says|According to [^“]+?): “(.*)”$", re.S
)


@dataclass(frozen=True)
class Ranked:
    """Where gold turned up in one ranking: first rank (1-based), recall@k, nDCG@10."""

    rank: int | None
    recall: dict[int, float]
    ndcg: float


@dataclass(frozen=True)
class QuestionScore:
    """What one result line earns against its gold; None where that gold is absent."""

    qtype: str | None
    answerable: bool | None
    abstained: bool
    retrieval_only: bool
    doc: Ranked | None = None  # None when the row names no gold document
    passage: Ranked | None = None  # None when it has no evidence quote found in the index
    evidence_missing: int = 0
    em: float | None = None
    f1: float | None = None
    #: the short answer (the reader's span; the whole answer where it gave none)
    short_em: float | None = None
    short_f1: float | None = None
    has_short: bool = False
    contained: float | None = None
    sentences: int = 0
    supported: int = 0
    verbatim: int = 0
    verifier_supported: int = 0
    unchecked: bool = False
    citations: int = 0
    citations_on_gold: int | None = None
    gold_passage_cited: bool | None = None
    #: a row with a ``gold_page`` (a PDF answer): did a citation of a gold document
    #: quote that page?  None where the row has no gold page or the answer was declined
    gold_page_cited: bool | None = None
    latency: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def citation_recall(self) -> float | None:
        return self.supported / self.sentences if self.sentences else None


def score_question(
    row: dict[str, Any], rec: dict[str, Any], doc_texts: dict[str, str]
) -> QuestionScore:
    golds = gold_docs(row)
    ok = is_answerable(row)
    spans, missing = evidence_spans(row.get("evidence") or [], doc_texts)
    retrieved = rec["retrieved"]
    values: dict[str, Any] = {"evidence_missing": missing, "latency": latency_stages(rec)}
    if golds:
        docs = doc_ranking(retrieved)
        gold = set(golds)
        values["doc"] = Ranked(
            first_gold_rank(docs, gold),
            {k: len(gold & set(docs[:k])) / len(gold) for k in KS},
            ndcg([float(d in gold) for d in docs], len(gold)),
        )
    if spans:
        found = [{s for s in spans if overlaps(hit, s)} for hit in retrieved]
        seen: set[Span] = set()
        gains = []
        for f in found:  # a chunk earns only for evidence no chunk above it found
            gains.append(float(bool(f - seen)))
            seen |= f
        values["passage"] = Ranked(
            next((rank for rank, f in enumerate(found, 1) if f), None),
            {k: len(set().union(*found[:k])) / len(spans) for k in KS},
            ndcg(gains, len(spans)),
        )
    retrieval_only = bool(rec.get("retrieval_only"))
    abstained = bool(rec["abstained"])
    if not retrieval_only:
        if ok and row.get("answers"):
            pred = "" if abstained else strip_markers(rec["answer"])
            values["em"] = exact_match(pred, row["answers"])
            values["f1"] = token_f1(pred, row["answers"])
            values["contained"] = gold_contained(pred, row["answers"])
            if row.get("parts"):  # every part must be answered, not any one of them
                values["contained"] = parts_contained(pred, row["parts"])
            short = rec.get("short_answer")
            spred = pred if abstained or not short else short["text"]
            values["short_em"] = exact_match(spred, row["answers"])
            values["short_f1"] = token_f1(spred, row["answers"])
            values["has_short"] = bool(short) and not abstained
        if not abstained:
            quotes = {c["n"]: " ".join(c["quote"].split()) for c in rec["citations"]}
            sentences = rec.get("sentences") or []
            # text outside every sentence record counts as one unsupported sentence
            values["unchecked"] = unchecked_text(rec["answer"], sentences)
            values["sentences"] = len(sentences) + values["unchecked"]
            values["supported"] = sum(sentence_supported(s, quotes) for s in sentences)
            values["verbatim"] = sum(quoted_verbatim(s, quotes) for s in sentences)
            values["verifier_supported"] = sum(bool(s.get("supported")) for s in sentences)
            values["citations"] = len(rec["citations"])
            if ok and spans:
                on = [any(overlaps(c, s) for s in spans) for c in rec["citations"]]
                values["citations_on_gold"] = sum(on)
                values["gold_passage_cited"] = any(on)
            elif ok and golds:
                values["citations_on_gold"] = sum(c["doc_id"] in golds for c in rec["citations"])
            if ok and row.get("gold_page") is not None:
                values["gold_page_cited"] = page_cited(rec["citations"], golds, row["gold_page"])
    return QuestionScore(
        qtype=row.get("type"),
        answerable=ok,
        abstained=abstained,
        retrieval_only=retrieval_only,
        **values,
    )


def page_cited(citations: Sequence[dict[str, Any]], golds: Sequence[str], page: int) -> bool:
    """Does a citation of a gold document quote the gold page (1-based)?

    >>> page_cited([{"doc_id": "b.pdf", "page": 5}], ["b.pdf"], 5)
    True
    >>> page_cited([{"doc_id": "b.pdf", "page": 4}, {"doc_id": "a.pdf", "page": 5}], ["b.pdf"], 5)
    False
    """
    return any(c["doc_id"] in golds and c.get("page") == page for c in citations)


def latency_stages(rec: dict[str, Any]) -> dict[str, float]:
    """retrieve / answer / verify / total milliseconds of one result line."""
    out = {k: float(v) for k, v in rec["latency_ms"].items() if k in STAGES}
    detail = rec.get("latency_detail_ms") or {}
    if "verify" in detail:
        out["verify"] = float(detail["verify"])
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 4) if kept else None


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _ranking(ranked: Sequence[Ranked]) -> dict[str, Any]:
    if not ranked:
        return {"questions": 0}
    ranks = [r.rank for r in ranked]

    def hit(k: int) -> float | None:
        return _mean(float(r is not None and r <= k) for r in ranks)

    return {
        "questions": len(ranked),
        **{f"hit@{k}": hit(k) for k in KS},
        **{f"recall@{k}": _mean(r.recall[k] for r in ranked) for k in KS},
        f"mrr@{DEPTH}": _mean(1 / r if r is not None and r <= DEPTH else 0.0 for r in ranks),
        f"ndcg@{DEPTH}": _mean(r.ndcg for r in ranked),
        "hit_curve": [hit(k) for k in range(1, DEPTH + 1)],
    }


def summarize(
    rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]], doc_texts: dict[str, str]
) -> dict[str, Any]:
    """Headline metrics (and per question type) over the questions with the needed gold."""
    scores = [score_question(r, rec, doc_texts) for r, rec in zip(rows, records, strict=True)]
    out = summarize_scores(scores)
    if (disagreement := disagreement_summary(rows, records)) is not None:
        out["disagreement"] = disagreement  # "Sources disagree" against the set's labels
    return out


def summarize_scores(scores: Sequence[QuestionScore], *, by_type: bool = True) -> dict[str, Any]:
    answered = [s for s in scores if not s.retrieval_only]
    with_answers = [s for s in answered if s.em is not None]
    spoken = [s for s in answered if not s.abstained]
    cited = [s for s in spoken if s.citations_on_gold is not None]
    sentences = sum(s.sentences for s in spoken)
    answerable = [s for s in answered if s.answerable is True]
    unanswerable = [s for s in answered if s.answerable is False]
    out: dict[str, Any] = {
        "questions": len(scores),
        "retrieval": _ranking([s.doc for s in scores if s.doc]),
        "passages": {
            **_ranking([s.passage for s in scores if s.passage]),
            "evidence_quotes_not_found": sum(s.evidence_missing for s in scores),
        },
        "answers": {
            "questions": len(with_answers),
            "exact_match": _mean(s.em for s in with_answers),
            "f1": _mean(s.f1 for s in with_answers),
            "gold_contained": _mean(s.contained for s in with_answers),
            "short_exact_match": _mean(s.short_em for s in with_answers),
            "short_f1": _mean(s.short_f1 for s in with_answers),
            "with_short_answer": sum(s.has_short for s in with_answers),
        },
        "citations": {
            "answers": len(spoken),
            "sentences": sentences,
            "citations": sum(s.citations for s in spoken),
            "recall": _mean(s.citation_recall for s in spoken),
            "precision": _share(
                sum(s.citations_on_gold or 0 for s in cited), sum(s.citations for s in cited)
            ),
            "verifier_supported": _share(sum(s.verifier_supported for s in spoken), sentences),
            "verbatim": _share(sum(s.verbatim for s in spoken), sentences),
            "answers_with_unchecked_text": sum(s.unchecked for s in spoken),
            "gold_passage_cited": _mean(
                float(s.gold_passage_cited) for s in spoken if s.gold_passage_cited is not None
            ),
            "page_answers": sum(s.gold_page_cited is not None for s in spoken),
            "gold_page_cited": _mean(
                float(s.gold_page_cited) for s in spoken if s.gold_page_cited is not None
            ),
        },
        "abstention": {
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            "declined_unanswerable": _mean(float(s.abstained) for s in unanswerable),
            "wrongly_declined_answerable": _mean(float(s.abstained) for s in answerable),
        },
        "latency_ms": latency_summary(scores),
    }
    if not answered:  # a retrieval-only peer: no answer metrics rather than zeros
        for group in ("answers", "citations", "abstention"):
            out[group] = {"questions": 0}
    types = sorted({s.qtype for s in scores if s.qtype is not None})
    if by_type and types:
        out["by_type"] = {
            t: summarize_scores([s for s in scores if s.qtype == t], by_type=False) for t in types
        }
    return out


def latency_summary(scores: Sequence[QuestionScore]) -> dict[str, dict[str, float]]:
    """p50 / p95 / mean per stage, e.g. ``{"total": {"p50": 47.1, "p95": 78.0, ...}}``;
    percentiles as :func:`citechat.stats.percentile` defines them (linear interpolation)."""
    out = {}
    for stage in STAGES:
        values = [s.latency[stage] for s in scores if stage in s.latency]
        if values:
            out[stage] = percentiles(values)
            out[stage]["mean"] = round(float(np.mean(values)), 2)
    return out


# -- running configurations ------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One way to answer: a retrieval mode, with or without the reranker, an answerer."""

    name: str
    mode: Mode
    rerank: bool
    answerer: str


def configurations(
    settings: Settings, answerers: Sequence[str], *, compare: bool = False
) -> list[Config]:
    """The runs to make: with ``compare``, BM25 / dense / hybrid (+ rerank when a
    reranker is configured) for each answerer; otherwise the configured pipeline.

    >>> [c.name for c in configurations(Settings(), ["extractive"], compare=True)]
    ['bm25', 'dense', 'hybrid']
    """
    modes = list(COMPARED) if compare else []
    if settings.reranker or not compare:
        modes.append(("hybrid+rerank" if settings.reranker else "hybrid", "hybrid", True))
    several = len(answerers) > 1
    return [
        Config(f"{name}/{spec}" if several else name, mode, rerank, spec)
        for spec in answerers
        for name, mode, rerank in modes
    ]


def results_path(out: Path, config: Config, *, single: bool) -> Path:
    """``out`` itself for a single run, else ``RESULTS.<config>.jsonl`` next to it."""
    if single:
        return out
    slug = re.sub(r"[^\w+.-]+", "-", config.name).strip("-")
    return out.with_name(f"{out.stem}.{slug}{out.suffix or '.jsonl'}")


@dataclass
class Run:
    """One configuration's (or peer's) results file, records and metrics."""

    name: str
    results_file: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    config: Config | None = None  # None for a peer's results scored here


def run_config(
    pipe: Pipeline, rows: Sequence[dict[str, Any]], out: Path, *, k: int, config: Config
) -> list[dict[str, Any]]:
    """Ask every question with ``pipe`` and write the results JSONL atomically."""
    from tqdm import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    records = []
    tmp = out.with_name(out.name + ".tmp")
    if rows:  # untimed warm-up: lazy loads (sentence splitter, reranker) stay out of latency
        pipe.ask(rows[0]["question"], k=k, answerer=config.answerer)
    with open(tmp, "w", encoding="utf-8") as fh:
        bar = tqdm(rows, desc=config.name, unit="q", disable=None, file=sys.stderr)
        for row in bar:
            data = pipe.ask(row["question"], k=k, answerer=config.answerer).to_json()
            record = {
                "id": row["id"],
                "question": row["question"],
                **{f: data[f] for f in ("answer", "abstained", "citations", "retrieved")},
                # the public three; every stage and sub-stage in latency_detail_ms
                "latency_ms": {s: data["latency_ms"][s] for s in ("retrieve", "answer", "total")},
                "sentences": data["sentences"],
                "short_answer": data["short_answer"],
                "disagreement": data["disagreement"],
                "answerer": data["answerer"],
                "config": config.name,
                "latency_detail_ms": data["latency_ms"],
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            records.append(record)
    tmp.replace(out)
    return records


def read_peer(path: Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A peer system's results (same schema), in question order; ids must all be there."""
    if not path.is_file():
        raise UsageError(f"peer results not found: {path}; run the peer script first")
    with open(path, encoding="utf-8") as fh:
        by_id = {str(r["id"]): r for r in (json.loads(line) for line in fh if line.strip())}
    missing = [str(r["id"]) for r in rows if str(r["id"]) not in by_id]
    if missing:
        why = f"lacks {len(missing)} of the {len(rows)} questions (first: {missing[0]})"
        raise UsageError(f"{path} {why}; run the peer over the same questions and --limit")
    return [by_id[str(r["id"])] for r in rows]


@dataclass
class Evaluation:
    """The questions asked and one :class:`Run` per configuration or peer."""

    rows: list[dict[str, Any]]
    runs: list[Run]


def run_eval(
    settings: Settings,
    questions: Path,
    out: Path,
    *,
    limit: int | None = None,
    k: int = 10,
    answerer: str | Sequence[str] | None = None,
    compare: bool = False,
    peers: dict[str, Path] | None = None,
    pipeline: Pipeline | None = None,
    split: str | None = None,
) -> Evaluation:
    """Run each configuration over the same questions and score it (and each peer).
    One :class:`Pipeline` (embedder, index, models) is loaded; configurations share it."""
    from .pipeline import Pipeline

    if k < 1:
        raise UsageError(f"-k must be at least 1, got {k}")
    specs = list(dict.fromkeys([answerer] if isinstance(answerer, str) else answerer or []))
    specs = specs or [settings.answerer]
    rows = read_questions(questions, limit, split)
    base = pipeline or Pipeline.load(settings, answerer=specs[0])
    doc_texts = {d.doc_id: d.text for d in base.index.documents.values()}
    configs = configurations(settings, specs, compare=compare)
    single = len(configs) == 1
    runs = []
    for config in configs:
        pipe = base
        if compare or len(configs) > 1:
            cfg_settings = dataclasses.replace(
                settings, reranker=settings.reranker if config.rerank else None
            )
            pipe = Pipeline(cfg_settings, base.index, config.answerer, config.mode)
        path = results_path(out, config, single=single)
        records = run_config(pipe, rows, path, k=k, config=config)
        runs.append(Run(config.name, path, records, summarize(rows, records, doc_texts), config))
    for name, path in (peers or {}).items():
        records = read_peer(path, rows)
        runs.append(Run(name, path, records, summarize(rows, records, doc_texts)))
    return Evaluation(rows, runs)
