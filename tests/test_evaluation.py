"""Evaluation metrics with hand-computed values, the report folder and ``--compare``.

The metric tests use small hand-made result lines; the run tests use the tiny
corpus with the hashing embedder (conftest.py), so nothing loads a real model.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from citechat.config import Settings
from citechat.evaluation import (
    configurations,
    evidence_spans,
    exact_match,
    gold_contained,
    latency_summary,
    ndcg,
    run_eval,
    score_question,
    sentence_supported,
    summarize,
    token_f1,
)
from helpers import latency_score

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DOC = "Intro line. The director was Peter Lewis. Snow fell on Monday."
#         0         1         2         3         4         5         6
#         0123456789012345678901234567890123456789012345678901234567890123


def hit(rank: int, doc: str, start: int = 0, end: int = 10) -> dict[str, Any]:
    return {"rank": rank, "doc_id": doc, "chunk_id": f"{doc}#{rank}", "start": start, "end": end}


def record(
    retrieved: list[dict[str, Any]],
    *,
    answer: str = "",
    abstained: bool = False,
    citations: list[dict[str, Any]] | None = None,
    sentences: list[dict[str, Any]] | None = None,
    total: float = 10.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": "q",
        "question": "?",
        "answer": answer,
        "abstained": abstained,
        "citations": citations or [],
        "retrieved": retrieved,
        "latency_ms": {"retrieve": total / 2, "answer": total / 2, "total": total},
        "sentences": sentences or [],
        "answerer": "extractive",
        **extra,
    }


def cite(n: int, doc: str, start: int, end: int, quote: str) -> dict[str, Any]:
    return {"n": n, "doc_id": doc, "start": start, "end": end, "quote": quote}


# -- answer strings -------------------------------------------------------------


def test_exact_match_and_f1_use_squad_normalisation() -> None:
    assert exact_match("The Peter Lewis!", ["peter lewis"]) == 1.0
    assert exact_match("Peter", ["Peter Lewis"]) == 0.0
    # 2 shared tokens: precision 2/4, recall 2/2 -> F1 = 2 * 0.5 * 1 / 1.5
    assert token_f1("Peter Lewis was appointed", ["Peter Lewis"]) == pytest.approx(2 / 3)
    # best over the golds: "Lewis" alone gives 2 * (1/4) * 1 / 1.25 = 0.4 < 2/3
    assert token_f1("Peter Lewis was appointed", ["Lewis", "Peter Lewis"]) == pytest.approx(2 / 3)
    assert token_f1("nothing shared", ["Peter Lewis"]) == 0.0
    assert gold_contained("It was Peter Lewis, then.", ["peter lewis"]) == 1.0
    assert gold_contained("It was Peter.", ["Peter Lewis"]) == 0.0


# -- ranking ----------------------------------------------------------------------


def test_ndcg_of_known_rankings() -> None:
    # gains at ranks 2 and 4, two relevant items: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg([0, 1, 0, 1], relevant=2) == pytest.approx(expected)
    assert ndcg([0, 1, 0, 1], relevant=2) == pytest.approx(0.6509, abs=1e-4)
    assert ndcg([1, 1, 0], relevant=2) == pytest.approx(1.0)
    assert ndcg([0, 0], relevant=1) == 0.0
    assert ndcg([1], relevant=0) == 0.0
    # past depth 10 nothing counts
    assert ndcg([0] * 10 + [1], relevant=1) == 0.0


def test_doc_level_ranks_collapse_chunks_of_one_document() -> None:
    row = {"id": "q", "question": "?", "gold_docs": ["b", "d"]}
    rec = record([hit(1, "a"), hit(2, "a"), hit(3, "b"), hit(4, "c")])
    score = score_question(row, rec, {})
    assert score.doc is not None
    assert score.doc.rank == 2  # documents a, b, c: b is second although its chunk is third
    assert score.doc.recall == {1: 0.0, 3: 0.5, 5: 0.5, 10: 0.5}
    # one of two gold docs at rank 2: (1/log2 3) / (1 + 1/log2 3)
    assert score.doc.ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    summary = summarize([row], [rec], {})["retrieval"]
    assert summary["hit@1"] == 0.0 and summary["hit@3"] == 1.0
    assert summary["mrr@10"] == 0.5
    assert summary["hit_curve"][:3] == [0.0, 1.0, 1.0]


def test_hit_rates_average_over_questions_with_gold_only() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "1", "question": "?", "gold_docs": ["a"]},
        {"id": "2", "question": "?", "gold_docs": ["z"]},
        {"id": "3", "question": "?"},  # no gold: not in the retrieval denominator
    ]
    recs = [record([hit(1, "a")]), record([hit(1, "a"), hit(2, "b")]), record([hit(1, "a")])]
    summary = summarize(rows, recs, {})
    assert summary["retrieval"]["questions"] == 2
    assert summary["retrieval"]["hit@1"] == 0.5
    assert summary["retrieval"]["mrr@10"] == 0.5


# -- passage level ---------------------------------------------------------------


def test_evidence_quotes_are_located_in_the_document_text() -> None:
    texts = {"d": DOC}
    spans, missing = evidence_spans(
        [{"doc": "d", "quote": "Peter Lewis"}, {"doc": "d", "quote": "not in it"}], texts
    )
    assert spans == [("d", DOC.index("Peter Lewis"), DOC.index("Peter Lewis") + 11)]
    assert missing == 1


def test_passage_level_needs_span_overlap_in_the_same_document() -> None:
    start = DOC.index("Peter Lewis")  # 30
    row = {
        "id": "q",
        "question": "?",
        "gold_docs": ["d"],
        "evidence": [{"doc": "d", "quote": "Peter Lewis"}],
    }
    rec = record(
        [
            hit(1, "d", 0, start),  # ends where the quote starts: [0, 30) does not overlap
            hit(2, "e", start, start + 11),  # the right offsets, the wrong document
            hit(3, "d", start + 5, 60),  # overlaps "Lewis"
        ]
    )
    score = score_question(row, rec, {"d": DOC, "e": DOC})
    assert score.doc is not None and score.doc.rank == 1
    assert score.passage is not None
    assert score.passage.rank == 3
    assert score.passage.recall == {1: 0.0, 3: 1.0, 5: 1.0, 10: 1.0}
    assert score.passage.ndcg == pytest.approx(1 / math.log2(4))


def test_passage_ndcg_does_not_pay_twice_for_one_quote() -> None:
    row = {"id": "q", "question": "?", "evidence": [{"doc": "d", "quote": "Peter Lewis"}]}
    start = DOC.index("Peter Lewis")
    rec = record([hit(1, "d", 0, start + 3), hit(2, "d", start, 60)])
    score = score_question(row, rec, {"d": DOC})
    assert score.passage is not None and score.passage.ndcg == pytest.approx(1.0)


# -- citations ---------------------------------------------------------------------


def test_sentence_support_is_verbatim_quote_or_verifier() -> None:
    quotes = {1: "The director was Peter Lewis.", 2: "Snow fell on Monday."}
    verbatim = {"text": "The director was Peter Lewis. [1]", "citations": [1], "supported": False}
    wrong_source = {"text": "The director was Peter Lewis. [2]", "citations": [2]}
    comment = {
        "text": "A reader comment by Nick says: “Snow fell on Monday.” [2]",
        "citations": [2],
        "supported": False,
    }
    fragment = {"text": "Monday. [2]", "citations": [2], "supported": False}
    verified = {"text": "Lewis ran it [1].", "citations": [1], "supported": True}
    assert sentence_supported(verbatim, quotes)
    assert not sentence_supported(wrong_source, quotes)
    assert sentence_supported(comment, quotes)
    assert not sentence_supported(fragment, quotes)
    assert sentence_supported(verified, quotes)


def test_alce_citation_recall_precision_and_verifier_rate() -> None:
    texts = {"d": DOC, "e": "Other text entirely."}
    row = {
        "id": "q",
        "question": "Who was the director?",
        "answers": ["Peter Lewis"],
        "gold_docs": ["d"],
        "evidence": [{"doc": "d", "quote": "The director was Peter Lewis."}],
    }
    start = DOC.index("The director")
    q1 = "The director was Peter Lewis."
    citations = [cite(1, "d", start, start + len(q1), q1), cite(2, "e", 0, 5, "Other")]
    sentences = [
        {"text": f"{q1} [1]", "citations": [1], "supported": False, "score": 0.4},
        {"text": "He also ran the zoo [2].", "citations": [2], "supported": False, "score": 0.1},
        {"text": "He was paid well [2].", "citations": [2], "supported": True, "score": 0.7},
    ]
    rec = record(
        [hit(1, "d", 0, 60)],
        answer=f"{q1} [1] He also ran the zoo [2]. He was paid well [2].",
        citations=citations,
        sentences=sentences,
    )
    summary = summarize([row], [rec], texts)
    cit = summary["citations"]
    assert cit["recall"] == pytest.approx(2 / 3, abs=1e-4)  # verbatim + verifier, not the zoo
    assert cit["verifier_supported"] == pytest.approx(1 / 3, abs=1e-4)
    assert cit["verbatim"] == pytest.approx(1 / 3, abs=1e-4)
    assert cit["answers_with_unchecked_text"] == 0
    assert cit["precision"] == 0.5  # [1] overlaps the evidence, [2] does not
    assert cit["gold_passage_cited"] == 1.0
    answers = summary["answers"]
    assert answers["gold_contained"] == 1.0 and answers["exact_match"] == 0.0
    assert 0 < answers["f1"] < 1


def test_answer_text_no_sentence_record_covers_counts_as_unsupported() -> None:
    q1 = "The director was Peter Lewis."
    row = {"id": "q", "question": "?", "answers": ["Peter Lewis"]}
    claimed = {"text": f"{q1} [1]", "citations": [1], "supported": True, "score": 1.0}
    rec = record(
        [hit(1, "d")],
        answer=f"{q1} [1] Lewis also ran the zoo [1].",  # the zoo sentence has no record
        citations=[cite(1, "d", 12, 41, q1)],
        sentences=[claimed],
    )
    cit = summarize([row], [rec], {"d": DOC})["citations"]
    assert cit["sentences"] == 2 and cit["answers_with_unchecked_text"] == 1
    assert cit["recall"] == 0.5 and cit["verbatim"] == 0.5


def test_citation_precision_falls_back_to_gold_documents() -> None:
    row = {"id": "q", "question": "?", "answers": ["x"], "gold_docs": ["d"]}
    rec = record(
        [hit(1, "d")],
        answer="x [1] y [2]",
        citations=[cite(1, "d", 0, 3, "x"), cite(2, "e", 0, 3, "y"), cite(3, "d", 5, 9, "z")],
    )
    assert summarize([row], [rec], {})["citations"]["precision"] == pytest.approx(2 / 3, abs=1e-4)


# -- abstention, latency, types, peers ------------------------------------------------


def test_abstention_rates() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "1", "question": "?", "answerable": False, "type": "unanswerable"},
        {"id": "2", "question": "?", "answerable": False, "type": "unanswerable"},
        {"id": "3", "question": "?", "answers": ["x"], "gold_docs": ["d"], "type": "factoid"},
        {"id": "4", "question": "?", "answers": ["x"], "gold_docs": ["d"], "type": "factoid"},
    ]
    recs = [
        record([], abstained=True),
        record([], answer="guess [1]"),
        record([hit(1, "d")], abstained=True),
        record([hit(1, "d")], answer="x [1]", citations=[cite(1, "d", 0, 1, "x")]),
    ]
    summary = summarize(rows, recs, {})
    ab = summary["abstention"]
    assert (ab["answerable"], ab["unanswerable"]) == (2, 2)
    assert ab["declined_unanswerable"] == 0.5
    assert ab["wrongly_declined_answerable"] == 0.5
    assert summary["answers"]["exact_match"] == 0.5  # a declined answerable scores 0
    by_type = summary["by_type"]
    assert set(by_type) == {"factoid", "unanswerable"}
    assert by_type["factoid"]["questions"] == 2
    assert by_type["factoid"]["answers"]["exact_match"] == 0.5
    assert by_type["unanswerable"]["abstention"]["declined_unanswerable"] == 0.5


def test_latency_percentiles_per_stage() -> None:
    scores = [latency_score({"retrieve": float(i), "total": float(2 * i)}) for i in range(1, 101)]
    lat = latency_summary(scores)
    assert set(lat) == {"retrieve", "total"}
    assert lat["retrieve"]["p50"] == 50.5  # numpy's linear interpolation over 1..100
    assert lat["retrieve"]["p95"] == pytest.approx(95.05)
    assert lat["total"]["mean"] == 101.0


def test_retrieval_only_peer_gets_no_answer_metrics() -> None:
    row = {"id": "q", "question": "?", "answers": ["a"], "gold_docs": ["d"]}
    rec = record([hit(1, "d")], retrieval_only=True)
    summary = summarize([row], [rec], {})
    assert summary["retrieval"]["hit@1"] == 1.0
    assert summary["answers"] == {"questions": 0}
    assert summary["citations"] == {"questions": 0}


def test_compare_configurations_follow_the_settings() -> None:
    names = [c.name for c in configurations(Settings(), ["extractive"], compare=True)]
    assert names == ["bm25", "dense", "hybrid"]
    reranked = configurations(Settings(reranker="some/cross-encoder"), ["extractive"], compare=True)
    assert [(c.name, c.mode, c.rerank) for c in reranked][-1] == ("hybrid+rerank", "hybrid", True)
    two = configurations(Settings(), ["extractive", "openai:http://x/v1#m"], compare=False)
    assert [c.name for c in two] == ["hybrid/extractive", "hybrid/openai:http://x/v1#m"]


# -- runs over the tiny corpus ---------------------------------------------------------

QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "director",
        "question": "Who was appointed new director?",
        "answers": ["Peter Lewis"],
        "gold_docs": ["balls.txt"],
        "evidence": [
            {"doc": "balls.txt", "quote": "the appointment of a new director, Peter Lewis"}
        ],
        "type": "factoid",
        "answerable": True,
    },
    {
        "id": "snow",
        "question": "What closed schools across London?",
        "answers": ["Heavy snow"],
        "gold_docs": ["weather.txt"],
        "evidence": [{"doc": "weather.txt", "quote": "Heavy snow closed schools across London"}],
        "type": "factoid",
        "answerable": True,
    },
    {
        "id": "comment",
        "question": "What did Nick Bromley say about joint working?",
        "answers": ["shift responsibility onto the process"],
        "gold_docs": ["balls.txt"],
        "evidence": [
            {"doc": "balls.txt", "quote": "Joint working lets people shift responsibility"}
        ],
        "type": "comment",
        "answerable": True,
    },
    {
        "id": "cup",
        "question": "Who won the 1966 World Cup?",
        "answers": [],
        "gold_docs": [],
        "type": "unanswerable",
        "answerable": False,
    },
]


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    path = tmp_path / "tiny" / "questions.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n", encoding="utf-8")
    return path


def test_run_eval_scores_the_extractive_answerer(fake_settings: Settings, questions: Path) -> None:
    result = run_eval(fake_settings, questions, questions.with_name("out.jsonl"), k=5)
    (run,) = result.runs
    summary = run.summary
    assert summary["questions"] == 4
    assert summary["retrieval"]["questions"] == 3
    assert summary["passages"]["questions"] == 3
    assert summary["passages"]["evidence_quotes_not_found"] == 0
    spoken = summary["citations"]
    assert spoken["answers"] >= 1
    # computed from the lines: every extractive sentence is its own cited quote
    assert spoken["verbatim"] == 1.0 and spoken["answers_with_unchecked_text"] == 0
    assert spoken["recall"] == 1.0
    lines = [json.loads(x) for x in run.results_file.read_text().splitlines()]
    assert [x["id"] for x in lines] == [q["id"] for q in QUESTIONS]
    for line in lines:
        assert set(line["latency_ms"]) == {"retrieve", "answer", "total"}
        assert line["config"] == "hybrid"
        assert "verify" in line["latency_detail_ms"]


def test_cli_report_folder(
    cli_env: Settings,
    questions: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from citechat.cli import main

    report = tmp_path / "report"
    out = tmp_path / "res.jsonl"
    assert main(["eval", str(questions), "--out", str(out), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "| config |" in printed and f"report: {report / 'report.md'}" in printed
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"dataset", "questions_file", "questions", "k", "command", "runs", "plots"} <= set(
        metrics
    )
    assert metrics["dataset"] == "tiny" and metrics["questions"] == 4
    (run,) = metrics["runs"]
    assert run["name"] == "hybrid" and run["results_file"] == str(out)
    assert {"retrieval", "passages", "answers", "citations", "abstention", "latency_ms"} <= set(
        run["metrics"]
    )
    assert set(run["metrics"]["by_type"]) == {"factoid", "comment", "unanswerable"}
    text = (report / "report.md").read_text()
    for heading in ("# Evaluation: tiny", "## Headline", "## Citations", "## By question type"):
        assert heading in text
    assert "| hybrid |" in text
    assert metrics["plots"] == ["hit_at_k.png", "latency.png", "by_type.png"]
    for name in metrics["plots"]:
        data = (report / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        assert f"]({name})" in text


def test_cli_report_without_matplotlib_skips_the_plots_with_the_install_hint(
    cli_env: Settings,
    questions: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from citechat.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    report = tmp_path / "report"
    out = tmp_path / "res.jsonl"
    assert main(["eval", str(questions), "--out", str(out), "--report", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["plots"] == [] and metrics["runs"][0]["metrics"]["retrieval"]
    assert "## Headline" in (report / "report.md").read_text()
    assert not list(report.glob("*.png"))
    assert len(out.read_text().splitlines()) == metrics["questions"]
    assert "pip install 'citechat[eval]'" in caplog.text


def test_cli_compare_writes_one_row_and_file_per_mode(
    cli_env: Settings,
    questions: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from citechat.cli import main

    peer = tmp_path / "peer.jsonl"
    peer.write_text(
        "\n".join(
            json.dumps(
                record([hit(1, q["gold_docs"][0] if q["gold_docs"] else "x")], **{"id": q["id"]})
                | {"retrieval_only": True}
            )
            for q in QUESTIONS
        )
    )
    out = tmp_path / "res.jsonl"
    args = ["eval", str(questions), "--out", str(out), "--compare", "--json", "--limit", "3"]
    assert main([*args, "--peer", f"other={peer}"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["runs"]] == ["bm25", "dense", "hybrid", "other"]
    for mode in ("bm25", "dense", "hybrid"):
        lines = (tmp_path / f"res.{mode}.jsonl").read_text().splitlines()
        assert len(lines) == 3 and json.loads(lines[0])["config"] == mode
    assert not out.exists()
    other = data["runs"][-1]["metrics"]
    assert other["retrieval"]["hit@1"] == 1.0 and other["answers"] == {"questions": 0}
    report = Path(data["report"])
    assert report.parent.parent == Path("eval/reports") and report.parent.name.startswith("tiny-")
    table = report.read_text().split("## Headline")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "config" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["bm25", "dense", "hybrid", "other"]
    assert main(["eval", str(questions), "--out", str(out), "--peer", "nameless"]) == 2


@pytest.mark.integration
def test_langchain_peer_is_scored_next_to_citechat(
    fake_settings: Settings, questions: Path, tmp_path: Path
) -> None:
    """eval/peers/langchain_faiss.py (real MiniLM through LangChain) writes the results
    schema, its spans index citechat's document text, and run_eval scores it."""
    pytest.importorskip("langchain_community")
    pytest.importorskip("langchain_huggingface")
    import importlib.util

    from citechat.corpus import load_corpus

    script = Path(__file__).resolve().parents[1] / "eval" / "peers" / "langchain_faiss.py"
    spec = importlib.util.spec_from_file_location("langchain_faiss", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "peer.jsonl"
    argv = ["--corpus", str(fake_settings.corpus), "--questions", str(questions)]
    assert (
        module.main(
            [*argv, "--out", str(out), "-k", "3", "--chunk-size", "120", "--chunk-overlap", "20"]
        )
        == 0
    )
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [q["id"] for q in QUESTIONS]
    texts = {d.doc_id: d.text for d in load_corpus(fake_settings.corpus)}
    for line in lines:
        assert line["retrieval_only"] is True and line["citations"] == []
        assert set(line["latency_ms"]) == {"retrieve", "answer", "total"}
        assert 1 <= len(line["retrieved"]) <= 3
        for h in line["retrieved"]:
            assert 0 <= h["start"] < h["end"] <= len(texts[h["doc_id"]])
    meta = json.loads(out.with_name("peer.meta.json").read_text())
    assert meta["splitter"]["chunk_size"] == 120 and meta["chunks"] >= 2
    result = run_eval(
        fake_settings, questions, tmp_path / "res.jsonl", k=3, peers={"langchain-faiss": out}
    )
    assert [r.name for r in result.runs] == ["hybrid", "langchain-faiss"]
    peer = result.runs[1].summary
    assert peer["retrieval"]["questions"] == 3 and peer["retrieval"]["hit@10"] is not None
    assert peer["answers"] == {"questions": 0}


def test_report_checks_the_targets_beside_the_questions(
    cli_env: Settings,
    questions: Path,
    tmp_path: Path,
) -> None:
    from citechat.cli import main

    # one target the tiny set meets, one it cannot (hit@1 above 1), one for another file
    (questions.parent / "targets.json").write_text(
        json.dumps(
            {
                "questions.jsonl": [
                    {"metric": "retrieval.hit@5", "at_least": 0.5},
                    {"metric": "retrieval.hit@1", "at_least": 1.5, "note": "unreachable"},
                ],
                "other.jsonl": [{"metric": "retrieval.hit@1", "at_least": 0.1}],
            }
        ),
        encoding="utf-8",
    )
    report = tmp_path / "report"
    out = tmp_path / "res.jsonl"
    assert main(["eval", str(questions), "--out", str(out), "--report", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    met, missed = metrics["targets"]
    hit1 = metrics["runs"][0]["metrics"]["retrieval"]["hit@1"]
    assert met["metric"] == "retrieval.hit@5" and met["runs"]["hybrid"]["met"] is True
    assert missed["runs"]["hybrid"] == {
        "value": hit1,
        "met": False,
        "missed_by": round(1.5 - hit1, 4),
    }
    text = (report / "report.md").read_text()
    assert "## Targets" in text
    assert f"**missed by {1.5 - hit1:.3f}**" in text and "| met |" in text


def test_targets_files_are_checked(tmp_path: Path) -> None:
    from citechat.errors import UsageError
    from citechat.report import load_targets

    q = tmp_path / "questions.jsonl"
    assert load_targets(q) == []  # no targets.json: nothing to check
    (tmp_path / "targets.json").write_text('{"questions.jsonl": [{"metric": "hit@1"}]}')
    with pytest.raises(UsageError, match="not a valid targets file"):
        load_targets(q)
    (tmp_path / "targets.json").write_text(
        '{"questions.jsonl": [{"metric": "hit@1", "at_least": 0.5}]}'
    )
    with pytest.raises(UsageError, match=r"GROUP\.KEY"):
        load_targets(q)
    (tmp_path / "targets.json").write_text("{not json")
    with pytest.raises(UsageError, match="targets"):
        load_targets(q)


def test_the_shipped_targets_name_real_metrics() -> None:
    from citechat.report import load_targets

    root = Path(__file__).resolve().parents[1] / "eval" / "datasets"
    squad = load_targets(root / "squad-dev" / "questions_v1.1_first1000.jsonl")
    seed = load_targets(root / "seed" / "questions.jsonl")
    assert [(t["metric"], t["at_least"]) for t in squad] == [
        ("retrieval.hit@1", 0.88),
        ("retrieval.hit@10", 0.98),
    ]
    assert [(t["metric"], t["at_least"]) for t in seed] == [
        ("retrieval.hit@5", 0.98),
        ("citations.gold_passage_cited", 0.9),
    ]


def test_short_answers_score_the_reader_span_and_fall_back_to_the_answer() -> None:
    rows: list[dict[str, Any]] = [
        {"id": str(i), "question": "?", "answers": ["Peter Lewis"], "gold_docs": ["d"]}
        for i in range(3)
    ]
    quote = "The director was Peter Lewis."
    c = [cite(1, "d", 12, 41, quote)]
    short = {"text": "Peter Lewis", "n": 1, "start": 29, "end": 40}
    recs = [
        record(
            [hit(1, "d")],
            answer=f"**Peter Lewis** [1]. {quote} [1]",
            citations=c,
            short_answer=short,
        ),
        record([hit(1, "d")], answer=f"{quote} [1]", citations=c, short_answer=None),
        record([hit(1, "d")], abstained=True, short_answer=None),
    ]
    answers = summarize(rows, recs, {"d": DOC})["answers"]
    assert answers["short_exact_match"] == round(1 / 3, 4)  # metrics keep 4 places
    assert answers["exact_match"] == 0.0  # the whole answer is never the bare name
    assert answers["with_short_answer"] == 1
    # the second answer's short F1 is its whole text's: 2 of 5 words are the gold
    assert answers["short_f1"] == round((1 + token_f1(quote, ["Peter Lewis"])) / 3, 4)


def test_a_multi_part_question_needs_every_part_in_the_answer() -> None:
    row = {
        "id": "m",
        "question": "Who, and when?",
        "answers": ["Peter Lewis", "Monday"],
        "parts": [{"answers": ["Peter Lewis"]}, {"answers": ["Monday"]}],
        "gold_docs": ["d"],
    }
    half = record([hit(1, "d")], answer="It was Peter Lewis [1]")
    both = record([hit(1, "d")], answer="Peter Lewis [1], on Monday [2]")
    assert score_question(row, half, {"d": DOC}).contained == 0.5
    assert score_question(row, both, {"d": DOC}).contained == 1.0
    flat = {k: v for k, v in row.items() if k != "parts"}
    assert score_question(flat, half, {"d": DOC}).contained == 1.0  # any one answer


def test_split_keeps_one_half_of_a_question_set(tmp_path: Path) -> None:
    from citechat.errors import UsageError
    from citechat.evaluation import read_questions

    path = tmp_path / "q.jsonl"
    lines = [
        {"id": str(i), "question": "?", "split": "tune" if i % 2 else "report"} for i in range(6)
    ]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    assert [r["id"] for r in read_questions(path, split="report")] == ["0", "2", "4"]
    assert [r["id"] for r in read_questions(path, 1, "tune")] == ["1"]
    assert len(read_questions(path)) == 6
    with pytest.raises(UsageError, match=r"no questions of split 'test'.*report, tune"):
        read_questions(path, split="test")
