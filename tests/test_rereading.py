"""The reader at answer time (rereading.py), with a small fake reader: candidates and
hits reordered by its verdict, the short answer first and cited with exact document
offsets, its abstention, the ``off`` path, and an unusable artifact's fallback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from citechat.config import Settings
from citechat.pipeline import Pipeline
from citechat.reader import ReaderInput, ReaderScore
from citechat.rereading import ReaderChoice, ReaderStage, load_reader


class FakeReader:
    """Says yes to the sentences holding ``answer`` (its span: that phrase), no to
    the rest; records what it was given."""

    declines = True
    gives_cosine = False

    def __init__(self, answer: str = "Peter Lewis", yes: float = 0.95, no: float = 0.05):
        self.answer, self.yes, self.no = answer, yes, no
        self.seen: list[list[ReaderInput]] = []
        self.prepared: list[list[ReaderInput]] = []

    def prepare(self, items: Sequence[ReaderInput]) -> int:
        self.prepared.append(list(items))
        return len(items)

    def score(self, question: str, items: Sequence[ReaderInput]) -> list[ReaderScore]:
        self.seen.append(list(items))
        out = []
        for item in items:
            at = item.sentence.find(self.answer)
            if at >= 0:
                span = (item.start + at, item.start + at + len(self.answer))
                out.append(ReaderScore(self.yes, 3.0, span, self.answer))
            else:
                out.append(ReaderScore(self.no, -3.0, None, ""))
        return out

    def p_unanswerable(self, scores: Sequence[ReaderScore]) -> float:
        return 1.0 - max((s.p_answer for s in scores), default=0.0)


def _with_reader(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, reader: FakeReader
) -> Pipeline:
    import citechat.pipeline

    choice = ReaderChoice(ReaderStage(reader))  # type: ignore[arg-type]
    monkeypatch.setattr(citechat.pipeline, "load_reader", lambda spec: choice)
    return Pipeline.load(settings)


def test_the_reader_reorders_and_leads_with_a_cited_short_answer(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    pipe = _with_reader(monkeypatch, fake_settings, FakeReader())
    # a question whose words point the heuristic at the snow story's sentences too
    answer = pipe.ask("Who was named to lead schools in London on Monday?")
    assert not answer.abstained
    short = answer.short_answer
    assert short is not None and short.text == "Peter Lewis" and short.n == 1
    doc = pipe.index.documents[answer.citations[0].doc_id]
    assert doc.text[short.start : short.end] == "Peter Lewis"
    cited = answer.citations[0]
    assert cited.start <= short.start < short.end <= cited.end
    assert answer.text.startswith("**Peter Lewis** [1]. ")
    assert answer.hits[0].chunk.doc_id == "balls.txt" and answer.hits[0].rank == 1
    assert [h.rank for h in answer.hits] == list(range(1, len(answer.hits) + 1))
    assert answer.sentences[0].supported and answer.sentences[0].citations == (1,)
    data = answer.to_json()
    assert data["short_answer"] == {
        "text": "Peter Lewis",
        "n": 1,
        "start": short.start,
        "end": short.end,
    }
    assert "reader" in data["latency_ms"] or "retrieve_reader" in data["latency_ms"]


def test_the_reader_sees_each_candidate_with_its_neighbours(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    reader = FakeReader()
    pipe = _with_reader(monkeypatch, fake_settings, reader)
    pipe.ask("Who did the children's secretary appoint?")
    items = reader.seen[-1]
    assert 0 < len(items) <= ReaderStage(reader).depth  # type: ignore[arg-type]
    texts = {d.doc_id: d.text for d in pipe.index.documents.values()}
    lewis = next(i for i in items if "Peter Lewis" in i.sentence)
    doc = texts["balls.txt"]
    assert doc[lewis.start : lewis.end] == lewis.sentence
    assert lewis.next.startswith("He demanded monthly updates")
    assert lewis.header == "Balls appoints new director"
    comment = [i for i in items if "Joint working" in i.sentence]
    assert all(i.header.endswith("| comment by Nick Bromley") for i in comment)


def test_the_reader_declines_what_it_finds_unanswered(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    pipe = _with_reader(monkeypatch, fake_settings, FakeReader(answer="no such phrase"))
    answer = pipe.ask("Who did the children's secretary appoint?")
    assert answer.abstained and answer.short_answer is None
    assert answer.confidence is not None and answer.confidence == pytest.approx(0.05)


def test_a_whole_sentence_span_is_no_short_answer(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    sentence = "Buses were withdrawn."
    pipe = _with_reader(monkeypatch, fake_settings, FakeReader(answer=sentence))
    answer = pipe.ask("Were buses withdrawn in the snow?")
    assert not answer.abstained and answer.short_answer is None
    assert answer.citations[0].quote == sentence
    assert not answer.text.startswith("**")


def test_reader_off_is_the_heuristic_answerer(fake_settings: Settings) -> None:
    assert load_reader("off") == ReaderChoice(None)
    pipe = Pipeline.load(fake_settings.replace(reader="off"))
    answer = pipe.ask("Who did the children's secretary appoint?")
    reading = pipe.read("Who did the children's secretary appoint?", 5)
    assert reading.p_unanswerable is None
    assert all(c.reader is None and c.short is None for c in reading.candidates)
    assert answer.short_answer is None and answer.notice is None
    assert answer.to_json()["short_answer"] is None
    assert answer.citations[0].quote == reading.candidates[0].text


@pytest.mark.reader
def test_an_unusable_artifact_falls_back_with_a_notice(
    fake_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "reader"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    off = Pipeline.load(fake_settings.replace(reader="off"))
    want = off.ask("Who did the children's secretary appoint?")
    with caplog.at_level("WARNING", logger="citechat"):
        pipe = Pipeline.load(fake_settings.replace(reader=str(broken)))
        got = pipe.ask("Who did the children's secretary appoint?")
        again = pipe.ask("Who did the children's secretary appoint?")
    assert got.text == want.text and got.citations == want.citations
    assert got.notice is not None and "reader model is not used" in got.notice
    assert "\n" not in got.notice and again.notice == got.notice
    warnings = [r for r in caplog.records if "reader not used" in r.getMessage()]
    assert len(warnings) == 1  # loaded (and warned) once per pipeline


def test_stage_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="depth"):
        ReaderStage(FakeReader(), depth=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight"):
        ReaderStage(FakeReader(), weight=1.5)  # type: ignore[arg-type]


def test_each_part_of_a_two_part_question_is_answered_and_cited(fake_settings: Settings) -> None:
    pipe = Pipeline.load(fake_settings.replace(reader="off"))
    question = "Who did the children's secretary appoint, and what closed schools across London?"
    reading = pipe.read(question, 5)
    assert [p.question for p in reading.parts] == [
        "Who did the children's secretary appoint?",
        "What closed schools across London?",
    ]
    answer = pipe.ask(question)
    cited = {c.doc_id for c in answer.citations}
    assert cited == {"balls.txt", "weather.txt"}
    assert "Peter Lewis" in answer.text and "Heavy snow closed schools" in answer.text
    assert pipe.read("Who did the children's secretary appoint?", 5).parts == ()


def test_a_part_the_reader_finds_unanswered_is_left_out(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    pipe = _with_reader(monkeypatch, fake_settings, FakeReader())
    answer = pipe.ask(
        "Who did the children's secretary appoint, and what closed schools across London?"
    )
    # the fake reader answers only "Peter Lewis": the snow part is not quoted
    assert {c.doc_id for c in answer.citations} == {"balls.txt"}
    assert answer.short_answer is not None and answer.short_answer.text == "Peter Lewis"


class FakeDenseReader(FakeReader):
    """A dense reader: its scores carry a cosine (high for the sentences holding
    ``answer``), no span, and it leaves declining to the abstention model."""

    declines = False
    gives_cosine = True

    def score(self, question: str, items: Sequence[ReaderInput]) -> list[ReaderScore]:
        return [
            ReaderScore(s.p_answer, s.logit, None, "", cosine=0.9 if s.span else 0.1)
            for s in super().score(question, items)
        ]


def test_a_dense_reader_swaps_the_cosine_and_leaves_declining_to_the_abstention_model(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    from citechat.rereading import COSINE_WEIGHT, DEPTH

    question = "Who was named to lead schools in London on Monday?"
    off = Pipeline.load(fake_settings.replace(reader="off"))
    before = {(c.hit.chunk.doc_id, c.start): c for c in off.read(question, 5).candidates}
    pipe = _with_reader(monkeypatch, fake_settings, FakeDenseReader())
    reading = pipe.read(question, 5)
    assert reading.p_unanswerable is None  # the abstention model decides
    assert len(reading.candidates) == len(before)
    lewis = [i for i, c in enumerate(reading.candidates) if "Peter Lewis" in c.text]
    was = [i for i, c in enumerate(off.read(question, 5).candidates) if "Peter Lewis" in c.text]
    assert lewis and lewis[0] < was[0]  # the reader's yes moves it up
    read = reading.candidates[:DEPTH]
    assert [c.score for c in read] == sorted((c.score for c in read), reverse=True)
    for i, c in enumerate(reading.candidates):
        b = before[c.hit.chunk.doc_id, c.start]
        if i < DEPTH:
            cos = 0.9 if "Peter Lewis" in c.text else 0.1
            want = b.score + COSINE_WEIGHT * b.penalty * (cos - b.cosine)
            assert c.score == pytest.approx(want) and c.short is None
        else:  # unread: the heuristic's score, unscaled
            assert c.score == b.score and c.reader is None
    answer = pipe.ask(question)
    assert not answer.abstained and answer.short_answer is None
    assert answer.citations[0].quote == reading.candidates[0].text


def test_the_index_sentences_are_prepared_once_when_the_reader_loads(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    reader = FakeDenseReader()
    pipe = _with_reader(monkeypatch, fake_settings, reader)
    pipe.ask("Who was named to lead schools in London on Monday?")
    pipe.ask("What closed the schools?")
    assert len(reader.prepared) == 1  # once, not per question
    index = pipe.index
    want = {(a, index.documents[c.doc_id].text[a:b]) for c in index.chunks for a, b in c.sentences}
    assert {(i.start, i.sentence) for i in reader.prepared[0]} == want and want
    assert all(i.header for i in reader.prepared[0])  # the chunk header, as at answer time
    stage = ReaderStage(reader)  # type: ignore[arg-type]
    assert stage.prepare(index, limit=1) == 0  # too big: embedded on first use instead
    assert len(reader.prepared) == 1


def test_a_reader_with_its_own_abstention_model_decides_on_its_cosine(
    monkeypatch: pytest.MonkeyPatch, fake_settings: Settings
) -> None:
    import citechat.pipeline
    from citechat.abstention import FEATURES, AbstentionModel

    question = "Who was named to lead schools in London on Monday?"
    plain = _with_reader(monkeypatch, fake_settings, FakeDenseReader())
    assert plain.read(question, 5).features["reader_cosine"] == pytest.approx(0.9)
    assert not plain.ask(question).abstained
    # weight only on the reader's cosine: 0.9 answers, a best cosine of 0.1 declines
    coef = tuple(10.0 if name == "reader_cosine" else 0.0 for name in FEATURES)
    own = AbstentionModel(coef, -5.0, 0.5, "test")
    stage = ReaderStage(FakeDenseReader(), abstention=own)  # type: ignore[arg-type]
    monkeypatch.setattr(citechat.pipeline, "load_reader", lambda spec: ReaderChoice(stage))
    pipe = Pipeline.load(fake_settings)
    reading = pipe.read(question, 5)
    assert reading.abstention is own
    assert not pipe.ask(question).abstained
    # every cosine 0.1 from here
    stage.reader = FakeDenseReader(answer="no sentence says this")  # type: ignore[assignment]
    assert pipe.read(question, 5).features["reader_cosine"] == pytest.approx(0.1)
    assert pipe.ask(question).abstained
