"""PDF pages (issue 16): words keep their spaces, every section and chunk knows its
page and printed label, running headers and footers are dropped, a hyphen at a line
break is joined, and a table of contents is never indexed."""

from pathlib import Path

from citechat.chunking import chunk_document
from citechat.corpus import load_document
from citechat.pdftext import clean_pages, is_contents, read_pdf, unwrap
from helpers import pdf_file

#: words set apart by positioning only, no space characters, as many typesetters
#: write text (the issue saw pypdf run such words together: "cutiontimings")
KERNED = ["The", "execution", "timings", "of", "these", "scripts", "can", "be", "customized."]

BODY = {
    3: [
        "1. Folders",
        "The hierarchy of folders is described in this guide, and each folder has a pur-",
        "pose that the next pages explain in turn, one section at a time for our readers",
        "who are new.",
        "Short closing line.",
    ],
    4: [
        "2. Scripts",
        "KERNED",
        "Boot scripts live in the folder named after the run level they belong to.",
    ],
    5: [
        "3. Logs",
        "Log files are kept under the variable data folder and rotated once a week.",
    ],
}
CONTENTS = [f"{n}. Chapter number {n} .................... {n + 2}" for n in range(1, 8)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_stream(lines: list[str], header: str | None, footer: str | None) -> bytes:
    ops = ["BT /F1 10 Tf 14 TL 72 740 Td"]
    if header:
        ops.append(f"({_escape(header)}) Tj T* T*")
    for line in lines:
        if line == "KERNED":
            # word gaps from TJ offsets (-280/1000 em), not spaces
            words = " -280 ".join(f"({w})" for w in KERNED)
            ops.append(f"[{words}] TJ T*")
        else:
            ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    if footer:
        ops.append(f"BT /F1 10 Tf 300 40 Td ({_escape(footer)}) Tj ET")
    return "\n".join(ops).encode("latin-1")


def book_pdf(path: Path) -> Path:
    """A six-page book: a title page, a contents page, three chapter pages under a
    running header "A Small Guide to Folders" with printed page numbers 1-3 in the
    footer, and page labels i, ii, 1, 2, 3, 4 (roman front matter, then decimal)."""
    pages = [
        _page_stream(["A Small Guide to Folders", "Written for the tests"], None, None),
        _page_stream(["Contents", *CONTENTS], None, "ii"),
        *(_page_stream(BODY[n], "A Small Guide to Folders", str(n - 2)) for n in (3, 4, 5)),
        _page_stream(["Notes", "This page is left for the reader's own notes."], None, "4"),
    ]
    n_pages = len(pages)
    font = 3 + 2 * n_pages
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /PageLabels << /Nums [0 << /S /r >> 2 << /S /D >>] >> >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(n_pages)), n_pages),
    ]
    for i, stream in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * i, font)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_file(objects))
    return path


def test_words_keep_their_spaces(tmp_path: Path) -> None:
    pdf = read_pdf(book_pdf(tmp_path / "book.pdf").read_bytes())
    assert " ".join(KERNED) in pdf.pages[3].text
    assert "cutiontimings" not in pdf.pages[3].text


def test_pages_numbers_and_labels(tmp_path: Path) -> None:
    pdf = read_pdf(book_pdf(tmp_path / "book.pdf").read_bytes())
    assert [(p.number, p.label) for p in pdf.pages] == [
        (1, "i"),
        (2, "ii"),
        (3, "1"),
        (4, "2"),
        (5, "3"),
        (6, "4"),
    ]
    assert pdf.pages[4].text.startswith("3. Logs")


def test_running_header_footer_dropped_and_hyphen_joined(tmp_path: Path) -> None:
    pdf = read_pdf(book_pdf(tmp_path / "book.pdf").read_bytes())
    chapter = pdf.pages[2].text
    assert "A Small Guide to Folders" not in chapter
    assert chapter.splitlines() == [
        "1. Folders",
        "The hierarchy of folders is described in this guide, and each folder has a purpose "
        "that the next pages explain in turn, one section at a time for our readers who are new.",
        "Short closing line.",
    ]
    # the title page is not a running header, though its first line repeats as one
    assert pdf.pages[0].text.startswith("A Small Guide to Folders")


def test_contents_page_is_marked_and_not_indexed(tmp_path: Path) -> None:
    doc = load_document(book_pdf(tmp_path / "book.pdf"), "book.pdf")
    assert [s.page for s in doc.sections] == [1, 3, 4, 5, 6]
    assert "Chapter number 3" in doc.text  # read, but in no section
    assert all("Chapter number" not in doc.section_text(s) for s in doc.sections)
    assert is_contents(CONTENTS) and not is_contents(BODY[3])


def test_chunks_and_sections_carry_the_page(tmp_path: Path) -> None:
    doc = load_document(book_pdf(tmp_path / "book.pdf"), "book.pdf")
    assert doc.title == "A Small Guide to Folders"
    for section in doc.sections:
        assert doc.section_text(section) == doc.section_text(section).strip()
    chunks = chunk_document(doc)
    logs = next(c for c in chunks if "rotated once a week" in c.text)
    assert (logs.page, logs.page_label) == (5, "3")
    assert doc.text[logs.start : logs.end] == logs.text
    # a chunk never spans two pages
    assert len({c.page for c in chunks}) == len(doc.sections)


def test_clean_pages_without_pdf() -> None:
    raw = [
        (None, ["Manual", f"Text of page {w} goes here.", f"Page {n} of 3"])
        for n, w in ((1, "one"), (2, "two"), (3, "three"))
    ]
    assert [p.text for p in clean_pages(raw)] == [
        "Text of page one goes here.",
        "Text of page two goes here.",
        "Text of page three goes here.",
    ]
    assert unwrap(["a-", "b"]) == "a-\nb"  # too short to be a wrapped paragraph line


def test_outline_gives_pages_heading_paths(tmp_path: Path) -> None:
    """With bookmarks, a page's sections sit under their heading path; a bookmark whose
    title is a line of the page cuts the page there (that line is named, not quoted)."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(book_pdf(tmp_path / "plain.pdf")))
    guide = writer.add_outline_item(title="A Small Guide to Folders", page_number=0)
    writer.add_outline_item(title="2. Scripts", page_number=3, parent=guide)
    writer.add_outline_item(title="3. Logs", page_number=4, parent=guide)
    path = tmp_path / "c" / "book.pdf"
    path.parent.mkdir()
    with path.open("wb") as fh:
        writer.write(fh)
    assert read_pdf(path.read_bytes()).outline == (
        (1, "A Small Guide to Folders", 1),
        (2, "2. Scripts", 4),
        (2, "3. Logs", 5),
    )
    doc = load_document(path, "book.pdf")
    logs = next(s for s in doc.sections if "rotated once a week" in doc.section_text(s))
    assert (logs.page, logs.heading) == (5, "A Small Guide to Folders › 3. Logs")
    assert doc.section_text(logs).startswith("Log files")  # the heading line is the path
    folders = next(s for s in doc.sections if s.page == 3)
    assert folders.heading == "A Small Guide to Folders"  # before any deeper bookmark
    chunk = next(c for c in chunk_document(doc) if "rotated once a week" in c.text)
    assert chunk.embedding_text().startswith("A Small Guide to Folders | 3. Logs\n")
