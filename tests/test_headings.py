"""Where a passage is (issue 16): heading paths from Markdown ``#`` and HTML h1–h6,
chunks that never straddle a heading, the path in the embedding header, manual pages
read whole without their chrome, code blocks and table rows kept and quoted whole."""

from pathlib import Path

from citechat.chunking import chunk_document, section_sentences
from citechat.corpus import load_document
from citechat.htmltext import extract, visible_words
from citechat.types import Chunk
from helpers import write

MARKDOWN = """# APT

APT is the package tool. It fetches packages from the archive.

## Configuring apt-get

Sources are listed in one file. Edit it as root.

```sh
apt-get update
apt-get upgrade
```

## Using apt-get

Install a package with one command.
"""

#: a DocBook-style manual page, as Debian's HTML manuals are written
MANUAL = """<?xml version="1.0" encoding="UTF-8"?>
<html><head><title>Chapter 8. Package tools</title></head><body>
<div class="navheader"><table summary="Navigation header"><tr><th>Chapter 8. Package tools</th></tr>
<tr><td><a href="prev.html">Prev</a></td><td><a href="next.html">Next</a></td></tr></table></div>
<div class="breadcrumbs"><a href="/">Home</a> » <a href="/faq">FAQ</a></div>
<div class="chapter"><h1>Chapter 8. Package tools</h1>
<div class="toc"><p>Table of Contents</p><dl><dt><a href="#dpkg">8.1. dpkg</a></dt></dl></div>
<div class="section"><h2>8.1. dpkg</h2>
<p>This is the main package management program.</p>
<p>Plain words come first and then <code>dpkg -i</code> installs a file.</p>
<pre class="screen">dpkg -i foo.deb
dpkg -r foo</pre>
<table><tr><th>Option</th><th>Meaning</th></tr>
<tr><td>-i</td><td>Install the package. It unpacks first.</td></tr>
<tr><td>-r</td><td>Remove the package.</td></tr></table>
<h3>8.1.1. Logs</h3><p>dpkg writes a log of every change.</p></div></div>
<div class="navfooter"><a href="prev.html">Prev</a> <a href="index.html">Home</a>
<a href="next.html">Next</a></div>
<footer>Copyright 2024 The Authors</footer></body></html>
"""


def test_markdown_heading_paths(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "apt.md", MARKDOWN), "apt.md")
    assert doc.title == "APT"
    paths = {doc.section_text(s).split("\n")[0]: s.heading for s in doc.sections}
    assert paths["APT is the package tool. It fetches packages from the archive."] == "APT"
    assert paths["Sources are listed in one file. Edit it as root."] == (
        "APT › Configuring apt-get"
    )
    assert paths["Install a package with one command."] == "APT › Using apt-get"
    assert all("#" not in doc.section_text(s) for s in doc.sections)


def test_chunks_never_straddle_a_heading(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "apt.md", MARKDOWN), "apt.md")
    chunks = chunk_document(doc, max_tokens=400)  # room for the whole file in one chunk
    assert len(chunks) == 3
    assert [c.heading for c in chunks] == [
        "APT",
        "APT › Configuring apt-get",
        "APT › Using apt-get",
    ]
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert "## " not in c.text


def test_embedding_header_holds_the_heading_path(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "apt.md", MARKDOWN), "apt.md")
    setup = chunk_document(doc)[1]
    # the title is said once: the path below the title's own heading follows it
    assert setup.embedding_text().split("\n")[0] == "APT | Configuring apt-get"


def test_markdown_code_block_is_one_sentence(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "apt.md", MARKDOWN), "apt.md")
    section = next(s for s in doc.sections if "apt-get update" in doc.section_text(s))
    spans = [doc.text[a:b] for a, b in section_sentences(doc, section)]
    assert "```sh\napt-get update\napt-get upgrade\n```" in spans


def test_manual_page_keeps_every_paragraph_and_drops_chrome(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "tools.html", MANUAL), "tools.html")
    assert doc.title == "Chapter 8. Package tools"
    cited = "\n".join(doc.section_text(s) for s in doc.sections)
    for kept in (
        "This is the main package management program.",
        "Plain words come first and then dpkg -i installs a file.",  # words before <code>
        "dpkg writes a log of every change.",
    ):
        assert kept in cited
    for chrome in ("Prev", "Next", "Home", "Table of Contents", "Copyright", "»"):
        assert chrome not in doc.text
    logs = next(s for s in doc.sections if "log of every change" in doc.section_text(s))
    assert logs.heading == "Chapter 8. Package tools › 8.1. dpkg › 8.1.1. Logs"


def test_code_blocks_and_table_rows_are_quoted_whole(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "tools.html", MANUAL), "tools.html")
    sentences = [doc.text[a:b] for c in chunk_document(doc) for a, b in c.sentences]
    assert "dpkg -i foo.deb\ndpkg -r foo" in sentences
    # a row is one sentence, though a cell holds two
    assert "-i | Install the package. It unpacks first." in sentences
    assert "Option | Meaning" in sentences


def test_words_kept_against_visible_text() -> None:
    """Every word of the main content is kept; what is lost is the chrome's."""
    page = extract(MANUAL)
    chrome = "Chapter 8. Package tools Prev Next Home » FAQ Table of Contents 8.1. dpkg"
    chrome += " Prev Home Next Copyright 2024 The Authors"
    kept = [w for w in page.text.split() if w != "|"]  # "|" joins a row's cells
    assert len(kept) == visible_words(MANUAL) - len(chrome.split())


def test_html_comments_are_comment_sections(tmp_path: Path) -> None:
    html = (
        "<html><body><article><h1>Post</h1><p>The post says hello.</p></article>"
        '<div id="comments"><div class="comment"><p>First reply.</p></div>'
        '<div class="comment"><p>Second reply.</p></div></div></body></html>'
    )
    doc = load_document(write(tmp_path / "post.html", html), "post.html")
    assert [(s.kind, doc.section_text(s)) for s in doc.sections] == [
        ("body", "The post says hello."),
        ("comment", "First reply."),
        ("comment", "Second reply."),
    ]


def test_chunks_saved_before_these_fields_still_load() -> None:
    row = {
        "chunk_id": "d#0",
        "doc_id": "d",
        "start": 0,
        "end": 3,
        "text": "Hi.",
        "section": "body",
        "title": "T",
        "commenter": None,
        "sentences": [[0, 3]],
    }
    chunk = Chunk(**row)  # type: ignore[arg-type]
    assert (chunk.page, chunk.page_label, chunk.heading) == (None, None, None)
    assert chunk.embedding_text() == "T\nHi."


def test_an_instruction_is_answered_with_the_code_block_it_introduces(tmp_path: Path) -> None:
    from helpers import pipeline_over

    guide = (
        "# Package tools\n\nSome tools are graphical and others are text based.\n\n"
        "## Listing files\n\nTo list the files installed by a package, run the command:\n\n"
        "```\ndpkg --listfiles foo\n```\n\nFiles made by install scripts are not listed.\n"
    )
    pipe = pipeline_over(tmp_path, {"tools.md": guide})
    answer = pipe.ask("How do I list the files installed by a package?")
    quotes = [c.quote for c in answer.citations]
    assert "To list the files installed by a package, run the command:" in quotes
    assert "```\ndpkg --listfiles foo\n```" in quotes
    assert all(c.heading == "Package tools › Listing files" for c in answer.citations)


def test_sphinx_page_chrome_is_dropped(tmp_path: Path) -> None:
    html = (
        "<html><head><title>8. Translations — Reference</title></head><body>"
        '<div class="related" role="navigation"><a href="index.html">index</a> | '
        '<a href="next.html">next</a></div><div class="document"><div class="body">'
        '<section><h1>8. Translations<a class="headerlink" href="#t">¶</a></h1>'
        "<p>Debian supports many languages.</p><section><h2>8.1. Handling"
        '<a class="headerlink" href="#h">¶</a></h2><p>Translators review the text.</p>'
        '</section></section></div></div><div class="sphinxsidebar" role="navigation">'
        '<h3>Navigation</h3><ul><li><a href="a.html">Scope</a></li></ul></div>'
        '<div class="footer">© Copyright the authors.</div></body></html>'
    )
    doc = load_document(write(tmp_path / "l10n.html", html), "l10n.html")
    assert doc.title == "8. Translations"
    assert [(doc.section_text(s), s.heading) for s in doc.sections] == [
        ("Debian supports many languages.", "8. Translations"),
        ("Translators review the text.", "8. Translations › 8.1. Handling"),
    ]
    assert "¶" not in doc.text and "Navigation" not in doc.text and "©" not in doc.text


def test_pages_headings_and_blocks_survive_a_saved_index(tmp_path: Path) -> None:
    from citechat.config import Settings
    from citechat.corpus import load_corpus
    from citechat.embedding import HashingEmbedder
    from citechat.index import Index
    from test_pdftext import book_pdf

    corpus = tmp_path / "corpus"
    write(corpus / "apt.md", MARKDOWN)
    book_pdf(corpus / "book.pdf")
    settings = Settings(corpus=corpus, index=tmp_path / "index", embedder="hashing-256")
    emb = HashingEmbedder(256)
    built = Index.build(load_corpus(corpus), emb, settings, folder=settings.index)
    loaded = Index.load(settings.index, emb, settings)
    assert loaded.chunks == built.chunks
    assert {c.heading for c in loaded.chunks if c.doc_id == "apt.md"} == {
        "APT",
        "APT › Configuring apt-get",
        "APT › Using apt-get",
    }
    assert {(c.page, c.page_label) for c in loaded.chunks if c.doc_id == "book.pdf"} >= {(5, "3")}
    assert loaded.documents["apt.md"] == built.documents["apt.md"]
    assert loaded.documents["apt.md"].blocks  # the code block, as a tuple again
