"""What a question says about where its answer is (questions.py), and how reading and
answering use it: a quoted question is answered by the sentence that holds the quote
(and never declined), a question naming a commenter is answered from their comment,
a "how many" question is not answered by a year, an "on what day" one not by a month."""

from __future__ import annotations

from pathlib import Path

import pytest

import citechat.reading
from citechat.answertypes import answer_phrases, answer_type
from citechat.pipeline import Pipeline
from citechat.questions import (
    holds_quote,
    named_commenter,
    quotes,
    same_commenter,
    without_commenter,
)
from helpers import pipeline_over

ARTICLE = (
    "Council review published\n\n"
    "The council published its review of the borough's children's services in 2009. "
    "The review found that managers rarely checked the records kept by staff. "
    "Officials said the review would be discussed at the next council meeting in March.\n\n"
    "3 Responses to Council review published\n\n"
    "  1. Adams 11 April , 2013 at 11:00 pm #\n\n"
    "    The review says nothing new. However BLAMING IS NOT THE ANSWER.Support staff instead.\n\n"
    "  2. Lou 12 April , 2013 at 9:00 am #\n\n"
    "    Nothing will change after the meeting, whatever it is told.\n\n"
    "  3. Frustrated 13 April , 2013 at 8:00 am #\n\n"
    "    Managers know that the worst they will get is a written warning.\n"
)


@pytest.fixture
def news(tmp_path: Path) -> Pipeline:
    return pipeline_over(tmp_path, {"review.txt": ARTICLE})  # type: ignore[no-any-return]


def test_quotes_need_three_words_and_any_quote_marks() -> None:
    assert quotes('Who said "we cannot stop people"?') == ("we cannot stop people",)
    assert quotes("Who said “blaming is not the answer”?") == ("blaming is not the answer",)
    assert quotes("Who wrote 'the system is broken'?") == ("the system is broken",)
    assert quotes("What did the ‘joined-up’ panel decide?") == ()  # a phrase, not a quote
    assert quotes("What did Balls's review say?") == ()  # apostrophes are not quotes


def test_a_quote_matches_verbatim_up_to_case_and_punctuation_only() -> None:
    assert holds_quote("She said: “We can’t stop people, ever.”", "we can't stop people")
    assert not holds_quote("We can stop people.", "we can't stop people")
    assert not holds_quote("We can’t stop", "we can't stop people from going")  # too short
    # one whole sentence of a quote that runs over two
    assert holds_quote("It was a local tragedy.", "It was a local tragedy. Nobody saw it")


def test_named_commenters_and_who_they_are() -> None:
    assert named_commenter("What does the commenter signing as Frustrated say?") == "Frustrated"
    assert named_commenter("Why does commenter Adam want a new body?") == "Adam"
    assert named_commenter("What did a comment by Nick Bromley argue?") == "Nick Bromley"
    assert named_commenter("What did the reader's comments say?") is None
    assert same_commenter("nick", "Nick Bromley") and not same_commenter("Adam", "Adams")


def test_a_quoted_question_is_answered_by_the_quote_and_not_declined(news: Pipeline) -> None:
    question = 'Who said "BLAMING IS NOT THE ANSWER"?'
    reading = news.read(question, 5)
    assert reading.candidates[0].quoted
    assert "BLAMING IS NOT THE ANSWER" in reading.candidates[0].text
    answer = news.ask(question)
    assert not answer.abstained
    assert answer.citations[0].commenter == "Adams"
    assert "A reader comment by Adams (11 April 2013) says" in answer.text


def test_an_unquoted_question_has_no_quoted_candidate(news: Pipeline) -> None:
    reading = news.read("Who said blaming is not the answer?", 5)
    assert not any(c.quoted for c in reading.candidates)


def test_a_named_commenter_is_read_before_other_voices(
    news: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "What does the commenter Lou say managers will get?"
    named = news.read(question, 5)
    assert named.candidates[0].hit.chunk.commenter == "Lou"
    # every other voice is scored below, but still there
    assert any(c.hit.chunk.commenter != "Lou" for c in named.candidates)
    # without the name read from the question, Frustrated's words about managers win
    monkeypatch.setattr(citechat.reading, "named_commenter", lambda q: None)
    plain = news.read(question, 5)
    assert plain.candidates[0].hit.chunk.commenter == "Frustrated"


def test_a_named_commenter_who_was_not_retrieved_changes_nothing(
    news: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "What does commenter Zed say about the review of staff records?"
    a = news.read(question, 5)
    monkeypatch.setattr(citechat.reading, "named_commenter", lambda q: None)
    b = news.read(question, 5)
    assert [(c.start, round(c.score, 9)) for c in a.candidates] == [
        (c.start, round(c.score, 9)) for c in b.candidates
    ]


def test_how_many_is_not_answered_by_a_year_or_a_date() -> None:
    s = "On 7 February 2009 the review counted 60 visits and twelve failures."
    assert [s[a:b] for a, b in answer_phrases(s, "number")] == ["60", "twelve"]


def test_on_what_day_wants_a_day_not_a_month() -> None:
    assert answer_type("On what day did he resign?") == "day"
    assert answer_type("What date was the review?") == "day"
    assert answer_type("In what year did he resign?") == "time"
    assert answer_phrases("He resigned in December 2008.", "day") == []
    s = "He resigned on 1 December, a Monday; she left on Dec. 3rd."
    assert [s[a:b] for a, b in answer_phrases(s, "day")] == ["1 December", "Monday", "Dec. 3rd"]


def test_the_words_naming_a_retrieved_commenter_are_not_what_the_answer_must_say(
    news: Pipeline,
) -> None:
    named = news.read("According to commenter Frustrated, what will managers get?", 5)
    assert named.candidates[0].hit.chunk.commenter == "Frustrated"
    # "according", "commenter" and the name say whose words to read, not what they say
    assert named._asked.terms == {"manag", "get"}
    # a name no retrieved comment carries is part of what is asked
    other = news.read("According to commenter Zed, what will managers get?", 5)
    assert other._asked.terms == {"accord", "comment", "zed", "manag", "get"}
    assert without_commenter("According to commenter Zed, what will managers get?") == (
        "what will managers get?"
    )


def test_how_often_wants_a_frequency() -> None:
    assert answer_type("How often did Ed Balls demand updates?") == "frequency"
    assert answer_type("How many times was he seen?") == "number"
    s = "He has demanded monthly updates and visits twice a year, 3 times in all."
    assert [s[a:b] for a, b in answer_phrases(s, "frequency")] == ["monthly", "twice", "3 times"]
    assert answer_phrases("He demanded updates on progress.", "frequency") == []


def test_how_old_wants_an_age() -> None:
    assert answer_type("How old was Sharon Shoesmith at the time?") == "age"
    assert answer_type("How long did the trial last?") == "number"
    s = "Sharon Shoesmith, 55, said the 17-month-old boy and a man aged 36 had 3 visits."
    assert [s[a:b] for a, b in answer_phrases(s, "age")] == ["55", "17-month-old", "aged 36"]
    assert answer_phrases("In 2008, 60 visits were made.", "age") == []
