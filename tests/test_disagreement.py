"""Where sources disagree (disagreement.py): typed claims compared across sources, the
"Sources disagree" line that follows the answer, its JSON field, and the eval's
precision and recall of the flag (disagreement_eval.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from citechat.disagreement import Passage, find_conflict
from citechat.disagreement_eval import disagreement_summary
from citechat.evaluation import run_eval
from citechat.pipeline import Pipeline
from citechat.typedvalues import number_value
from helpers import pipeline_over, write

VISITS = "How many times was Baby P seen by professionals?"


def flagged(question: str, *texts: str, dates: tuple[str | None, ...] = ()) -> bool:
    """Whether the detector finds a conflict among ``texts``, each its own source."""
    passages = [
        Passage(t, f"source-{i}", written=dates[i] if i < len(dates) else None)
        for i, t in enumerate(texts)
    ]
    return find_conflict(question, passages) is not None


def test_agreeing_sources_are_not_flagged() -> None:
    assert not flagged(
        VISITS, "Baby P was seen 60 times by professionals.", "Professionals saw Baby P 60 times."
    )
    # a date that refines another: 3 August 2007 is in August 2007, and in 2007
    assert not flagged(
        "When did Baby P die?",
        "Baby P sadly died on 3rd August 2007.",
        "Baby P died in August 2007, despite being monitored.",
        "Baby P died in 2007.",
    )
    # a surname is the full name
    assert not flagged(
        "Who did Ed Balls appoint as director?",
        "Ed Balls appointed Peter Lewis as director.",
        "Ed Balls appointed Lewis as the new director.",
    )


def test_disagreeing_sources_are_flagged_with_each_side() -> None:
    passages = [
        Passage("Baby P was seen sixty times by professionals.", "a"),
        Passage("Snow closed schools across London.", "b"),
        Passage("Professionals saw Baby P 78 times.", "c"),
    ]
    conflict = find_conflict(VISITS, passages)
    assert conflict is not None
    assert conflict.kind == "number"
    assert (conflict.first.passage, conflict.first.text) == (0, "sixty")
    assert (conflict.second.passage, conflict.second.text) == (2, "78")
    assert flagged(
        "When did Ed Balls remove Sharon Shoesmith?",
        "Balls removed Shoesmith from her post in December 2008.",
        "Ed Balls removed Sharon Shoesmith in November 2008.",
    )
    assert flagged(
        "Who did Ed Balls appoint as director?",
        "Ed Balls appointed Peter Lewis as director.",
        "Ed Balls appointed Maria Kemp as director.",
    )
    assert flagged(
        "How old was Baby P when he died?",
        "Baby P was 14 months old when he died.",
        "The death of Baby P, a 17-month-old boy, shocked the country.",
    )


def test_number_words_and_bounds_are_read_as_values() -> None:
    assert number_value("five") == 5
    assert number_value("sixty-five") == 65
    assert not flagged(
        VISITS, "Baby P was seen five times by professionals.", "Professionals saw Baby P 5 times."
    )
    assert flagged(
        VISITS, "Baby P was seen five times by professionals.", "Professionals saw Baby P 6 times."
    )
    injuries = "How many injuries did Baby P suffer?"
    # "more than 50" holds 60, not 22
    assert not flagged(
        injuries, "Baby P suffered more than 50 injuries.", "Baby P suffered 60 injuries."
    )
    assert flagged(
        injuries, "Baby P suffered more than 50 injuries.", "Baby P suffered 22 injuries."
    )


def test_different_things_are_not_a_disagreement() -> None:
    cases = "How many cases did Baby P's social worker have?"
    # another count in the sentence: what is counted differs ("8 months", not cases)
    assert not flagged(
        VISITS,
        "Workers saw Baby P sixty times during the 8 months before he died, professionals said.",
        "Baby P was seen by professionals 60 times over 9 months.",
    )
    # an age is no count of months
    assert not flagged(
        "How many months was Baby P on the register?",
        "Baby P was on the register for eight months.",
        "Baby P was 14 months old when he was put on the register.",
    )
    # another subject: the caseload Laming recommended is not Baby P's social worker's
    assert not flagged(
        cases,
        "Baby P's social worker had 80 cases.",
        "Social workers are not kept to the 12 cases Laming recommended.",
    )
    # a range, or a change over time, is no rival value
    assert not flagged(
        "How many social workers left Haringey?",
        "Between 40 and 60 social workers left Haringey.",
        "Some 45 social workers left Haringey.",
        "The number of social workers who left Haringey rose from 12 to 30.",
    )
    # an age read seven years later has grown
    assert not flagged(
        "How old is Sharon Shoesmith?",
        "Sharon Shoesmith, 55, said the action fuelled a blame culture.",
        "Sharon Shoesmith, 62, spoke again on the radio.",
        dates=("2009-02-07", "2016-12-30"),
    )
    # one source contradicting itself is not two sources disagreeing
    same = [
        Passage("Baby P was seen 60 times by professionals.", "a"),
        Passage("Professionals saw Baby P 78 times.", "a"),
    ]
    assert find_conflict(VISITS, same) is None
    # a question that asks for no compared kind
    assert not flagged("What did the review find?", "It found 60 faults.", "It found 78 faults.")


def test_a_name_is_the_one_by_the_question_verb() -> None:
    conflict = find_conflict(
        "Who led the review of Haringey?",
        [
            Passage(
                "The review of Haringey, triggered by the Baby P case, was led by Ofsted.", "a"
            ),
            Passage("The review of Haringey was led by the Audit Commission.", "b"),
        ],
    )
    assert conflict is not None
    assert (conflict.first.text, conflict.second.text) == ("Ofsted", "Audit Commission")


def test_the_reader_short_answer_picks_the_claim() -> None:
    text = "Baby P was seen 60 times by professionals and 78 times by doctors."
    other = Passage("Professionals saw Baby P 78 times.", "b")
    at = text.index("60")
    conflict = find_conflict(VISITS, [Passage(text, "a", short=(at, at + 2)), other])
    assert conflict is not None and conflict.first.text == "60"


ARTICLE = (
    "Page last updated at 15:29 GMT, Saturday, 7 February 2009\n\n"
    "Injuries report\n\n"
    "Baby P suffered more than 50 injuries before he died, a court heard.\n\n"
    "Copyright © 2009 BBC. Read more.\n\n"
    "1 Responses to Injuries report\n\n"
    "  1. Lou 11 April , 2013 at 11:00 pm #\n\n"
    "    Baby P suffered 22 injuries before he died, the papers got it wrong.\n"
)
AGREEING = (
    "Page last updated at 10:00 GMT, Monday, 9 March 2009\n\n"
    "Ribs\n\n"
    "Baby P had eight fractured ribs when he died.\n\n"
    "Copyright © 2009 BBC. Read more.\n"
)


def test_had_before_a_count_stands_for_the_question_verb() -> None:
    ribs = "How many fractured ribs did Baby P suffer?"
    assert flagged(ribs, "Baby P suffered eight fractured ribs.", "Baby P had six fractured ribs.")
    assert flagged(
        "How many social workers did Haringey employ?",
        "Haringey employed 120 social workers.",
        "Haringey only had 90 social workers.",
    )
    # "had" is no "left in the year after the case": the sentence says less than asked
    assert not flagged(
        "How many social workers left Haringey in the year after the case?",
        "Some 45 social workers left Haringey in the year after the case.",
        "Haringey only had 90 social workers.",
    )
    # and it stands only just before the count of what is counted
    assert not flagged(ribs, "Baby P suffered eight fractured ribs.", "Baby P had, in all, six.")


@pytest.fixture
def news(tmp_path: Path) -> Pipeline:
    return pipeline_over(tmp_path, {"injuries.txt": ARTICLE, "ribs.txt": AGREEING})  # type: ignore[no-any-return]


def test_the_answer_says_sources_disagree_after_the_answer(news: Pipeline) -> None:
    answer = news.ask("How many injuries did Baby P suffer?")
    assert not answer.abstained
    d = answer.disagreement
    assert d is not None
    # the line follows the answer, never replaces it
    head, sep, line = answer.text.partition(" Sources disagree: ")
    assert sep and head and line.endswith(".")
    assert answer.sentences[-1].text == d.line
    by_n = {c.n: c for c in answer.citations}
    comment, article = sorted(d.sides, key=lambda s: s.text)  # "22" < "more than 50"
    assert (article.text, article.source, article.date) == (
        "more than 50",
        "BBC News (7 February 2009)",
        "2009-02-07",
    )
    assert (comment.text, comment.source, comment.date) == (
        "22",
        "a reader comment by Lou (11 April 2013)",
        "2013-04-11",
    )
    for side in d.sides:  # each side cites its own sentence, verbatim, its value in it
        assert by_n[side.n].quote == side.quote and side.text in side.quote
        assert "says “" in d.line and f"[{side.n}]" in d.line
    data = answer.to_json()
    assert data["disagreement"]["line"] == d.line
    assert [s["n"] for s in data["disagreement"]["sides"]] == [s.n for s in d.sides]
    assert {"n", "text", "source", "date", "quote"} <= set(data["disagreement"]["sides"][0])


def test_an_answer_without_a_disagreement_says_nothing_of_one(news: Pipeline) -> None:
    answer = news.ask("How many fractured ribs did Baby P have?")
    assert not answer.abstained
    assert answer.disagreement is None
    assert "Sources disagree" not in answer.text
    assert answer.to_json()["disagreement"] is None


def test_eval_reports_precision_and_recall_of_the_flag(news: Pipeline, tmp_path: Path) -> None:
    questions = write(
        tmp_path / "questions.jsonl",
        "\n".join(
            json.dumps(r)
            for r in (
                {
                    "id": "d",
                    "question": "How many injuries did Baby P suffer?",
                    "disagree": True,
                    "disagree_docs": ["injuries.txt"],
                },
                {
                    "id": "a",
                    "question": "How many fractured ribs did Baby P have?",
                    "disagree": False,
                },
                {"id": "m", "question": "What closed schools across London?", "disagree": True},
            )
        )
        + "\n",
    )
    out = tmp_path / "results.jsonl"
    result = run_eval(news.settings, questions, out, pipeline=news)
    summary = result.runs[0].summary["disagreement"]
    assert summary["cases"] == 3 and summary["disagreeing"] == 2
    assert (summary["true_positives"], summary["false_positives"]) == (1, 0)
    assert (summary["precision"], summary["recall"], summary["found_on_sources"]) == (1.0, 0.5, 1.0)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records[0]["disagreement"]["sides"] and records[1]["disagreement"] is None


def test_the_metric_counts_false_positives_and_skips_unlabelled_rows() -> None:
    rows: list[dict[str, Any]] = [{"disagree": False}, {"disagree": False}, {"question": "x"}]
    recs: list[dict[str, Any]] = [
        {"disagreement": {"sides": []}},
        {"disagreement": None},
        {"disagreement": {"sides": []}},
    ]
    summary = disagreement_summary(rows, recs)
    assert summary is not None
    assert (summary["cases"], summary["flagged"], summary["false_positives"]) == (2, 1, 1)
    assert (summary["precision"], summary["recall"]) == (0.0, None)
    assert disagreement_summary([{}], [{}]) is None


def test_a_follow_up_about_one_festival_is_no_disagreement_with_another(tmp_path: Path) -> None:
    """Who opened "it", after a question about the Aberdeen festival: the Bristol
    festival's opener is another fact, not the other side of this one."""
    files = {
        f"doc{i}.txt": f"The {a} festival\n\nThe {a} festival in {b} was opened by a troupe "
        f"of {d}. Every {a} player in {b} brought a picnic.\n"
        for i, (a, b, d) in enumerate(
            [("accordion", "Aberdeen", "alpacas"), ("bagpipe", "Bristol", "badgers")]
        )
    }
    pipe = pipeline_over(tmp_path, files)
    history = [("user", "Tell me about the festival in Aberdeen.")]
    answer = pipe.ask("Who opened it?", k=5, history=history)
    assert "alpacas" in answer.text
    assert answer.disagreement is None and "Sources disagree" not in answer.text
    assert {c.doc_id for c in answer.citations} == {"doc0.txt"}


def test_a_disagreement_is_said_where_the_answer_would_be_declined(news: Pipeline) -> None:
    from citechat.answering import ExtractiveAnswerer

    strict = ExtractiveAnswerer(news.retriever, abstention=None, threshold=2.0)  # declines all
    question = "How many injuries did Baby P suffer?"
    answer = strict.answer(question, news.read(question, 5))
    assert not answer.abstained and answer.disagreement is not None
    assert {s.text for s in answer.disagreement.sides} == {"more than 50", "22"}
    # without a disagreement it still declines
    plain = "How many fractured ribs did Baby P have?"
    assert strict.answer(plain, news.read(plain, 5)).abstained


def test_a_name_is_held_to_in_full_and_a_nameless_question_to_its_words() -> None:
    died = "In what year did Harvey Martin die?"
    harvey = Passage("Harvey Martin died in 2001.", "a", context="Super Bowl\nHarvey Martin died.")
    other = Passage("Martin died in 1546.", "b", context="Martin Luther\nMartin died in 1546.")
    assert find_conflict(died, [harvey, other]) is None
    again = Passage("Martin died in 2003.", "c", context="Harvey Martin, obituary\nMartin died.")
    assert find_conflict(died, [harvey, again]) is not None
    # no name and one word besides: nothing to hold a claim to
    assert not flagged('Who designed the "50"?', "Tiffany designed it.", "Tesla designed motors.")
    # no name: the sentence must say what the question says
    lock = "How many characters does the lock file of process 1230 contain?"
    assert flagged(
        lock,
        "If process 1230 holds a lock file, it would contain the eleven characters.",
        "A lock file held by process 1230 contains ten characters.",
    )
    assert not flagged(
        lock,
        "If process 1230 holds a lock file, it would contain the eleven characters.",
        "A file name contains ten characters.",
    )


def test_documents_of_one_title_are_one_source(tmp_path: Path) -> None:
    parts = {
        "part1.txt": "Injuries report\n\nBaby P suffered 22 injuries before he died.\n",
        "part2.txt": "Injuries report\n\nBaby P suffered more than 50 injuries before he died.\n",
    }
    question = "How many injuries did Baby P suffer?"
    one_work = pipeline_over(tmp_path / "one", parts)
    assert one_work.ask(question).disagreement is None
    parts["part2.txt"] = parts["part2.txt"].replace("Injuries report", "Court news")
    two_works = pipeline_over(tmp_path / "two", parts)
    assert two_works.ask(question).disagreement is not None


def test_what_is_counted_an_owner_and_a_title_are_read_as_they_are_meant() -> None:
    # the counted noun is the last plural before the verb, not the first two words
    maintainers = "How many volunteer package maintainers work on Debian?"
    assert flagged(
        maintainers,
        "About 800 volunteer package maintainers work on Debian.",
        "More than 1012 volunteer package maintainers are working on Debian.",
    )
    assert not flagged(
        maintainers,
        "About 800 volunteer package maintainers work on Debian.",
        "Maintainers work on Debian's over 59100 packages.",
    )
    # "ones" counts the noun the sentence has just named
    incidents = "How many major terrorist incidents have there been in recent American history?"
    assert flagged(
        incidents,
        "There have been three major terrorist incidents in recent American history.",
        "Of terrorist incidents there have been only 2 major ones in recent American history.",
    )
    assert not flagged(
        incidents,
        "There have been three major terrorist incidents in recent American history.",
        "There have been only 2 major ones in recent American history.",
    )
    # an owner is not who is asked about; the question's own words title a name
    secretary = "Who is the children's secretary?"
    assert not flagged(
        secretary,
        "Children's secretary Ed Balls and Ofsted stood by their actions.",
        "Children's Secretary Ed Balls rejected claims by Haringey's former head of "
        "children's services over the Baby P case.",
    )
    assert flagged(
        secretary,
        "Children's secretary Ed Balls and Ofsted stood by their actions.",
        "Children's Secretary Jim Knight rejected the claims.",
    )


def test_a_first_word_name_a_passive_verb_and_an_early_year_are_read() -> None:
    # a name that opens its sentence, when the passage writes it inside one too
    tabled = "Who tabled an EDM on the effectiveness of the ICS?"
    featherstone = Passage("Lynne Featherstone tabled an EDM on the effectiveness of the ICS.", "a")
    hemming = "Hemming has today tabled a EDM looking at the effectiveness of the ICS."
    assert find_conflict(tabled, [featherstone, Passage(hemming, "b")]) is None
    named = Passage(hemming, "b", context=f"John Hemming MP wrote in. {hemming}")
    assert find_conflict(tabled, [featherstone, named]) is not None
    # a passive question's verb ends it; the date may sit by it or by the first word
    goal = "When was the goal of developing a more comprehensive version of FSSTND adopted?"
    assert flagged(
        goal,
        "The goal of developing a more comprehensive version of FSSTND was adopted in 1997.",
        "In early 1995, the goal of developing a more comprehensive version of FSSTND was "
        "adopted with the help of members of the BSD development community.",
    )
    # a name that holds the question's subject is the subject, not a rival
    assert not flagged(
        "Who created the Debian Project?",
        "The Debian Project was created by Ian Murdock in 1993.",
        "Debian-derived distributions are being created by the Debian project and others.",
    )


def test_a_sentence_must_say_what_the_question_says_and_may_leave_its_subject_around() -> None:
    # another decision of the same committee is no second answer to "when"
    question = "When did the Debian Technical Committee decide that the default init system should be systemd?"  # noqa: E501
    assert not flagged(
        question,
        "In February 2014 the Debian Technical Committee decided that the default init system should be systemd.",  # noqa: E501
        "In November 2014 the Debian Technical Committee decided that systemd-shim should be listed first.",  # noqa: E501
    )
    # both of a question's two words: "designed … the Regenstein Library" is no garden
    assert not flagged(
        "Who designed the garden for the University Library?",
        "The University Library garden, designed by Irena Bajerska, was opened in 2002.",
        "The Regenstein Library of the university was designed by Walter Netsch.",
    )
    # a comment that leaves out the subject its page names: compared when it says all else
    board = "How many times did Haringey's safeguarding board meet in 2008?"
    first = Passage("Haringey's safeguarding board met 14 times in 2008.", "page")
    bare = "The safeguarding board met only 9 times in 2008."
    around = "Radio transcript: the Haringey inspections. Haringey's safeguarding board met."
    assert find_conflict(board, [first, Passage(bare, "comment", context=around)]) is not None
    assert find_conflict(board, [first, Passage(bare, "comment")]) is None
    # but a subject half named is another one ("Debian GNU/Linux" is not the "Debian Project")
    assert not flagged(
        "Who created the Debian Project?",
        "The Debian Project was created by Ian Murdock in 1993.",
        "Debian GNU/Linux is the result of an effort to create a free Unix-compatible system.",
    )


def test_a_credit_answers_who_wrote_and_a_shared_first_name_is_not_one_person() -> None:
    credits = "Parts came from: the Debian-1.1 release announcement, by Bruce Perens, the Linux FAQ, by Ian Jackson, and the manuals."  # noqa: E501
    c = find_conflict(
        "Who wrote the Linux FAQ?",
        [Passage("The Linux FAQ was written by Ian Murdock.", "a"), Passage(credits, "b")],
    )
    assert c is not None and (c.first.text, c.second.text) == ("Ian Murdock", "Ian Jackson")
    assert not flagged(
        "Who wrote the Linux FAQ?",
        "The Linux FAQ was written by Ian Jackson.",
        "the Linux FAQ, by Ian Jackson, and the manuals.",
    )


def test_counts_ages_and_versions_are_read_as_they_are_meant() -> None:
    # "two kinds: binary packages" counts kinds, not packages
    assert not flagged(
        "How many packages does Debian come with?",
        "Debian comes with more than 59100 packages.",
        "Debian packages come in two kinds: binary packages and source packages.",
    )
    # "was 44 at the time", said of the time the question's "when" clause names
    assert flagged(
        "How old was Ed Balls when he defended his decision?",
        "Ed Balls, 41, defended his decision on the programme.",
        "And Ed Balls was 44 at the time, not 41.",
    )
    # Debian 8 is not Debian 6.0
    assert not flagged(
        "When was Debian 6.0 Squeeze released?",
        "Debian 6.0 Squeeze, released in February 2011, dropped hppa.",
        "Debian 8 jessie, released in April 2016, shipped systemd as default init.",
    )


def test_a_second_search_finds_the_other_side_beyond_the_top_k(tmp_path: Path) -> None:
    filler = {
        f"note{i}.txt": f"Council note {i}\n\nHaringey social services met ({i}) on budgets.\n"
        for i in range(6)
    }
    files = {
        "hearing.txt": "Hearing report\n\nBaby P's social worker had 18 cases at the time.\n",
        "union.txt": "Union letter\n\nThe union wrote to the council about pay. Baby P's social worker had 80 cases.\n",  # noqa: E501
        **filler,
    }
    pipe = pipeline_over(tmp_path, files)
    question = "How many cases did Baby P's social worker have?"
    assert len(pipe.read(question, 1).hits) == 1  # the question's own retrieval: one chunk
    d = pipe.ask(question, k=1).disagreement
    assert d is not None
    assert {s.text for s in d.sides} == {"18", "80"}
