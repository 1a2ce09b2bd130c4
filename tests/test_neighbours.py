"""The sentence an answer needs beside it (neighbours.py): a quote's speaker named a
few sentences before it, the reason that follows a decision; never across sections."""

from __future__ import annotations

import re
from types import SimpleNamespace

from citechat.neighbours import Neighbours
from citechat.reading import Candidate
from citechat.types import Chunk, Document, Hit, Section

BODY = (
    "Ms Shoesmith said she was shocked at how fast it had become a political issue. "
    "The council had been praised a year earlier. "
    '"And now you have got this, a local tragedy." '
    "She said the treatment had been reckless. "
    "Ed Balls refused to apologise. "
    "This was because the inquiry had not reported. "
    "The weather was cold."
)
COMMENT = '"Blaming is not the answer." Nobody listens.'
TEXT = BODY + "\n\n" + COMMENT


def _spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    return [(offset + m.start(), offset + m.end()) for m in re.finditer(r'[^.]+\."?', text)]


def _index() -> SimpleNamespace:
    body = [(a + (1 if TEXT[a] == " " else 0), b) for a, b in _spans(BODY)]
    c0 = len(BODY) + 2
    comment = [(a + (1 if TEXT[a] == " " else 0), b) for a, b in _spans(COMMENT, c0)]
    # two overlapping body chunks, as the chunker makes them, and a comment chunk
    chunks = [
        Chunk("d#0", "d", body[0][0], body[3][1], "", "body", "T", None, tuple(body[:4])),
        Chunk("d#1", "d", body[3][0], body[-1][1], "", "body", "T", None, tuple(body[3:])),
        Chunk(
            "d#2", "d", comment[0][0], comment[-1][1], "", "comment", "T", "Adams", tuple(comment)
        ),
    ]
    doc = Document("d", TEXT, "T", (Section("body", 0, len(BODY)),))
    return _fake_index(chunks, {"d": doc})


def _fake_index(chunks: list[Chunk], documents: dict[str, Document]) -> SimpleNamespace:
    """What Neighbours reads of an index: chunks, documents, each document's chunk rows."""
    rows = lambda doc_id: [i for i, c in enumerate(chunks) if c.doc_id == doc_id]  # noqa: E731
    return SimpleNamespace(chunks=chunks, documents=documents, chunk_rows=rows)


def _cand(index: SimpleNamespace, sentence: str) -> Candidate:
    start = TEXT.index(sentence)
    chunk = next(c for c in index.chunks if any(a == start for a, _ in c.sentences))
    end = next(b for a, b in chunk.sentences if a == start)
    return Candidate(Hit(chunk, 1.0, 1), start, end, TEXT[start:end], 1.0, 0.0, 0.0)


def test_a_quote_without_its_speaker_gets_the_sentence_that_names_them() -> None:
    index = _index()
    nb = Neighbours(index)  # type: ignore[arg-type]
    quote = _cand(index, '"And now you have')
    span = nb.speaker(quote, 'Who said "And now you have got this"?')
    assert span is not None and TEXT[slice(*span)].startswith("Ms Shoesmith said")
    # "She said ..." sits in the next chunk: the speaker is still found across chunks
    she = _cand(index, "She said the treatment")
    span = nb.speaker(she, "Who said the treatment had been reckless?")
    assert span is not None and TEXT[slice(*span)].startswith("Ms Shoesmith said")


def test_no_speaker_sentence_when_none_is_needed() -> None:
    index = _index()
    nb = Neighbours(index)  # type: ignore[arg-type]
    named = _cand(index, "Ms Shoesmith said")
    assert nb.speaker(named, "Who said she was shocked?") is None  # names its speaker
    quote = _cand(index, '"And now you have')
    assert nb.speaker(quote, "What was called a local tragedy?") is None  # not "who said"
    comment = _cand(index, '"Blaming is not')
    assert nb.speaker(comment, "Who said blaming is not the answer?") is None


def test_the_reason_that_follows_a_decision() -> None:
    index = _index()
    nb = Neighbours(index)  # type: ignore[arg-type]
    refused = _cand(index, "Ed Balls refused")
    span = nb.reason(refused, "Why did Ed Balls refuse to apologise?")
    assert span is not None and TEXT[slice(*span)].startswith("This was because")
    assert nb.reason(refused, "Who refused to apologise?") is None
    because = _cand(index, "This was because")
    assert nb.reason(because, "Why did Ed Balls refuse?") is None  # next is no reason


def test_a_he_said_sentence_that_names_someone_else_is_not_the_speaker() -> None:
    text = (
        "Labour MP Barry Sheerman, who chairs the committee, said he felt it was unfair. "
        'But he said that Mr Balls had to "act decisively". '
        '"What we need is to see that she is treated fairly."'
    )
    starts = [0, text.index("But he said"), text.index('"What we need')]
    spans = [(a, text.index(".", a) + 1) for a in starts]
    spans[-1] = (starts[-1], len(text))
    assert text[slice(*spans[1])] == 'But he said that Mr Balls had to "act decisively".'

    chunk = Chunk("e#0", "e", 0, len(text), text, "body", "T", None, tuple(spans))
    index = _fake_index([chunk], {"e": Document("e", text, "T", (Section("body", 0, len(text)),))})
    start, end = spans[-1]
    quote = Candidate(Hit(chunk, 1.0, 1), start, end, text[start:end], 1.0, 0.0, 0.0)
    span = Neighbours(index).speaker(quote, 'Who said "What we need is to see"?')  # type: ignore[arg-type]
    assert span is not None and text[slice(*span)].startswith("Labour MP Barry Sheerman")


def test_a_why_answer_gets_the_speakers_own_explanation_after_it() -> None:
    text = (
        "Ms Shoesmith defended her decision not to resign. "
        "She said her staff had needed her at the time. "
        "The council met on Monday."
    )
    starts = [0, text.index("She said"), text.index("The council")]
    spans = [(a, text.index(".", a) + 1) for a in starts]
    chunk = Chunk("e#0", "e", 0, len(text), text, "body", "T", None, tuple(spans))
    index = _fake_index([chunk], {"e": Document("e", text, "T", (Section("body", 0, len(text)),))})
    nb = Neighbours(index)  # type: ignore[arg-type]
    decision = Candidate(Hit(chunk, 1.0, 1), *spans[0], text[slice(*spans[0])], 1.0, 0.0, 0.0)
    for question in (
        "Why did Sharon Shoesmith say she had decided not to resign?",
        "What reason did Ms Shoesmith give for not resigning?",
    ):
        span = nb.reason(decision, question)
        assert span is not None and text[slice(*span)].startswith("She said her staff")
    assert nb.reason(decision, "What did Ms Shoesmith defend?") is None
    said = Candidate(Hit(chunk, 1.0, 1), *spans[1], text[slice(*spans[1])], 1.0, 0.0, 0.0)
    assert nb.reason(said, "Why did she stay?") is None  # "The council met" is no reason


def _two_sentences(text: str) -> tuple[SimpleNamespace, Candidate]:
    cut = text.index(". ") + 2
    spans = ((0, cut - 1), (cut, len(text)))
    chunk = Chunk("e#0", "e", 0, len(text), "", "body", "T", None, spans)
    doc = Document("e", text, "T", (Section("body", 0, len(text)),))
    index = _fake_index([chunk], {"e": doc})
    cand = Candidate(Hit(chunk, 1.0, 1), cut, len(text), text[cut:], 1.0, 0.0, 0.0)
    return index, cand


def test_a_who_answer_that_starts_with_she_gets_the_sentence_naming_her() -> None:
    text = (
        "We heard an interview with Sharon Shoesmith, the former head of the service. "
        "She was in charge at the time of the case."
    )
    index, she = _two_sentences(text)
    nb = Neighbours(index)  # type: ignore[arg-type]
    span = nb.antecedent(she, "Who was in charge at the time of the case?")
    assert span is not None and text[slice(*span)].startswith("We heard an interview")
    # not for other questions, nor for "who said" (the speaker rule's), nor without a name
    assert nb.antecedent(she, "When was she in charge?") is None
    assert nb.antecedent(she, "Who said she was in charge?") is None
    unnamed, she2 = _two_sentences("We heard an interview. She was in charge at the time.")
    assert Neighbours(unnamed).antecedent(she2, "Who was in charge?") is None  # type: ignore[arg-type]
    # a sentence that names its own subject needs nothing before it
    _, named = _two_sentences(text.replace("She was", "Ms Shoesmith was"))
    assert nb.antecedent(named, "Who was in charge at the time of the case?") is None


def _sentences(*sentences: str) -> tuple[SimpleNamespace, list[Candidate]]:
    """One body section of these sentences, each as a candidate."""
    text = " ".join(sentences)
    spans, at = [], 0
    for s in sentences:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    chunk = Chunk("f#0", "f", 0, len(text), "", "body", "T", None, tuple(spans))
    doc = Document("f", text, "T", (Section("body", 0, len(text)),))
    index = _fake_index([chunk], {"f": doc})
    cands = [Candidate(Hit(chunk, 1.0, 1), a, b, text[a:b], 1.0, 0.0, 0.0) for a, b in spans]
    return index, cands


def test_a_sentence_that_goes_on_from_the_answer_is_joined_to_it() -> None:
    index, cands = _sentences(
        "Ann Baxter said such allegations brought the system into disrepute.",
        "Something Hemming dismissed as nonsense.",
        "The weather was cold.",
    )
    nb = Neighbours(index)  # type: ignore[arg-type]
    text = index.documents["f"].text
    spans = nb.continuation(cands[0], "How did Hemming respond to Ann Baxter's warning?")
    assert [text[slice(*s)] for s in spans] == ["Something Hemming dismissed as nonsense."]
    # a continuation that shares no word with the question is not the answer's
    assert nb.continuation(cands[0], "What did Ann Baxter say about the system?") == []
    # nor is a plain next sentence, nor anything after the last sentence
    assert nb.continuation(cands[1], "Was the weather cold when Hemming spoke?") == []
    assert nb.continuation(cands[2], "Was the weather cold?") == []


def test_an_announced_count_of_reasons_brings_its_items() -> None:
    index, cands = _sentences(
        "There are two reasons I can think of why the child has not been named.",
        "One: to avoid prejudicing any future trial.",
        "Two: to protect the other siblings.",
        "It is a disgrace.",
    )
    nb = Neighbours(index)  # type: ignore[arg-type]
    text = index.documents["f"].text
    asked = "What two reasons did JIMB give for the child not being named?"
    spans = nb.continuation(cands[0], asked)
    assert [text[slice(*s)] for s in spans] == [
        "One: to avoid prejudicing any future trial.",
        "Two: to protect the other siblings.",
    ]
    # the count is not what the question asks about: nothing joined
    assert nb.continuation(cands[0], "Who thinks the child has not been named?") == []


def test_a_why_answer_that_is_a_consequence_gets_the_reason_before_it() -> None:
    index, cands = _sentences(
        "The inquiry had not reported yet.",
        "So Ed Balls refused to apologise.",
        "Partly because the inquiry had not reported, he waited.",
    )
    nb = Neighbours(index)  # type: ignore[arg-type]
    text = index.documents["f"].text
    span = nb.reason(cands[1], "Why did Ed Balls refuse to apologise?")
    assert span is not None and text[slice(*span)] == "The inquiry had not reported yet."
    assert nb.reason(cands[1], "What did Ed Balls refuse?") is None  # not a "why" question
    # "Partly because …" after a decision is its reason
    index, cands = _sentences("He waited.", "Partly because the inquiry had not reported.")
    span = Neighbours(index).reason(cands[0], "Why did he wait?")  # type: ignore[arg-type]
    assert span is not None and index.documents["f"].text[slice(*span)].startswith("Partly")
    index, cands = _sentences("The council met.", "So far nothing has changed.")
    assert Neighbours(index).reason(cands[1], "Why has nothing changed?") is None  # type: ignore[arg-type]


def test_which_mp_said_is_a_who_said_question_but_which_officer_did_she_say_is_not() -> None:
    index, cands = _sentences(
        "Barry Sheerman, who chairs the committee, spoke to the BBC.",
        '"She was treated unfairly," he said.',
    )
    nb = Neighbours(index)  # type: ignore[arg-type]
    text = index.documents["f"].text
    for question in (
        "Which MP said she was treated unfairly?",
        "According to whom was she treated unfairly?",
    ):
        span = nb.speaker(cands[1], question)
        assert span is not None and text[slice(*span)].startswith("Barry Sheerman"), question
    assert nb.speaker(cands[1], "Which officer did he say treated her unfairly?") is None
