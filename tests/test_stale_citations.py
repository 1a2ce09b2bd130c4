"""Citations that stay true (issue 16): each citation records its document's content
hash; opening a citation whose document has since changed or left the index says so
instead of highlighting other text, and the export records the index generation and
every cited document's hash."""

from __future__ import annotations

from pathlib import Path

from citechat.corpus import content_hash
from citechat.pipeline import Pipeline
from citechat.render import CHANGED, GONE, export_markdown, render_document
from helpers import pipeline_over, write

ARTICLE = (
    "Harbour report\n\n"
    "The lighthouse keeper Morwenna Tregarthen repainted the lamp room in violet.\n"
)
EDITED = (
    "Harbour report\n\n"
    "A correction was added at the top of this page, moving every sentence along. "
    "The lighthouse keeper Morwenna Tregarthen repainted the lamp room in grey.\n"
)
QUESTION = "What colour did the lighthouse keeper repaint the lamp room?"


def _pipe(tmp_path: Path) -> Pipeline:
    return pipeline_over(tmp_path, {"harbour.txt": ARTICLE})  # type: ignore[no-any-return]


def test_a_citation_records_its_documents_hash_and_the_answer_its_generation(
    tmp_path: Path,
) -> None:
    pipe = _pipe(tmp_path)
    answer = pipe.ask(QUESTION)
    cit = answer.citations[0]
    assert cit.doc_id == "harbour.txt"
    assert cit.content_hash == content_hash(ARTICLE)
    assert answer.index_generation == pipe.index.generation
    assert answer.index_generation and answer.index_generation.startswith("gen-")
    data = answer.to_json()
    assert data["citations"][0]["content_hash"] == content_hash(ARTICLE)
    assert data["index_generation"] == pipe.index.generation


def test_an_unchanged_document_opens_highlighted(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    answer = pipe.ask(QUESTION)
    html = render_document(pipe, answer, 1)
    assert "<mark id='cc-highlight'>" in html
    assert CHANGED not in html and GONE not in html


def test_a_changed_document_says_so_and_highlights_nothing(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    answer = pipe.ask(QUESTION)
    write(pipe.settings.corpus / "harbour.txt", EDITED)
    pipe.refresh()
    html = render_document(pipe, answer, 1)
    assert CHANGED in html
    assert "cc-highlight" not in html and "<mark" not in html
    # the words the answer quoted, from the citation, and the new text, unmarked
    assert "repainted the lamp room in violet." in html
    assert "repainted the lamp room in grey." in html
    md = export_markdown(pipe, [answer])
    assert f"from index generation `{pipe.index.generation}`" in md
    assert f"_Answered from index generation `{answer.index_generation}`._" in md
    assert f"sha256 `{content_hash(ARTICLE)}`" in md
    assert CHANGED in md


def test_a_removed_document_says_it_is_gone(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    answer = pipe.ask(QUESTION)
    (pipe.settings.corpus / "harbour.txt").unlink()
    pipe.refresh()
    html = render_document(pipe, answer, 1)
    assert GONE in html
    assert "<mark" not in html
    assert "repainted the lamp room in violet." in html
    assert GONE in export_markdown(pipe, [answer])


def test_the_export_records_generation_and_hashes_of_a_current_answer(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path)
    answer = pipe.ask(QUESTION)
    md = export_markdown(pipe, [answer])
    assert f"from index generation `{pipe.index.generation}`" in md
    assert "Answered from index generation" not in md  # the same generation: said once
    assert f"sha256 `{content_hash(ARTICLE)}`" in md
    assert CHANGED not in md and GONE not in md
