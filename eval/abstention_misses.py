"""Abstention misses: which questions are declined wrongly or not declined, and why.

    python eval/abstention_misses.py eval/datasets/seed/questions.jsonl
    python eval/abstention_misses.py eval/datasets/seed/questions_reader.jsonl --split tune
    python eval/abstention_misses.py eval/datasets/squad-dev/questions_v2.0.jsonl --every 5 \
        --exclude eval/datasets/squad-dev/questions_v2.0_heldout.jsonl \
        --exclude eval/datasets/squad-dev/questions_v1.1_first1000.jsonl \
        --corpus eval/datasets/squad-dev/corpus.jsonl --index /tmp/squad-index --quiet

For every unanswerable that is answered and every answerable that is declined it
prints p(answerable), the answer type asked for and its support (``typed``), the
question's terms with their IDF (``-`` for a term no chunk holds) and whether a
top-5 candidate sentence / a retrieved chunk holds them, and the best three
candidate sentences.  Then it tries a few lexical "the asked thing is missing"
gates (decline also when the signal fires and p(answerable) < g) and prints what
each gains on unanswerables and costs on answerables, so a new gate is judged on
tuning questions before it is built.  It changes nothing.  Run it on tuning
splits only (not the reader report split, not the held-out SQuAD articles).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from citechat.answer_metrics import gold_contained
from citechat.answertypes import typed_phrase
from citechat.config import Settings
from citechat.evaluation import is_answerable, read_questions
from citechat.pipeline import Pipeline
from citechat.text import term_set


@dataclass(frozen=True)
class Row:
    id: str
    question: str
    answerable: bool
    declined: bool
    right: bool  # gold in the answer
    p: float
    typed: float
    has_type: bool
    #: (term, idf or None when no chunk holds it, in a top-5 sentence, in a retrieved chunk)
    terms: tuple[tuple[str, float | None, bool, bool], ...]
    top: tuple[str, ...]
    #: the asked type's support near the question's rarest predicate term(s) alone (1
    #: when untyped or no predicate term is in the index)
    anchored: float = 1.0

    def known(self) -> list[tuple[str, float, bool, bool]]:
        return [(t, i, s, c) for t, i, s, c in self.terms if i is not None]

    def rarest_missing(self) -> bool:
        """The question's rarest term (highest IDF) is in no top-5 sentence."""
        known = self.known()
        return bool(known) and not max(known, key=lambda t: t[1])[2]

    def missing_share(self) -> float:
        """IDF-weighted share of the question's terms in no top-5 sentence."""
        known = self.known()
        total = sum(i for _, i, _, _ in known)
        return sum(i for _, i, s, _ in known if not s) / total if total > 0 else 0.0

    def weak_type(self) -> bool:
        """Asks for a name/date/number that the top sentences offer only weakly."""
        return self.has_type and self.typed < 0.4


GATES: dict[str, Callable[[Row], bool]] = {
    "rarest term in no top-5 sentence": Row.rarest_missing,
    ">= 60% of the IDF in no top-5 sentence": lambda r: r.missing_share() >= 0.6,
    "asked type supported < 0.4": Row.weak_type,
    "asked type not near the rarest predicate term": lambda r: r.has_type and r.anchored <= 0,
}


def read_rows(pipe: Pipeline, questions: list[dict[str, object]], k: int) -> list[Row]:
    idf = pipe.retriever.idf
    out = []
    for q in questions:
        question = str(q["question"])
        answer = pipe.ask(question, k=k)
        reading = pipe.read(question, k)
        top5 = [c.text for c in reading.candidates[:5]]
        in_sent = frozenset().union(*(term_set(t) for t in top5))
        in_chunk = frozenset().union(*(term_set(h.chunk.embedding_text()) for h in reading.hits))
        asked = reading._asked
        golds = [str(a) for a in q.get("answers") or []]  # type: ignore[attr-defined]
        feats = reading.features
        anchored = 1.0
        known = [t for t in asked.predicates if idf.get(t, 0.0) > 0]
        if asked.wanted is not None and known:
            top_idf = max(idf[t] for t in known)
            anchor = {t for t in known if idf[t] == top_idf}  # ties: any of them
            anchored = max(
                (
                    typed_phrase(c.text, asked.wanted, asked.terms, anchor, idf)[0]
                    for c in reading.candidates[:5]
                ),
                default=0.0,
            )
        out.append(
            Row(
                str(q["id"]),
                question,
                bool(is_answerable(q)),
                answer.abstained,
                bool(golds) and not answer.abstained and gold_contained(answer.text, golds) > 0,
                answer.confidence if answer.confidence is not None else 1.0,
                feats["typed"],
                feats["has_type"] > 0,
                tuple(
                    (t, idf.get(t), t in in_sent, t in in_chunk)
                    for t in sorted(asked.terms, key=lambda t: -idf.get(t, 99.0))
                ),
                tuple(top5[:3]),
                anchored,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("questions", type=Path)
    ap.add_argument("--split", help='only the questions whose "split" field is this')
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--index", type=Path)
    ap.add_argument("--every", type=int, default=1, help="use every Nth question")
    ap.add_argument(
        "--exclude",
        type=Path,
        action="append",
        default=[],
        help="leave out the articles (titles) of this question set (held-out ones)",
    )
    ap.add_argument("--quiet", action="store_true", help="print only the gate table")
    ap.add_argument("-k", type=int, default=10, help="passages, as citechat eval (default 10)")
    args = ap.parse_args()
    settings = Settings() if args.corpus is None else Settings(corpus=args.corpus, index=args.index)
    pipe = Pipeline.load(settings, sync=False)
    questions = [
        q
        for q in read_questions(args.questions, None)
        if is_answerable(q) is not None and (args.split is None or q.get("split") == args.split)
    ]
    held = {str(q.get("title")) for path in args.exclude for q in read_questions(path, None)}
    questions = [q for q in questions if str(q.get("title")) not in held][:: args.every]
    rows = read_rows(pipe, questions, args.k)
    for r in rows:
        if r.answerable == r.declined and not args.quiet:
            kind = "answerable declined" if r.answerable else "unanswerable answered"
            print(f"\n{r.id} {kind}: p={r.p:.2f} typed={r.typed:.2f} has_type={r.has_type}")
            print(f"  {r.question}")
            print(
                "  "
                + " ".join(
                    f"{t}({'-' if i is None else f'{i:.1f}'}{'S' if s else ''}{'C' if c else ''})"
                    for t, i, s, c in r.terms
                )
            )
            for text in r.top:
                print(f"   - {text[:150]}")
    un = [r for r in rows if not r.answerable]
    an = [r for r in rows if r.answerable]
    print(
        f"\ntoday: declined {sum(r.declined for r in un)}/{len(un)} unanswerables, "
        f"{sum(r.declined for r in an)}/{len(an)} answerables"
    )
    for name, fires in GATES.items():
        for g in (0.45, 0.5, 0.55):
            gain = sum(not r.declined and fires(r) and r.p < g for r in un)
            cost = sum(not r.declined and fires(r) and r.p < g for r in an)
            lost = sum(r.right and fires(r) and r.p < g for r in an)
            print(
                f"  {name}, p < {g}: +{gain} unanswerables, +{cost} answerables "
                f"({lost} answered right today)"
            )


if __name__ == "__main__":
    main()
