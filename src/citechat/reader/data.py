"""SQuAD dev -> reader training pairs, split by article.

The split (:func:`squad_split`) keeps out, by article title:

* test: the articles of ``questions_v1.1_first1000.jsonl`` (what ``make eval`` scores);
* held out: the 17 SQuAD v2.0 articles ``eval/calibrate_abstention.py`` keeps out of
  its fit (every 3rd v2.0 question, sorted titles, the odd positions), so the
  abstention numbers stay on articles no model of ours has seen;
* validation: a few of the remaining articles, which pick the checkpoint and fit the
  unanswerable calibration.

Everything else trains.  A pair is (question, one candidate sentence in context,
label, answer span).  Sentences come from :func:`citechat.chunking.chunk_document`
over :func:`citechat.corpus.load_corpus`, so they are the spans the index holds.
Per answerable question: its gold sentence (label 1, the span of its first answer
string), other sentences of its paragraph, and "hard" sentences of the top BM25
paragraphs of the same article that are not the gold one (label 0), and, given a
``retrieve`` function (citechat's own retrieval over the corpus index), the hardest
sentences of its top retrieved non-gold paragraphs among the articles being built
(label 0, kind "retrieved": the confusions the answerer meets at answer time).  Per v2.0
unanswerable question: the sentences of the paragraph it was written against
that share the most words with it (label 0, no span).  A sentence holding any gold
answer string is never a negative.

It does not tokenise (encoding.py) or train (train.py).
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .inputs import ReaderInput, header_of, inputs_for_sentences

TEST_FILE = "questions_v1.1_first1000.jsonl"
V11_FILE = "questions.jsonl"
V20_FILE = "questions_v2.0.jsonl"
CORPUS_FILE = "corpus.jsonl"

PairKind = Literal["gold", "paragraph", "bm25", "retrieved", "unanswerable"]

#: question -> paragraph (document) ids, best first: citechat's retrieval in training
Retrieve = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Split:
    """Article titles per role; every title of the corpus is in exactly one."""

    test: tuple[str, ...]
    heldout: tuple[str, ...]
    validation: tuple[str, ...]
    train: tuple[str, ...]

    def as_json(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Pair:
    qid: str
    question: str
    item: ReaderInput
    label: int
    #: the answer's (start, end) inside ``item.sentence``; None for label 0
    span: tuple[int, int] | None
    kind: PairKind
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataConfig:
    neg_paragraph: int = 2
    neg_bm25: int = 1
    #: hardest sentences taken from citechat's retrieved non-gold paragraphs (with
    #: ``retrieve`` only), one per paragraph, best-ranked paragraphs first
    neg_retrieved: int = 1
    unanswerable: int = 3
    validation_every_v2: int = 6
    validation_every_v1: int = 6
    abstention_every: int = 3
    #: validation uses every Nth question of its articles (each one is scored at
    #: every evaluation, so half of them keeps evaluations cheap)
    validation_questions_every: int = 2
    limit_questions: int | None = None


@dataclass
class BuildStats:
    questions: int = 0
    skipped_no_sentence: int = 0
    unanswerable: int = 0
    pairs: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def squad_split(folder: Path, config: DataConfig = DataConfig()) -> Split:
    """The article split of ``folder`` (eval/datasets/squad-dev)."""
    from ..evaluation import is_answerable, read_questions

    titles = sorted({str(r["title"]) for r in _rows(folder / CORPUS_FILE)})
    test = sorted({str(r["title"]) for r in _rows(folder / TEST_FILE)})
    # exactly eval/calibrate_abstention.py's choice: every Nth v2.0 question, answerable
    # or not, sorted titles, the even positions fitted and the odd ones held out
    rows = read_questions(folder / V20_FILE)[:: config.abstention_every]
    rows = [r for r in rows if is_answerable(r) is not None]
    v2 = sorted({str(r.get("title", "")) for r in rows})
    heldout = v2[1::2]
    rest_v2 = [t for t in v2[::2] if t not in test]
    rest_v1 = [t for t in titles if t not in v2 and t not in test]
    validation = sorted(
        rest_v2[:: config.validation_every_v2] + rest_v1[:: config.validation_every_v1]
    )
    train = [t for t in titles if t not in {*test, *heldout, *validation}]
    return Split(tuple(test), tuple(heldout), tuple(validation), tuple(train))


class _Sentences:
    """doc id -> its sentences in context (the spans the index holds), built on first
    use; None for a document not among ``docs``."""

    def __init__(self, docs: Sequence[Any]) -> None:
        self.docs = {d.doc_id: d for d in docs}
        self.made: dict[str, list[ReaderInput]] = {}

    def __call__(self, doc_id: str) -> list[ReaderInput] | None:
        from ..chunking import chunk_document

        doc = self.docs.get(doc_id)
        if doc is None:
            return None
        if doc_id not in self.made:
            spans = sorted({s for c in chunk_document(doc) for s in c.sentences})
            self.made[doc_id] = inputs_for_sentences(doc.text, spans, header_of(doc.title))
        return self.made[doc_id]


class _Article:
    """The paragraphs of one article: sentences in context and a BM25 over them."""

    def __init__(self, docs: Sequence[Any], sentences: _Sentences) -> None:
        import bm25s

        from ..text import terms

        self.docs = {d.doc_id: d for d in docs}
        self.ids = [d.doc_id for d in docs]
        self.sentences = {d.doc_id: sentences(d.doc_id) or [] for d in docs}
        self.bm25 = bm25s.BM25()
        self.bm25.index([terms(d.text) or ["_"] for d in docs], show_progress=False)

    def ranked(self, question: str) -> list[str]:
        from ..text import terms

        q = terms(question)
        if not q:
            return list(self.ids)
        scores = self.bm25.get_scores(q)
        order = sorted(range(len(self.ids)), key=lambda i: (-float(scores[i]), i))
        return [self.ids[i] for i in order]


def _overlap(question: str, sentence: str) -> int:
    from ..text import term_set

    return len(term_set(question) & term_set(sentence))


def _answering(items: Iterable[ReaderInput], answers: Sequence[str]) -> set[int]:
    """Starts of the sentences that contain any answer string."""
    return {i.start for i in items if any(a and a in i.sentence for a in answers)}


def _hardest(question: str, items: Iterable[ReaderInput]) -> list[ReaderInput]:
    return sorted(items, key=lambda i: (-_overlap(question, i.sentence), i.start))


def _gold(
    question: str, items: Sequence[ReaderInput], answers: Sequence[str]
) -> tuple[ReaderInput, tuple[int, int]] | None:
    """The sentence the question was most likely written on, and the span of the
    first answer string that lies wholly in it (SQuAD trains on the first answer)."""
    for answer in dict.fromkeys(a for a in answers if a.strip()):
        holders = [i for i in items if answer in i.sentence]
        if holders:
            best = _hardest(question, holders)[0]
            # prefer a whole-word occurrence: "Ann" is not the "Ann" of "Annual"
            word = re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", best.sentence)
            at = word.start() if word else best.sentence.index(answer)
            return best, (at, at + len(answer))
    return None


def build_pairs(
    folder: Path,
    titles: Sequence[str],
    *,
    seed: int,
    config: DataConfig = DataConfig(),
    every: int = 1,
    retrieve: Retrieve | None = None,
) -> tuple[list[Pair], BuildStats]:
    """Pairs for every ``every``-th question of the articles ``titles``, in a fixed
    order; sampling is seeded per question, so a pair set never depends on which
    other articles are built.  ``retrieve`` adds "retrieved" negatives, from the
    paragraphs of ``titles`` only (never another split's text)."""
    from ..corpus import load_corpus

    wanted = set(titles)
    docs = [d for d in load_corpus(folder / CORPUS_FILE) if d.title in wanted]
    by_title: dict[str, list[Any]] = defaultdict(list)
    for d in docs:
        by_title[d.title].append(d)
    questions = [r for r in _rows(folder / V11_FILE) if r["title"] in wanted]
    impossible = [
        r for r in _rows(folder / V20_FILE) if r["title"] in wanted and r.get("is_impossible")
    ]
    questions, impossible = questions[::every], impossible[::every]
    if config.limit_questions is not None:
        questions = questions[: config.limit_questions]
        impossible = impossible[: config.limit_questions // 2]
    stats = BuildStats()
    pairs: list[Pair] = []
    asked = {r["title"] for r in (*questions, *impossible)}
    sentences = _Sentences(docs)
    for title in sorted(asked & set(by_title)):
        art = _Article(sorted(by_title[title], key=lambda d: d.doc_id), sentences)
        for row in (r for r in questions if r["title"] == title):
            stats.questions += 1
            made = _answerable_pairs(art, row, seed, config)
            if not made:
                stats.skipped_no_sentence += 1
            elif retrieve is not None and config.neg_retrieved:
                ranked = [d for d in retrieve(row["question"]) if d not in row["gold_ids"]]
                made += [
                    Pair(row["id"], row["question"], item, 0, None, "retrieved", made[0].answers)
                    for item in _hard_from(
                        row["question"], made[0].answers, ranked, sentences, config.neg_retrieved
                    )
                ]
            pairs.extend(made)
        for row in (r for r in impossible if r["title"] == title):
            stats.unanswerable += 1
            items = art.sentences[row["source_paragraph_id"]]
            for item in _hardest(row["question"], items)[: config.unanswerable]:
                pairs.append(Pair(row["id"], row["question"], item, 0, None, "unanswerable"))
    for p in pairs:
        stats.pairs[p.kind] += 1
    stats.pairs = dict(stats.pairs)
    return pairs, stats


def _answerable_pairs(
    art: _Article, row: dict[str, Any], seed: int, config: DataConfig
) -> list[Pair]:
    qid, question, answers = row["id"], row["question"], tuple(row["answers"])
    gold_id = row["gold_ids"][0]
    items = art.sentences[gold_id]
    found = _gold(question, items, answers)
    if found is None:  # the answer crosses a sentence boundary
        return []
    gold, span = found
    rng = random.Random(f"{seed}:{qid}")
    out = [Pair(qid, question, gold, 1, span, "gold", answers)]
    bad = _answering(items, answers)
    others = [i for i in items if i.start not in bad]
    if others and config.neg_paragraph:
        # the sentence most like the question, then random others of the paragraph
        hard = _hardest(question, others)[0]
        pool = [i for i in others if i is not hard]
        chosen = [hard, *rng.sample(pool, k=min(len(pool), config.neg_paragraph - 1))]
        out += [Pair(qid, question, i, 0, None, "paragraph", answers) for i in chosen]
    ranked = [d for d in art.ranked(question) if d != gold_id]
    in_article = _hard_from(question, answers, ranked, art.sentences.get, config.neg_bm25)
    out += [Pair(qid, question, i, 0, None, "bm25", answers) for i in in_article]
    return out


def _hard_from(
    question: str,
    answers: Sequence[str],
    doc_ids: Iterable[str],
    sentences: Callable[[str], list[ReaderInput] | None],
    n: int,
) -> list[ReaderInput]:
    """The most question-like sentence holding no answer string of each of the first
    ``n`` paragraphs of ``doc_ids`` that have one (unknown ids are passed over)."""
    out: list[ReaderInput] = []
    for doc_id in dict.fromkeys(doc_ids):
        if len(out) >= n:
            break
        cands = sentences(doc_id) or []
        bad = _answering(cands, answers)
        cands = [i for i in cands if i.start not in bad]
        if cands:
            out.append(_hardest(question, cands)[0])
    return out
