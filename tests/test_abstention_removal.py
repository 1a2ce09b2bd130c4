"""eval/abstention_removal.py: on-topic unanswerables made by taking the gold
sentences out of the retrieved chunks, and the fit over such rows."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from citechat.abstention import FEATURES, AbstentionModel
from citechat.config import Settings
from citechat.pipeline import Pipeline

SCRIPT = Path(__file__).resolve().parents[1] / "eval" / "abstention_removal.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("abstention_removal", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_removed_takes_out_the_gold_sentences_and_keeps_the_rest(
    script: ModuleType, fake_settings: Settings
) -> None:
    pipe = Pipeline.load(fake_settings)
    q = "Who did Ed Balls appoint as director?"
    r = pipe.retriever.search(q, 3)
    assert r.query_vector is not None
    hits, taken = script.removed(pipe, r.hits, ["Peter Lewis"], [], r.query_vector)
    assert taken == 1
    texts = [
        pipe.index.documents[h.chunk.doc_id].text[a:b] for h in hits for a, b in h.chunk.sentences
    ]
    assert not any("Peter Lewis" in t for t in texts)
    assert any("monthly updates" in t for t in texts)  # the rest of the chunk stays
    balls = next(h for h in hits if h.chunk.doc_id == "balls.txt")
    assert "Peter Lewis" not in balls.chunk.text and balls.dense_score is not None
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    # a quote's span takes out the sentences it overlaps, whatever the answer strings
    doc = pipe.index.documents["balls.txt"].text
    at = doc.index("Inspectors found")
    hits2, taken2 = script.removed(pipe, r.hits, [], [("balls.txt", at, at + 10)], r.query_vector)
    assert taken2 == 1 and len(hits2) <= len(r.hits)


def test_features_and_fit_end_to_end(
    script: ModuleType,
    fake_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Pipeline.load(fake_settings)  # builds the index
    monkeypatch.setenv("CITECHAT_EMBEDDER", fake_settings.embedder)
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "Who did Ed Balls appoint?", "answers": ["Peter Lewis"]},
        {"id": "b", "question": "What closed schools across London?", "answers": ["Heavy snow"]},
        {"id": "c", "question": "What did the zebra eat?", "answers": [], "answerable": False},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "rows.jsonl"
    base = ["abstention_removal.py", "features", str(questions), "--corpus"]
    args = [*base, str(fake_settings.corpus), "--index", str(fake_settings.index)]
    monkeypatch.setattr(sys, "argv", [*args, "--source", "tiny", "--out", str(out)])
    script.main()
    got = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [(g["id"], g["kind"], g["y"]) for g in got]
    assert ("a", "as is", 1) in kinds and ("a", "removed", 0) in kinds
    assert ("c", "as is", 0) in kinds and ("c", "removed", 0) not in kinds
    assert all(set(FEATURES) <= set(g) for g in got)
    removed_a = next(g for g in got if g["id"] == "a" and g["kind"] == "removed")
    as_is_a = next(g for g in got if g["id"] == "a" and g["kind"] == "as is")
    assert removed_a["lexical"] <= as_is_a["lexical"]
    # off-topic: every question unanswerable, as it is
    off = tmp_path / "off.jsonl"
    monkeypatch.setattr(sys, "argv", [*args, "--off-topic", "--out", str(off)])
    script.main()
    assert {json.loads(line)["y"] for line in off.read_text().splitlines()} == {0}
    model = tmp_path / "m.json"
    fit = ["abstention_removal.py", "fit", str(out), "--tune", str(out), "--cv"]
    monkeypatch.setattr(sys, "argv", [*fit, "--threshold", "0.2", "--out", str(model)])
    script.main()
    m = AbstentionModel.load(model)
    assert m.threshold == 0.2 and m.coef[FEATURES.index("reader_cosine")] == 0.0
    monkeypatch.setattr(
        sys, "argv", ["abstention_removal.py", "score", str(out), "--model", str(model)]
    )
    script.main()
    assert "AUC" in capsys.readouterr().out
