from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from citechat.chunking import chunk_document, estimate_tokens, split_sentences
from citechat.types import Document, Section


def _doc(text: str, sections: tuple[Section, ...]) -> Document:
    return Document("d.txt", text, "Title", sections)


def test_split_sentences_keeps_lines_apart_and_offsets_exact() -> None:
    text = "Shoesmith speaks out\nShe said it was reckless. Balls disagreed.\n\n  Third one?"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "Shoesmith speaks out",
        "She said it was reckless.",
        "Balls disagreed.",
        "Third one?",
    ]


def test_run_on_sentence_is_cut_at_word_boundaries() -> None:
    text = " ".join(f"w{i}" for i in range(300))
    spans = split_sentences(text)
    assert len(spans) == 3
    assert all(text[a:b].split()[0].startswith("w") for a, b in spans)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_chunks_respect_budget_overlap_and_sections() -> None:
    body = " ".join(f"Sentence number {i} is about the Baby P case." for i in range(40))
    comment = "I agree with the article. It is right."
    text = f"T\n{body}\n\n{comment}"
    b0 = 2
    c0 = text.index(comment)
    doc = _doc(
        text, (Section("body", b0, b0 + len(body)), Section("comment", c0, len(text), "Ann"))
    )
    chunks = chunk_document(doc, max_tokens=60, overlap=1)
    assert len(chunks) > 3
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert estimate_tokens(c.embedding_text()) <= 60 or len(c.sentences) == 1
    body_chunks = [c for c in chunks if c.section == "body"]
    # neighbouring chunks share exactly one sentence
    for a, b in itertools.pairwise(body_chunks):
        assert a.sentences[-1] == b.sentences[0]
    comments = [c for c in chunks if c.section == "comment"]
    assert len(comments) == 1 and comments[0].commenter == "Ann"
    assert comments[0].start >= c0
    assert [c.chunk_id for c in chunks] == [f"d.txt#{i}" for i in range(len(chunks))]


def test_no_overlap_option() -> None:
    body = " ".join(f"Fact {i} is stated here plainly." for i in range(30))
    doc = _doc(body, (Section("body", 0, len(body)),))
    chunks = chunk_document(doc, max_tokens=40, overlap=0)
    seen = [s for c in chunks for s in c.sentences]
    assert len(seen) == len(set(seen)) == 30


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=400), st.data())
def test_chunk_spans_round_trip_and_stay_in_sections(text: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(text)))
    sections = (Section("body", 0, cut), Section("comment", cut, len(text), "X"))
    doc = _doc(text, sections)
    for c in chunk_document(doc, max_tokens=20, overlap=1):
        assert doc.text[c.start : c.end] == c.text
        sec = sections[0] if c.section == "body" else sections[1]
        assert sec.start <= c.start <= c.end <= sec.end
        for a, b in c.sentences:
            assert c.start <= a < b <= c.end
