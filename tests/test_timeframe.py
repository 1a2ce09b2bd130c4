"""Questions about time (timeframe.py): "by February 2009", "before/after/since <date>",
"the latest on …" rank and filter passages by their documents' dates, and the answer
says as of when; every other question is answered exactly as before."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from citechat.pipeline import Pipeline
from citechat.timeframe import TimeFrame, time_frame
from helpers import pipeline_over

ROOT = Path(__file__).resolve().parents[1]
SEED_SETS = ("questions.jsonl", "questions_reader.jsonl")

OLD = (
    "Page last updated at 15:29 GMT, Saturday, 7 February 2009\n\n"
    "Ferry timetable\n\n"
    "The harbour ferry to the island sailed twice a day from the north quay.\n"
)
NEW = (
    "Page last updated at 09:10 GMT, Monday, 5 March 2012\n\n"
    "Ferry timetable changed\n\n"
    "The harbour ferry to the island now sails four times a day from the south quay.\n"
)


@pytest.fixture
def ferries(tmp_path: Path) -> Pipeline:
    return pipeline_over(tmp_path, {"old.txt": OLD, "new.txt": NEW})  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("question", "frame"),
    [
        (
            "What had happened by February 2009?",
            TimeFrame("by February 2009", None, date(2009, 2, 28)),
        ),
        ("As of 2010, who ran it?", TimeFrame("As of 2010", None, date(2010, 12, 31))),
        (
            "What did he say before 7 February 2009?",
            TimeFrame("before 7 February 2009", None, date(2009, 2, 6)),
        ),
        ("What changed after Feb. 2009?", TimeFrame("after Feb. 2009", date(2009, 3, 1), None)),
        ("What has he said since 2013?", TimeFrame("since 2013", date(2013, 1, 1), None)),
        ("What is the latest on the ferry?", TimeFrame("latest", latest=True)),
        ("Who is the current director?", TimeFrame("current", latest=True)),
        (
            "What was the most recent report up to March 5, 2012?",
            TimeFrame("up to March 5, 2012; most recent", None, date(2012, 3, 5), True),
        ),
    ],
)
def test_time_words_are_read(question: str, frame: TimeFrame) -> None:
    assert time_frame(question) == frame


@pytest.mark.parametrize(
    "question",
    [
        "How many times was Baby P seen by professionals before he died?",
        "What had FEMA shifted its priorities to by the time Hurricane Katrina struck?",
        "When did Baby P die?",
        "What happened after the review in 2009?",  # a year, but no bound word before it
        "By the blogger's count, how many acts were there?",
    ],
)
def test_other_questions_have_no_time_frame(question: str) -> None:
    assert time_frame(question) is None


@pytest.mark.parametrize("name", SEED_SETS)
def test_no_seed_question_is_read_as_a_time_question(name: str) -> None:
    """The seed sets' answers stay what they were: none of their questions has a frame."""
    path = ROOT / "eval/datasets/seed" / name
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    assert rows
    assert [r["id"] for r in rows if time_frame(r["question"]) is not None] == []


def test_by_a_date_leaves_out_later_documents_and_says_as_of_when(ferries: Pipeline) -> None:
    answer = ferries.ask("How often did the harbour ferry to the island sail by February 2009?")
    assert answer.citations and {c.doc_id for c in answer.citations} == {"old.txt"}
    assert answer.text.startswith("As of 7 February 2009 [1]: ")
    assert "twice a day" in answer.text
    assert answer.notice is not None and "dated after 28 February 2009" in answer.notice
    assert all(h.chunk.doc_id != "new.txt" for h in answer.hits)
    assert [h.rank for h in answer.hits] == list(range(1, len(answer.hits) + 1))
    # the lead is a sentence of its own, citing the source whose date it gives
    assert answer.sentences[0].text == "As of 7 February 2009 [1]:"
    assert answer.sentences[0].citations == (1,)


def test_latest_prefers_the_newest_dated_source(ferries: Pipeline) -> None:
    plain = ferries.ask("How often does the harbour ferry to the island sail?")
    latest = ferries.ask("What is the latest on how often the harbour ferry to the island sails?")
    assert latest.citations[0].doc_id == "new.txt"
    assert latest.text.startswith("As of 5 March 2012 [")
    assert "four times a day" in latest.text
    assert not plain.text.startswith("As of")  # no time words: no frame, no lead


def test_after_a_date_leaves_out_earlier_documents(ferries: Pipeline) -> None:
    answer = ferries.ask("How often did the harbour ferry to the island sail after 2010?")
    assert {c.doc_id for c in answer.citations} == {"new.txt"}
    assert answer.text.startswith("As of 5 March 2012 [1]: ")


def test_undated_sources_are_kept_and_the_answer_says_it_cannot_date_them(
    tmp_path: Path,
) -> None:
    pipe = pipeline_over(tmp_path, {"ferry.txt": "Ferry\n\nThe ferry sails twice a day.\n"})
    answer = pipe.ask("What is the latest on how often the ferry sails?")
    assert answer.citations and answer.citations[0].doc_id == "ferry.txt"
    assert not answer.text.startswith("As of")
    assert answer.notice is not None and "None of the cited sources gives its date." in (
        answer.notice
    )


def test_the_time_question_set_is_verbatim_and_every_question_has_a_frame() -> None:
    folder = ROOT / "eval/datasets/seed"
    rows = [
        json.loads(line)
        for line in (folder / "questions_time.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    others = {
        json.loads(line)["id"]
        for name in SEED_SETS
        for line in (folder / name).read_text(encoding="utf-8").splitlines()
        if line
    }
    ids = [r["id"] for r in rows]
    assert len(rows) >= 5 and len(set(ids)) == len(ids) and not set(ids) & others
    for r in rows:
        assert time_frame(r["question"]) is not None, r["id"]
        assert r["answerable"] == bool(r["answers"]) == bool(r["evidence"]), r["id"]
        for e in r["evidence"]:
            assert e["doc"] in r["gold_docs"]
            assert e["quote"] in (ROOT / "corpus" / e["doc"]).read_text(encoding="utf-8")
        texts = [
            " ".join((ROOT / "corpus" / d).read_text(encoding="utf-8").split())
            for d in r["gold_docs"]
        ]
        for a in r["answers"]:
            assert any(a.casefold() in t.casefold() for t in texts), (r["id"], a)


def test_an_undated_comment_counts_as_written_no_earlier_than_its_page(tmp_path: Path) -> None:
    later = (
        "Page last updated at 09:10 GMT, Monday, 5 March 2012\n\n"
        "Ferry news\n\n"
        "The island council met on Monday.\n\n"
        "One thought on “Ferry news”\n\n"
        "  1. The harbour ferry to the island sailed twice a day from the north quay.\n\n"
        "Leave a Reply\n"
    )
    pipe = pipeline_over(tmp_path, {"old.txt": OLD, "later.txt": later})
    doc = pipe.index.documents["later.txt"]
    comment = next(s for s in doc.sections if s.kind == "comment")
    assert comment.date is None  # the comment has no date of its own
    answer = pipe.ask("How often did the harbour ferry to the island sail by February 2009?")
    assert {c.doc_id for c in answer.citations} == {"old.txt"}
    assert all(h.chunk.doc_id != "later.txt" for h in answer.hits)


def test_currently_in_a_relative_clause_asks_for_no_latest() -> None:
    from citechat.timeframe import time_frame

    assert time_frame("Which file records who is currently using the system?") is None
    assert time_frame("Which packages that are currently installed are obsolete?") is None
    frame = time_frame("Who is currently the director of children's services?")
    assert frame is not None and frame.latest
    frame = time_frame("What is the current state of the review?")
    assert frame is not None and frame.latest
