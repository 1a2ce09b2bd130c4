from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from citechat.answerers import make_answerer, register_answerer, unregister_answerer
from citechat.answering import DECLINE, ExtractiveAnswerer, history_query
from citechat.citations import answer_sentences, markers, source_for, strip_markers, verify
from citechat.config import Settings
from citechat.embedding import HashingEmbedder
from citechat.errors import ConfigError, UsageError
from citechat.pipeline import Pipeline
from citechat.reading import SentenceScorer
from citechat.retrieval import Retriever, rrf_fuse
from citechat.text import terms
from citechat.types import Answer
from helpers import record_calls


def test_rrf_ties_break_by_id_and_sum_across_lists() -> None:
    assert (
        rrf_fuse([[2, 1], [1, 2]], k=60) == [(1, 2 / 62), (2, 2 / 62)]
        or rrf_fuse([[2, 1], [1, 2]], k=60)[0][0] == 1
    )
    assert rrf_fuse([], k=60) == []
    fused = rrf_fuse([[5], [7, 5]], k=1)
    assert fused[0][0] == 5


def test_terms_stem_and_drop_stopwords() -> None:
    assert terms("The appointments of directors") == ["appoint", "director"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_mode_finds_the_right_document(pipe: Pipeline, mode: str) -> None:
    r = Retriever(pipe.index, mode=mode)  # type: ignore[arg-type]
    hits = r.search("Peter Lewis director appointment", k=3).hits
    assert hits[0].chunk.doc_id == "balls.txt"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_bm25_query_of_unknown_words_returns_nothing(pipe: Pipeline) -> None:
    assert Retriever(pipe.index, mode="bm25").search("zzzqqq xxyyzz", k=3).hits == []


def test_bad_mode_and_k_are_clear_errors(pipe: Pipeline) -> None:
    with pytest.raises(ConfigError, match="mode"):
        Retriever(pipe.index, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k must be"):
        pipe.retriever.search("x", k=0)


def test_extractive_answer_quotes_and_cites_exact_sentence(pipe: Pipeline) -> None:
    answer = pipe.ask("Who was appointed as the new director?")
    assert not answer.abstained
    c = answer.citations[0]
    doc = pipe.index.documents[c.doc_id]
    assert doc.text[c.start : c.end] == c.quote
    assert "Peter Lewis" in c.quote
    assert "[1]" in answer.text
    assert answer.sentences and all(s.supported for s in answer.sentences)
    assert {"retrieve", "answer", "total"} <= set(answer.latency_ms)


def test_comment_claims_are_attributed_to_the_commenter(pipe: Pipeline) -> None:
    answer = pipe.ask("Does joint working let people shift responsibility onto the process?")
    cited = [c for c in answer.citations if c.section == "comment"]
    assert cited, answer.text
    assert cited[0].commenter == "Nick Bromley"
    assert "A reader comment by Nick Bromley (11 April 2013) says" in answer.text


def test_declines_when_nothing_matches(pipe: Pipeline) -> None:
    answer = pipe.ask("What is the boiling point of tungsten?")
    assert answer.abstained and answer.text == DECLINE and answer.citations == ()


def test_question_validation(pipe: Pipeline) -> None:
    with pytest.raises(UsageError, match="empty"):
        pipe.ask("   \n\t ")
    long = "Who was appointed? " + "x" * 3000
    answer = pipe.ask(long)
    assert answer.notice and "2000" in answer.notice
    assert len(answer.question) == 2000
    assert (
        pipe.ask("Who was appointed\x00 director?\x1b").question == "Who was appointed  director?"
    )


def test_history_query_uses_previous_question_for_follow_ups() -> None:
    hist = [("user", "Who replaced Sharon Shoesmith?"), ("assistant", "Peter Lewis [1]")]
    # the names of the previous question, not its predicate ("replaced")
    assert history_query("When did she lose her appeal?", hist) == (
        "Sharon Shoesmith When did she lose her appeal?"
    )
    assert history_query("What did Ofsted find in Haringey?", hist) == (
        "What did Ofsted find in Haringey?"
    )


def test_markers_and_bounds() -> None:
    assert markers("a [1] b [12] c [x] [0]") == [1, 12, 0]
    assert source_for(0, ["a"]) is None and source_for(2, ["a"]) is None
    assert strip_markers("Peter Lewis [1] .") == "Peter Lewis."


def test_answer_sentences_attach_trailing_markers() -> None:
    sents = answer_sentences("Peter Lewis was appointed. [1] He reports monthly [2].")
    assert [s.cited for s in sents] == [(1,), (2,)]


def test_verify_flags_unsupported_and_drops_out_of_range_markers() -> None:
    emb = HashingEmbedder(256)
    quotes = ["Peter Lewis was appointed director of children's services."]
    result = verify(
        "Peter Lewis was appointed director [1]. The moon is made of cheese [1]. Snow fell [3].",
        quotes,
        emb,
    )
    assert [s.supported for s in result] == [True, False, False]
    assert result[2].citations == ()  # [3] does not exist: dropped, not wrapped
    assert result[0].score > result[1].score


def test_extractive_answerer_threshold_is_validated(pipe: Pipeline) -> None:
    with pytest.raises(ValueError, match="max_sentences"):
        ExtractiveAnswerer(pipe.retriever, max_sentences=0)


def _retrieval_putting_weather_first(pipe: Pipeline, question: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from citechat.retrieval import Retrieval

    hits = pipe.retriever.search(question, k=10).hits
    weather = [h for h in hits if h.chunk.doc_id == "weather.txt"]
    balls = [h for h in hits if h.chunk.doc_id == "balls.txt"]
    assert weather and balls
    # the off-topic chunk on top with the best retrieval score: only the evidence
    # its sentences hold can move the answering chunk above it
    order = [replace(weather[0], score=1.0), *[replace(h, score=0.5) for h in balls]]
    hits = [replace(h, rank=i) for i, h in enumerate(order, start=1)]
    qvec = pipe.index.embedder.embed([question])[0]
    return Retrieval(hits=hits, query_vector=qvec, timings={"fuse": 0.1}, query=question)


def test_evidence_rerank_puts_the_answering_chunk_first(pipe: Pipeline) -> None:
    from citechat.reading import rerank_by_evidence

    question = "Who did Ed Balls order to be appointed as the new director?"
    retrieval = _retrieval_putting_weather_first(pipe, question)
    scorer = SentenceScorer(pipe.retriever)
    reranked = rerank_by_evidence(scorer.read(question, retrieval), k=2)
    out = reranked.retrieval
    assert out.hits[0].chunk.doc_id == "balls.txt"
    assert [h.rank for h in out.hits] == [1, 2]
    # scores are the retrieval's, untouched; the rerank's time is recorded beside fuse
    before = {h.chunk.chunk_id: h.score for h in retrieval.hits}
    assert [h.score for h in out.hits] == [before[h.chunk.chunk_id] for h in out.hits] == [0.5, 1.0]
    assert out.timings["fuse"] == 0.1 and out.timings["evidence"] >= 0
    # the kept hits' candidates, not scored again, are those a fresh read would score
    # (the prior relative to the best hit kept, a shared sentence owned by its first chunk)
    fresh = scorer.read(question, out).candidates
    assert [_key(c) for c in reranked.candidates] == [_key(c) for c in fresh]
    assert rerank_by_evidence(scorer.read(question, replace_hits(retrieval, [])), k=2).hits == []


def _key(c: Any) -> tuple[Any, ...]:
    return (c.hit.chunk.chunk_id, c.hit.rank, c.start, c.end, c.score, c.prior, c.lexical)


def replace_hits(retrieval, hits):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(retrieval, hits=hits)


def test_evidence_depth_setting(fake_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="evidence_depth"):
        Settings(evidence_depth=-1)
    assert Settings.load(env={"CITECHAT_EVIDENCE_DEPTH": "0"}).evidence_depth == 0
    assert Settings.load(env={}).evidence_depth == 20
    on = Pipeline.load(fake_settings)
    off = Pipeline.load(fake_settings.replace(evidence_depth=0))
    question = "Who was appointed as the new director?"
    with_rerank, without = on.ask(question, k=1), off.ask(question, k=1)
    assert "retrieve_evidence" in with_rerank.latency_ms
    assert "retrieve_evidence" not in without.latency_ms
    assert len(with_rerank.hits) == len(without.hits) == 1
    assert with_rerank.hits[0].chunk.doc_id == "balls.txt"


def test_bm25_sees_the_header_and_idf_only_the_text(pipe: Pipeline) -> None:
    from citechat.types import Chunk

    chunk = Chunk("d#0", "d", 0, 9, "Joint working.", "comment", "Balls appoints", "Nick Bromley")
    text = chunk.embedding_text()
    # the identity the retriever's one-pass tokenising relies on
    assert terms(text) == terms(text.removesuffix(chunk.text)) + terms(chunk.text)
    r = Retriever(pipe.index, mode="bm25")
    # "bromley" is only in the comment's header: BM25 finds it, the IDF never counts it
    assert r.search("Bromley", k=1).hits[0].chunk.commenter == "Nick Bromley"
    assert "bromley" not in r.idf and "joint" in r.idf


# -- the answer contract: flags, the registry, sentences scored once --------------------


@pytest.mark.parametrize("spec", ["extractive", "fake"])
def test_every_answerer_keeps_the_contract(
    pipe: Pipeline, fake_llm: Any, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    """Each answerer declares what it can do; the pipeline asks only for that, and
    scores the candidate sentences once per question (rerank, gate and answer)."""
    question = "Who was appointed as the new director?"
    answerer = pipe.answerer(spec)
    assert isinstance(answerer.can_stream, bool) and isinstance(answerer.can_condense, bool)
    if spec == "fake":
        balls = next(
            n
            for n, h in enumerate(pipe.retrieve(question, 5).hits, 1)
            if h.chunk.doc_id == "balls.txt"
        )
        # the second turn's condense is a generation too
        fake_llm(pipe, f"Peter Lewis was appointed [{balls}].", question, f"Lewis [{balls}].")
    reads = record_calls(monkeypatch, SentenceScorer, "read", "question")
    asked: list[str] = []
    for method in ("stream", "finish", "condense"):
        flag = answerer.can_condense if method == "condense" else answerer.can_stream
        if not flag:  # never asked: asking would fail the test
            monkeypatch.setattr(answerer, method, lambda *a, m=method, **k: asked.append(m))
    first = pipe.ask(question, answerer=spec)
    second = pipe.ask(question, answerer=spec, history=[("user", question), ("assistant", "x")])
    assert asked == [] and len(reads) == 2
    assert not first.abstained and "Peter Lewis" in first.citations[0].quote
    assert first.answerer == second.answerer == answerer.name
    assert pipe.settings.evidence_depth > 1  # the evidence rerank ran, on the same reading


def test_an_answerer_without_flags_is_never_asked_to_stream_or_condense(pipe: Pipeline) -> None:
    class Plain(ExtractiveAnswerer):
        name = "plain"

    def factory(argument: str, retriever: Any, settings: Settings) -> Plain:
        return Plain(retriever)

    register_answerer("plain", factory)
    try:
        with pytest.raises(ConfigError, match="already registered"):
            register_answerer("plain", factory)
        items = list(pipe.ask_stream("Who was appointed as the new director?", answerer="plain"))
    finally:
        unregister_answerer("plain")
    assert len(items) == 1 and isinstance(items[0], Answer)  # no pieces: it cannot stream
    assert items[0].answerer == "plain"
    with pytest.raises(NotImplementedError, match="cannot stream"):
        Plain(pipe.retriever).stream("q", pipe.read("q", 5))


def test_unknown_answerer_names_the_known_prefixes(pipe: Pipeline, fake_llm: Any) -> None:
    with pytest.raises(ConfigError) as err:
        make_answerer("gpt:4", pipe.retriever, pipe.settings)
    message = str(err.value)
    assert message.startswith("unknown answerer 'gpt:4'; use one of: extractive, ")
    assert all(p in message for p in ("transformers:", "openai:", "fake:")) and "\n" not in message
    with pytest.raises(ConfigError, match="unknown answerer 'extractive:x'"):
        make_answerer("extractive:x", pipe.retriever, pipe.settings)


def test_extractive_answers_without_importing_the_llm_module(fake_settings: Settings) -> None:
    code = (
        "import sys; from pathlib import Path; from citechat.config import Settings;"
        "from citechat.pipeline import Pipeline;"
        f"s = Settings(corpus=Path({str(fake_settings.corpus)!r}),"
        f" index=Path({str(fake_settings.index)!r}), embedder='hashing-256');"
        "a = Pipeline.load(s).ask('Who was appointed as the new director?');"
        "assert not a.abstained, a; print(sorted(m for m in sys.modules if 'citechat.gen' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_sentence_matching_the_question_best_is_cited_from_a_lower_passage(
    tmp_path: Any,
) -> None:
    from dataclasses import replace

    from helpers import pipeline_over

    pipe = pipeline_over(
        tmp_path,
        {
            "logs.txt": "Log files\n\nThe lastlog file records the last login of each user.\n",
            "run.txt": "Run data\n\nThe utmp file stores who is currently using the system.\n",
        },
    )
    question = "Which file records who is currently using the system?"
    reading = pipe.read(question, 3)
    by_doc = {c.hit.chunk.doc_id: c for c in reading.candidates}
    # the best-ranked sentence matches the question less well on its own than the
    # second passage's sentence, whose passage ranks lower
    top = replace(by_doc["logs.txt"], score=0.9, cosine=0.3, lexical=0.4, prior=1.0)
    low = replace(by_doc["run.txt"], score=0.4, cosine=0.6, lexical=0.5, prior=0.2)
    answerer = ExtractiveAnswerer(pipe.retriever, abstention=None, threshold=0.0)
    answer = answerer.answer(question, replace(reading, candidates=(top, low)))
    assert [c.doc_id for c in answer.citations] == ["logs.txt", "run.txt"]
    # a sentence only a little better on its own is not added
    close = replace(low, cosine=0.32, lexical=0.42)
    answer = answerer.answer(question, replace(reading, candidates=(top, close)))
    assert [c.doc_id for c in answer.citations] == ["logs.txt"]
    # nor past the answer's sentence budget
    one = ExtractiveAnswerer(pipe.retriever, abstention=None, threshold=0.0, max_sentences=1)
    answer = one.answer(question, replace(reading, candidates=(top, low)))
    assert [c.doc_id for c in answer.citations] == ["logs.txt"]


def test_a_part_of_a_two_part_question_also_gets_its_strongest_sentence(tmp_path: Any) -> None:
    from dataclasses import replace

    from citechat.reading import Part
    from helpers import pipeline_over

    pipe = pipeline_over(
        tmp_path,
        {
            "a.txt": "Report\n\nThe good practices were omitted from the report, she claimed.\n",
            "b.txt": "News\n\nShe first heard about her removal on the news.\n",
            "c.txt": "Web\n\nThe first time I saw that report was on a public website.\n",
        },
    )
    question = "What happened to the good practices, and where did she first see the report?"
    reading = pipe.read(question, 3)
    by_doc = {c.hit.chunk.doc_id: c for c in reading.candidates}
    first = replace(by_doc["a.txt"], score=0.9, cosine=0.6, lexical=0.7, prior=1.0)
    # the second part's best-ranked sentence (typed, higher prior) matches it less well
    # on its own words and meaning than the one below it
    ranked = replace(by_doc["b.txt"], score=0.89, cosine=0.46, lexical=0.71, prior=0.7)
    strong = replace(by_doc["c.txt"], score=0.86, cosine=0.74, lexical=0.71, prior=1.0)
    parts = (
        Part("What happened to the good practices?", (first,)),
        Part("Where did she first see the report?", (ranked, strong)),
    )
    answerer = ExtractiveAnswerer(pipe.retriever, abstention=None, threshold=0.0)
    answer = answerer.answer(question, replace(reading, candidates=(first,), parts=parts))
    assert [c.doc_id for c in answer.citations] == ["a.txt", "b.txt", "c.txt"]
    # one only a little stronger is not added
    close = replace(strong, cosine=0.5)
    parts = (parts[0], Part(parts[1].question, (ranked, close)))
    answer = answerer.answer(question, replace(reading, candidates=(first,), parts=parts))
    assert [c.doc_id for c in answer.citations] == ["a.txt", "b.txt"]
