"""Whose words an answer quotes, and when (provenance.py): the extractive answer
attributes an article's first quote to its publisher and date and every reader comment
to its commenter and date; the source cards and the export say the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from citechat.evaluation import quoted_verbatim
from citechat.pipeline import Pipeline
from citechat.provenance import Provenance, human_date, provenance
from citechat.render import export_markdown, render_sources
from citechat.types import Citation, Document, Section
from helpers import pipeline_over

ARTICLE = (
    "Page last updated at 15:29 GMT, Saturday, 7 February 2009\n\n"
    "Council review published\n\n"
    "The council review found that managers rarely checked the records kept by staff. "
    "The council review also found that managers rarely met staff. "
    "The council lost an appeal against the review last month.\n\n"
    "Copyright © 2009 BBC. Read more.\n\n"
    "2 Responses to Council review published\n\n"
    "  1. Lou 11 April , 2013 at 11:00 pm #\n\n"
    "    The council review is right that managers never checked the records.\n"
)


@pytest.fixture
def news(tmp_path: Path) -> Pipeline:
    return pipeline_over(tmp_path, {"review.txt": ARTICLE})  # type: ignore[no-any-return]


def test_the_corpus_reads_the_publisher_and_dates_the_answer_names(news: Pipeline) -> None:
    doc = news.index.documents["review.txt"]
    assert (doc.source, doc.date) == ("BBC News", "2009-02-07")
    comment = next(s for s in doc.sections if s.kind == "comment")
    assert (comment.commenter, comment.date) == ("Lou", "2013-04-11")


def test_an_article_quote_names_its_publisher_and_date_once(news: Pipeline) -> None:
    answer = news.ask("What did the council review find that managers rarely did?")
    body = [c for c in answer.citations if c.section == "body"]
    assert len(body) == 2
    # the article's first quote names its publisher and date; the next does not repeat it
    assert answer.text.count("According to BBC News (7 February 2009): “") == 1
    assert answer.text.startswith(f"According to BBC News (7 February 2009): “{body[0].quote}” [1]")
    assert f" {body[1].quote} [2]" in answer.text


def test_a_comment_quote_names_its_commenter_and_date(news: Pipeline) -> None:
    answer = news.ask("Is the council review right that managers never checked the records?")
    comment = next(c for c in answer.citations if c.section == "comment")
    said = f"A reader comment by Lou (11 April 2013) says: “{comment.quote}” [{comment.n}]"
    assert said in answer.text


def test_cards_and_export_show_publisher_date_and_commenter(news: Pipeline) -> None:
    article = news.ask("What did the council review find that managers rarely did?")
    comment = news.ask("Is the council review right that managers never checked the records?")
    cards = render_sources(news, article) + render_sources(news, comment)
    assert "BBC News · 7 February 2009 · article" in cards
    assert "BBC News · 7 February 2009 · reader comment by Lou, 11 April 2013" in cards
    exported = export_markdown(news, [article, comment])
    assert "BBC News · 7 February 2009 · article" in exported
    assert "reader comment by Lou, 11 April 2013" in exported


def test_nothing_unknown_is_invented() -> None:
    doc = Document("d", "Some text here.", "T", (Section("body", 0, 15),))
    cit = Citation(1, "d", "T", "body", None, 0, 15, "Some text here.")
    assert provenance(doc, cit) == Provenance(None, None)
    assert provenance(doc, cit).said_by() is None
    assert provenance(None, cit).meta() == "article"
    assert human_date("sometime in 2009") == "sometime in 2009"


def test_a_relative_date_is_read_against_the_page_date(news: Pipeline) -> None:
    answer = news.ask("When did the council lose its appeal against the review?")
    assert "last month.” [1] (“last month”: January 2009)" in answer.text
    # the evaluation still reads the sentence as a verbatim quote
    sentence = {"text": answer.sentences[0].text, "citations": [1]}
    assert quoted_verbatim(sentence, {1: answer.citations[0].quote})
