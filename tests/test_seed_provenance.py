"""Issue 16's target over the real seed corpus (corpus/): every body citation's card
shows its publisher and date, every comment citation's card its commenter.

The card of every citable section of the five files is built as the chat builds it
(``provenance(doc, citation).meta()``, which ``render_sources`` shows) and compared
with what a person reading each page finds on it (``PAGES``, written by hand from the
files).  The target itself is not met: three pages name no publisher, three bodies
give no date and the two blog pages show no commenter names, and citechat invents
none of them; ``test_the_target`` records that as a strict xfail, so supplying the
missing metadata (or a reader that finds more) makes it pass loudly.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from citechat.corpus import load_corpus
from citechat.provenance import human_date, provenance
from citechat.types import Citation, Document

SEED = Path(__file__).resolve().parents[1] / "corpus"

#: doc id prefix -> (publisher, date of the body, commenters in order, their date):
#: what each page itself says (None: the page does not say)
PAGES: dict[str, tuple[str | None, str | None, list[str | None], str | None]] = {
    # a blog post: "Today [30th Dec 2016]"; no blog name; the one comment is unsigned
    "000": (None, "30 December 2016", [None], None),
    # a blog post: no name, no date; "0 thoughts on" and four unsigned comments
    "001": (None, None, [None] * 4, None),
    # "More from Community Care"; the article gives no date ("on Saturday", "last December")
    "002": ("Community Care", None, [], None),
    # the Community Care masthead, "by Amy Taylor", no article date; 15 signed, dated comments
    "003": (
        "Community Care",
        None,
        [
            "Jerry Lonsdale",
            "Pip",
            "Layton",
            "Tally",
            "MrsK",
            "Frustrated",
            "John Hemming MP",
            "Moira",
            "JIMB",
            "JuliaM",
            "Adam",
            "Nick Bromley",
            "Adams",
            "nalini",
            "Lou",
        ],
        "11 April 2013",
    ),
    # "Page last updated at 15:29 GMT, Saturday, 7 February 2009"; BBC; no comments
    "004": ("BBC News", "7 February 2009", [], None),
}


def _cards() -> list[tuple[Document, Citation, str]]:
    """(document, citation, card label) for every body and comment section of the seed."""
    out = []
    for doc in load_corpus(SEED):
        for s in doc.sections:
            cit = Citation(
                1, doc.doc_id, doc.title, s.kind, s.commenter, s.start, s.end, doc.section_text(s)
            )
            out.append((doc, cit, provenance(doc, cit).meta()))
    return out


CARDS = _cards()


def test_every_seed_card_shows_what_its_page_says() -> None:
    assert sorted({d.doc_id[:3] for d, _, _ in CARDS}) == sorted(PAGES)
    for doc, cit, label in CARDS:
        publisher, when, commenters, comment_date = PAGES[doc.doc_id[:3]]
        head = [p for p in (publisher, when) if p]
        if cit.section == "body":
            assert label == " · ".join([*head, "article"]), (doc.doc_id, label)
            continue
        n = [c for _, c, _ in CARDS if c.doc_id == doc.doc_id and c.section == "comment"]
        who = commenters[n.index(cit)]
        kind = f"reader comment by {who}" if who else "reader comment"
        assert label == " · ".join([*head, f"{kind}, {comment_date}" if comment_date else kind])


def test_every_comment_the_page_signs_names_its_commenter() -> None:
    signed = [(c.doc_id[:3], c.commenter) for _, c, _ in CARDS if c.section == "comment"]
    expected = [(p, who) for p, (_, _, names, _) in PAGES.items() for who in names]
    assert signed == expected
    for _, cit, label in CARDS:
        if cit.commenter:
            assert f"reader comment by {cit.commenter}" in label


def _missing() -> list[str]:
    out = []
    for doc, cit, label in CARDS:
        if cit.section == "body":
            if not doc.source or doc.source not in label:
                out.append(f"{doc.doc_id} body: no publisher")
            if not doc.date or (human_date(doc.date) or doc.date) not in label:
                out.append(f"{doc.doc_id} body: no date")
        elif not cit.commenter:
            out.append(f"{doc.doc_id} comment at {cit.start}: no commenter")
    return out


@pytest.mark.xfail(
    strict=True,
    reason="the seed pages 000, 001 name no publisher, 001, 002, 003 give no body date, "
    "000 and 001 sign no comment: citechat does not invent them",
)
def test_the_target_every_body_card_has_publisher_and_date_every_comment_its_commenter() -> None:
    assert _missing() == []


def test_the_targets_gaps_are_exactly_what_the_pages_leave_out() -> None:
    # 6 body cards (004 has two body sections): 2 without a publisher (000, 001), 3
    # without a date (001, 002, 003);
    # 20 comment cards: 5 unsigned (000's one, 001's four)
    missing = _missing()
    assert len([m for m in missing if "publisher" in m]) == 2
    assert len([m for m in missing if "no date" in m]) == 3
    assert len([m for m in missing if "commenter" in m]) == 5
    bodies = [c for _, c, _ in CARDS if c.section == "body"]
    comments = [c for _, c, _ in CARDS if c.section == "comment"]
    assert (len(bodies), len(comments)) == (6, 20)


def test_the_chats_source_cards_carry_these_labels(tmp_path: Path) -> None:
    from citechat.config import Settings
    from citechat.pipeline import Pipeline
    from citechat.render import esc, render_sources
    from citechat.types import Answer

    pipe = Pipeline.load(Settings(corpus=SEED, index=tmp_path / "index", embedder="hashing-256"))
    cits = tuple(replace(c, n=i) for i, (_, c, _) in enumerate(CARDS, 1))
    html = render_sources(pipe, Answer("q", "", cits, False))
    metas = re.findall(r"<div class='cc-meta'>(.*?)</div>", html)
    assert metas == [esc(label) for _, _, label in CARDS]
