"""Tests for citechat.corpus: the seed pages, file formats and bad files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citechat.corpus import content_hash, load_corpus, load_document, parse_text
from citechat.errors import CorpusError
from citechat.types import Document
from helpers import pdf_file, write

SEED = Path(__file__).parents[1] / "corpus"
BOILERPLATE = (
    "Leave a Reply",
    "Fill in your details",
    "You are commenting using",
    "Connecting to %s",
    "Sign in",
    "BBC navigation",
    "Has China's housing bubble",
    "Print Sponsor",
    "Click to see all the latest",
    "Related articles",
    "More from Community Care",
    "Comments are closed",
    "Responses to",
    "thought on",
    "thoughts on",
    "Page last updated",
    ", , , ,",
    "Listen to the full interview",
)


def seed(prefix: str) -> Document:
    (path,) = SEED.glob(f"{prefix}_*.txt")
    return load_document(path, path.name)


def comments(doc: Document) -> list[str]:
    return [doc.section_text(s) for s in doc.sections if s.kind == "comment"]


def bodies(doc: Document) -> list[str]:
    return [doc.section_text(s) for s in doc.sections if s.kind == "body"]


def assert_well_formed(doc: Document) -> None:
    """Spans lie in the text, are trimmed, sorted, non-empty and disjoint."""
    previous_end = 0
    for s in doc.sections:
        assert previous_end <= s.start < s.end <= len(doc.text), s
        quote = doc.text[s.start : s.end]
        assert quote == doc.section_text(s) == quote.strip()
        previous_end = s.end


def pdf_bytes(text: str) -> bytes:
    """A minimal one-page PDF that shows ``text`` in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_file(objects)


class Skips:
    """Collects on_skip calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, path: Path | str, reason: str) -> None:
        self.calls.append((Path(path).name, reason))

    def reason(self, name: str) -> str:
        return next(reason for skipped, reason in self.calls if skipped == name)


# --- the seed corpus ----------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "title", "source", "date", "author", "n_comments"),
    [
        (
            "000",
            "Sharon Shoesmith, Baby P and ‘Joined-Up’ Children’s Services – another perspective",
            None,
            "2016-12-30",
            None,
            1,
        ),
        ("001", "What will Lord Laming have found?", None, None, None, 4),
        (
            "002",
            "Balls and Ofsted stand by decisions after Shoesmith attack",
            "Community Care",
            None,
            None,
            0,
        ),
        (
            "003",
            "Baby P case professionals’ lack of confidence highlights need to challenge criticisms",
            "Community Care",
            None,
            "Amy Taylor",
            15,
        ),
        ("004", "Balls 'not reckless' over Baby P", "BBC News", "2009-02-07", None, 0),
    ],
)
def test_seed_metadata(
    prefix: str,
    title: str,
    source: str | None,
    date: str | None,
    author: str | None,
    n_comments: int,
) -> None:
    doc = seed(prefix)
    assert (doc.title, doc.source, doc.date, doc.author) == (title, source, date, author)
    assert len(comments(doc)) == n_comments
    assert bodies(doc)
    assert doc.content_hash == content_hash(doc.text)


@pytest.mark.parametrize("prefix", ["000", "001", "002", "003", "004"])
def test_seed_sections_hold_no_boilerplate(prefix: str) -> None:
    doc = seed(prefix)
    assert_well_formed(doc)
    for s in doc.sections:
        quote = doc.section_text(s)
        for chrome in BOILERPLATE:
            assert chrome not in quote, (s, chrome)
        # The headline is the title, not body text.
        assert not " ".join(quote.split()).startswith(doc.title)
    first_comment = next((s.start for s in doc.sections if s.kind == "comment"), len(doc.text))
    assert all(s.end <= first_comment for s in doc.sections if s.kind == "body")


def test_seed_003_comments_and_byline() -> None:
    doc = seed("003")
    people = [s.commenter for s in doc.sections if s.kind == "comment"]
    assert {"Jerry Lonsdale", "Nick Bromley", "John Hemming MP", "Lou"} <= set(people)
    assert people[0] == "Jerry Lonsdale" and people[-1] == "Lou"
    assert {s.date for s in doc.sections if s.kind == "comment"} == {"2013-04-11"}
    body = "\n".join(bodies(doc))
    assert "The serious case review for the Baby P case found" in body
    assert body.startswith("Today’s papers scream")
    assert "by Amy Taylor" not in body
    assert comments(doc)[0].startswith("It is high time the blame game")
    assert comments(doc)[-1].endswith("self-righteous comments.")


def test_seed_blog_comments_are_unnamed() -> None:
    for prefix in ("000", "001"):
        doc = seed(prefix)
        assert all(s.commenter is None for s in doc.sections if s.kind == "comment")
    assert comments(seed("000"))[0].startswith("This hits the nail on the head.")
    assert comments(seed("001"))[-1].endswith("beggared belief.")
    assert "Sign in" not in "".join(comments(seed("000")))


def test_seed_bbc_body_drops_promos_and_footer() -> None:
    doc = seed("004")
    body = "\n".join(bodies(doc))
    assert "Children's Secretary Ed Balls has rejected claims" in body
    assert body.rstrip().endswith('we value them."')
    assert "Print Sponsor" not in body and "Judge postpones" not in body


def test_load_seed_corpus_is_sorted_and_complete() -> None:
    docs = load_corpus(SEED)
    assert [d.doc_id for d in docs] == sorted(p.name for p in SEED.glob("*.txt"))
    assert load_corpus(SEED) == docs  # deterministic


# --- parse_text on small pages --------------------------------------------------


def test_parse_text_unnumbered_comments_and_markdown_title() -> None:
    text = (
        "# A title\n\nBody text.\n\nComments\n\n"
        "Ann says:\nMarch 3, 2009 at 10:15 am\nFirst.\nReply\n\n"
        "Bob 4 March 2009 at 9:00 am\nSecond.\n\nLeave a Reply\nName"
    )
    doc = parse_text(text, "page.md")
    assert doc.title == "A title"
    assert bodies(doc) == ["Body text."]
    assert comments(doc) == ["First.", "Second."]
    assert [(s.commenter, s.date) for s in doc.sections if s.kind == "comment"] == [
        ("Ann", "2009-03-03"),
        ("Bob", "2009-03-04"),
    ]


def test_parse_text_chrome_before_the_text_does_not_end_the_article() -> None:
    text = (
        "Headline\nSign in\n\nThe article.\n\nPrint Sponsor\nOther story\n\n"
        "3 Comments\nLeave a comment\n  1. Yes.\nLeave a Reply\nNot a comment."
    )
    doc = parse_text(text, "d")
    assert bodies(doc) == ["The article."]
    assert comments(doc) == ["Yes."]


def test_parse_text_numbers_inside_a_comment_stay_text() -> None:
    text = "T\n\nBody.\n\n2 Comments\n\n  1. Two points:\n  3. not a new comment\n  2. Real second."
    doc = parse_text(text, "d")
    assert comments(doc) == ["Two points:\n  3. not a new comment", "Real second."]


def test_parse_text_long_first_line_is_body_and_blank_text_has_no_sections() -> None:
    paragraph = " ".join(["word"] * 40)
    doc = parse_text(paragraph, "notes/today.txt")
    assert doc.title == "today"
    assert bodies(doc) == [paragraph]
    assert parse_text(" \n\n", "x").sections == ()


# --- files and formats ----------------------------------------------------------


def test_jsonl_file_and_bad_records(tmp_path: Path) -> None:
    records = [
        {"id": "b", "title": "Bee", "text": "  Buzz.\n", "url": "ignored"},
        {"id": "a", "text": "Ay."},
        {"title": "no id", "text": "x"},
        {"id": "c", "text": ""},
    ]
    lines = [json.dumps(r) for r in records] + ["{not json", "[1]"]
    path = write(tmp_path / "docs.jsonl", "\n".join(lines) + "\n")
    skips = Skips()
    docs = load_corpus(path, on_skip=skips)
    assert [(d.doc_id, d.title, d.source) for d in docs] == [("a", "a", None), ("b", "Bee", None)]
    (section,) = docs[1].sections
    assert (section.kind, docs[1].section_text(section)) == ("body", "Buzz.")
    assert docs[1].text == "  Buzz.\n"
    assert [reason for _, reason in skips.calls] == [
        'no "id"',
        'no "text"',
        "bad JSON: Expecting property name enclosed in double quotes",
        "not a JSON object",
    ]
    assert skips.calls[0][0] == "docs.jsonl:3"


def test_folder_recursion_ids_hidden_files_and_jsonl_inside(tmp_path: Path) -> None:
    write(tmp_path / "top.txt", "Top title\n\nTop body.")
    write(tmp_path / "news" / "deep" / "story.md", "Deep title\n\nDeep body.")
    write(tmp_path / "news" / "extra.jsonl", json.dumps({"id": "j1", "text": "From JSONL."}))
    write(tmp_path / ".hidden.txt", "Secret\n\nNo.")
    write(tmp_path / ".git" / "notes.txt", "Secret\n\nNo.")
    write(tmp_path / "picture.png", b"\x89PNG")
    docs = load_corpus(tmp_path)
    assert [d.doc_id for d in docs] == ["j1", "news/deep/story.md", "top.txt"]
    assert docs[1].title == "Deep title" and bodies(docs[1]) == ["Deep body."]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a" / "doc.txt", "Title\n\nBody.")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    skips = Skips()
    docs = load_corpus(tmp_path, on_skip=skips)
    assert [d.doc_id for d in docs] == ["a/doc.txt"]
    assert skips.reason("loop") == "symlink loop or folder already read"


def test_html_page(tmp_path: Path) -> None:
    paragraphs = "".join(
        f"<p>Paragraph {i} says the review found failures in practice, not in the system.</p>"
        for i in range(6)
    )
    html = (
        "<html><head><title>Review findings | Example News</title>"
        '<meta property="og:site_name" content="Example News">'
        '<meta property="article:published_time" content="2009-02-07"></head>'
        "<body><nav><a href='/'>Home</a> <a href='/jobs'>Jobs</a></nav>"
        f"<article><h1>Review findings</h1>{paragraphs}</article>"
        '<div id="comments" class="comments"><ol class="commentlist">'
        '<li class="comment"><p>I disagree: the system failed too, as we all know.</p></li>'
        "</ol></div><footer>Copyright Example</footer></body></html>"
    )
    path = write(tmp_path / "page.html", html)
    doc = load_document(path, "page.html")
    assert (doc.title, doc.source, doc.date) == ("Review findings", "Example News", "2009-02-07")
    (body,) = bodies(doc)
    assert body.startswith("Paragraph 0 says") and body.endswith(
        "Paragraph 5 says the review found failures in practice, not in the system."
    )
    assert comments(doc) == ["I disagree: the system failed too, as we all know."]
    assert "Jobs" not in doc.text and "Copyright" not in doc.text
    assert_well_formed(doc)


def test_html_without_text_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "empty.html", "<html><body><script>var x = 1;</script></body></html>")
    write(tmp_path / "ok.txt", "Title\n\nBody.")
    skips = Skips()
    load_corpus(tmp_path, on_skip=skips)
    assert skips.reason("empty.html") == "no text in HTML"


def test_pdf_text(tmp_path: Path) -> None:
    path = write(tmp_path / "report.pdf", pdf_bytes("Serious case review of Baby P"))
    doc = load_document(path, "report.pdf")
    assert "Serious case review of Baby P" in doc.text
    assert doc.title == "Serious case review of Baby P"
    assert [s.kind for s in doc.sections] == ["body"]
    assert_well_formed(doc)


def test_bad_pdfs_are_skipped_with_reasons(tmp_path: Path) -> None:
    import pypdf

    write(tmp_path / "garbage.pdf", os.urandom(64) + b"not a pdf")
    blank = pypdf.PdfWriter()
    blank.add_blank_page(width=200, height=200)
    with (tmp_path / "scan.pdf").open("wb") as f:
        blank.write(f)
    locked = pypdf.PdfWriter()
    locked.add_blank_page(width=200, height=200)
    locked.encrypt("secret", algorithm="RC4-128")
    with (tmp_path / "locked.pdf").open("wb") as f:
        locked.write(f)
    write(tmp_path / "ok.txt", "Title\n\nBody.")
    skips = Skips()
    docs = load_corpus(tmp_path, on_skip=skips)
    assert [d.doc_id for d in docs] == ["ok.txt"]
    assert skips.reason("garbage.pdf").startswith("unreadable PDF")
    assert skips.reason("scan.pdf") == "no extractable text (image-only PDF?)"
    assert skips.reason("locked.pdf") == "password-protected PDF"


def test_empty_oversized_and_binary_files_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "empty.txt", "")
    write(tmp_path / "big.txt", "Title\n\n" + "x" * 200)
    write(tmp_path / "binary.txt", b"\x00\x01\x02abc")
    write(tmp_path / "ok.txt", "Title\n\nBody.")
    with caplog.at_level(logging.WARNING, logger="citechat"):
        docs = load_corpus(tmp_path, max_bytes=100)
    assert [d.doc_id for d in docs] == ["ok.txt"]
    messages = caplog.text
    assert "empty.txt: empty file" in messages
    assert "big.txt: larger than 0.0001 MB limit" in messages
    assert "binary.txt: binary file, not text" in messages
    with pytest.raises(CorpusError, match="empty file"):
        load_document(tmp_path / "empty.txt", "empty.txt")


def test_latin1_file_is_decoded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "old.txt", "Café society\n\nNaïve £5 review.".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="citechat"):
        doc = load_document(path, "old.txt")
    assert doc.title == "Café society"
    assert bodies(doc) == ["Naïve £5 review."]
    assert "not UTF-8" in caplog.text


def test_utf8_bom_is_not_part_of_the_text(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.txt", "\ufeffTitle\n\nBody.".encode())
    doc = load_document(path, "bom.txt")
    assert doc.text == "Title\n\nBody." and doc.title == "Title"


def test_missing_and_empty_corpus_raise(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"corpus not found: .*set CITECHAT_CORPUS"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no readable documents"):
        load_corpus(tmp_path)


def test_content_hash() -> None:
    assert content_hash("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert len(content_hash("\ud800")) == 64  # lone surrogates from JSON do not crash


# --- properties -----------------------------------------------------------------

PAGE_LINES = st.sampled_from(
    [
        "",
        "  ",
        "Headline here",
        "by Jane Doe",
        "Page last updated at 15:29 GMT, Saturday, 7 February 2009",
        "  • Click to see all the latest jobs",
        "3 Responses to Headline here",
        "One thought on “Headline",
        "  1. First comment.",
        "  2. Ann Lee 11 April , 2013 at 11:00 pm #",
        "    Indented comment text.",
        "Bob says:",
        "Leave a Reply",
        "Print Sponsor",
        ", , ,",
        "Listen to the full interview",
        "Copyright © 2019 BBC.",
        "More from Somewhere",
        "[30th Dec 2016]",
    ]
)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(PAGE_LINES | st.text(max_size=40), max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_parse_text_never_raises_and_spans_round_trip(parts: list[str], newline: str) -> None:
    text = newline.join(parts)
    doc = parse_text(text, "page.txt")
    assert doc.text == text
    assert_well_formed(doc)
    assert isinstance(doc.title, str) and doc.title


def test_a_jsonl_file_is_read_line_by_line_so_only_records_have_a_size_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [json.dumps({"id": f"r{i}", "text": f"Record number {i}."}) for i in range(50)]
    lines.insert(3, json.dumps({"id": "big", "text": "x" * 500}))
    path = tmp_path / "docs.jsonl"
    # a UTF-8 BOM, and one line in cp1252 ("café")
    path.write_bytes(
        b"\xef\xbb\xbf" + "\n".join(lines).encode() + b'\n{"id": "cp", "text": "caf\xe9"}\n'
    )
    assert path.stat().st_size > 400  # the file is over the limit, each small record is not
    skips = Skips()
    docs = load_corpus(path, on_skip=skips, max_bytes=400)
    assert len(docs) == 51 and {d.doc_id for d in docs} >= {"r0", "r49", "cp"}
    assert next(d for d in docs if d.doc_id == "cp").text == "café"
    assert skips.calls == [("docs.jsonl:4", "record larger than 0.0004 MB limit")]
    assert "is not UTF-8; decoded its lines as cp1252" in caplog.text
