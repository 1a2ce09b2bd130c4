"""The reader (citechat.reader): encoding offsets, training loop, artifact, split.

Unit tests use a tiny random BERT (32 dims, 3 layers) and a tiny word-piece vocab
written to tmp_path, so they need no model download and run in seconds; the
real bundled MiniLM is used only in the tests marked integration.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citechat.reader import Reader, ReaderArtifactError, ReaderInput, artifact, inputs_for_sentences
from citechat.reader.data import DataConfig, Pair, build_pairs, squad_split
from citechat.reader.encoding import Encoder

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT / "eval" / "datasets" / "squad-dev"

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_WORDS = [
    "the",
    "a",
    "of",
    "in",
    "is",
    "was",
    "who",
    "won",
    "where",
    "when",
    "what",
    "did",
    "ann",
    "bob",
    "cup",
    "final",
    "match",
    "city",
    "paris",
    "london",
    "rome",
    "born",
    "lives",
    "team",
    "score",
    "goal",
    "year",
    "river",
    "bridge",
    "zurich",
    "cafe",
    "naive",
    "quote",
    "said",
    "it",
    "he",
    "she",
    "they",
    "and",
    "to",
    "on",
    "at",
    "by",
    "for",
]


def _vocab() -> list[str]:
    specials = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,?!'\"-()")
    return specials + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + _WORDS


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_base(tmp_path_factory.mktemp("tiny-base"))


def write_tiny_base(folder: Path) -> Path:
    """A tiny random BERT and its tokenizer saved as a local model folder."""
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
    )
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _net(base: Path, n_top: int = 1, seed: int = 0) -> tuple[Any, Encoder]:
    from citechat.reader.model import ReaderNet
    from citechat.reader.scoring import load_base

    torch.manual_seed(seed)
    bert, tok = load_base(base)
    return ReaderNet(bert, n_top), Encoder(tok, max_len=128)


def _manifest(base: Path, n_top: int = 1) -> artifact.Manifest:
    return artifact.Manifest(
        base_sha256=artifact.sha256_file(artifact.base_weights(base)),
        weights_sha256="",
        n_layers=3,
        n_top=n_top,
        max_len=128,
        calibration=(-1.5, 0.5),
    )


DOC = (
    "The “Cup Final” was won by Ann in Zürich. "
    "Bob said the café was naïve — really. "
    "It rained in Paris."
)


def _doc_inputs() -> list[ReaderInput]:
    spans, at = [], 0
    for sentence in (
        "The “Cup Final” was won by Ann in Zürich.",
        "Bob said the café was naïve — really.",
        "It rained in Paris.",
    ):
        a = DOC.index(sentence, at)
        spans.append((a, a + len(sentence)))
        at = a + len(sentence)
    return inputs_for_sentences(DOC, spans, "Match report | comment by Zoë")


# ---- encoding ---------------------------------------------------------------------


def test_sentence_token_offsets_index_the_document_exactly(tiny_base: Path) -> None:
    _, encoder = _net(tiny_base)
    items = _doc_inputs()
    for item, enc in zip(items, encoder.encode(["Who won the cup?"] * 3, items), strict=True):
        assert DOC[item.start : item.end] == item.sentence
        assert enc.hi > enc.lo
        for a, b in enc.offsets:
            piece = DOC[item.start + a : item.start + b]
            assert piece and piece == item.sentence[a:b] and not piece.isspace()
        # the marker tokens sit right around the sentence
        assert enc.input_ids[enc.lo - 1] == encoder.open_id
        assert enc.input_ids[enc.hi] == encoder.close_id


def test_encoding_keeps_to_the_length_budget(tiny_base: Path) -> None:
    _, encoder = _net(tiny_base)
    long = " ".join(["the river bridge"] * 80)
    item = ReaderInput("a cup " * 30, long, long, long, 0)
    (enc,) = encoder.encode(["who won " * 40], [item])
    assert len(enc.input_ids) == 128
    assert enc.hi - enc.lo > 40  # the sentence is kept before the neighbours
    assert enc.token_span(0, 3) == (enc.lo, enc.lo)
    assert enc.token_span(10**6, 10**6 + 1) is None


def test_scores_spans_are_document_slices(tiny_base: Path, tmp_path: Path) -> None:
    net, _ = _net(tiny_base)
    folder = artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    assert folder.weights_sha256
    reader = Reader.load(tmp_path / "r", base=tiny_base)
    items = _doc_inputs()
    scores = reader.score("Who won the “Cup Final”?", items)
    assert len(scores) == len(items)
    for item, s in zip(items, scores, strict=True):
        assert 0.0 < s.p_answer < 1.0
        assert s.span is not None
        a, b = s.span
        assert item.start <= a < b <= item.end
        assert DOC[a:b] == s.text
    assert reader.score("anything", []) == []


# ---- training ---------------------------------------------------------------------


def _synthetic() -> list[Pair]:
    """Questions "who won X": the sentence naming a winner answers, the others do not."""
    out = []
    teams = ["ann", "bob"]
    things = ["cup", "final", "match", "goal"]
    for i, thing in enumerate(things * 2):
        winner = teams[i % 2]
        q = f"who won the {thing}?"
        gold = f"{winner} won the {thing} in paris."
        other = f"the {thing} was in london."
        for label, sentence in ((1, gold), (0, other)):
            item = ReaderInput("match report", "it rained.", sentence, "the end.", 10)
            span = (0, len(winner)) if label else None
            pairs = Pair(f"q{i}", q, item, label, span, "gold" if label else "paragraph", (winner,))
            out.append(pairs)
    return out


def test_training_lowers_the_loss_and_reports(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader import report
    from citechat.reader.cache import LowerCache
    from citechat.reader.train import TrainConfig, _targets, fit, mean_loss

    pairs = _synthetic()
    net, encoder = _net(tiny_base)
    enc = encoder.encode([p.question for p in pairs], [p.item for p in pairs])
    cache = LowerCache.build(net, encoder, enc, tmp_path / "c", progress=False)
    targets = _targets(pairs, enc)
    assert (targets[:, 1] >= 0).sum() == 8  # every gold pair has a token span
    before = mean_loss(net, cache, targets)
    config = TrainConfig(epochs=6, batch_size=4, lr=3e-3, head_lr=1e-2, warmup=0.0)
    result = fit(net, encoder, pairs, pairs, config, tmp_path / "work", progress=False)
    after = mean_loss(net, cache, targets)
    assert after < before * 0.8
    assert len(result.losses) == 6 * 4 and len(result.history) == 6
    assert result.best_state and result.best["select"] >= result.history[0]["select"]
    report.write(tmp_path / "report", result, {"command": "test"})
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["best"]["select"] == result.best["select"]
    assert (tmp_path / "report" / "loss.png").stat().st_size > 1000


def test_interrupted_training_resumes_to_the_same_weights(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader.train import TrainConfig, fit

    pairs = _synthetic()
    config = TrainConfig(epochs=2, batch_size=4, checkpoint_every=1)

    whole, encoder = _net(tiny_base)
    fit(whole, encoder, pairs, pairs, config, tmp_path / "a", progress=False)

    part, encoder = _net(tiny_base)
    first = fit(part, encoder, pairs, pairs, config, tmp_path / "b", progress=False, stop_after=3)
    assert len(first.losses) == 3
    resumed, encoder = _net(tiny_base, seed=99)  # fresh heads: the checkpoint must win
    second = fit(resumed, encoder, pairs, pairs, config, tmp_path / "b", progress=False)
    assert len(second.losses) == 8
    for key, value in whole.trainable_state().items():
        assert torch.equal(value, resumed.trainable_state()[key]), key


# ---- artifact ---------------------------------------------------------------------


def test_artifact_round_trips(tiny_base: Path, tmp_path: Path) -> None:
    net, encoder = _net(tiny_base, seed=3)
    # what the artifact holds is float16: round the in-memory copy the same way
    state = {k: v.to(torch.float16).to(torch.float32) for k, v in net.trainable_state().items()}
    net.load_state_dict(state, strict=False)
    saved = artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    in_memory = Reader(net, encoder, saved)
    loaded = Reader.load(tmp_path / "r", base=tiny_base)
    items = _doc_inputs()
    want, got = in_memory.score("Where was it?", items), loaded.score("Where was it?", items)
    assert [s.span for s in got] == [s.span for s in want]
    assert np.allclose([s.logit for s in got], [s.logit for s in want], atol=1e-5)
    assert loaded.manifest.calibration == (-1.5, 0.5)
    size = (tmp_path / "r" / artifact.WEIGHTS).stat().st_size
    assert size < 2 * sum(v.numel() for v in state.values()) + 10_000  # float16


def test_p_unanswerable_falls_as_the_best_candidate_rises(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader import ReaderScore

    net, encoder = _net(tiny_base)
    reader = Reader(net, encoder, _manifest(tiny_base))
    low = [ReaderScore(0.1, -2.0, None, ""), ReaderScore(0.2, -1.4, None, "")]
    high = [*low, ReaderScore(0.9, 2.2, (0, 1), "x")]
    assert reader.p_unanswerable([]) == 1.0
    assert reader.p_unanswerable(high) < reader.p_unanswerable(low)


def _damage_truncate(folder: Path) -> None:
    weights = folder / artifact.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:100])


def _damage_base_hash(folder: Path) -> None:
    data = json.loads((folder / artifact.MANIFEST).read_text())
    data["base_sha256"] = "0" * 64
    (folder / artifact.MANIFEST).write_text(json.dumps(data))


def _damage_manifest(folder: Path) -> None:
    (folder / artifact.MANIFEST).write_text("{not json")


def _damage_remove(folder: Path) -> None:
    (folder / artifact.WEIGHTS).unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_damage_truncate, "damaged"),
        (_damage_base_hash, "another base model"),
        (_damage_manifest, "manifest"),
        (_damage_remove, "has no"),
    ],
)
def test_damaged_artifact_raises_the_reader_error(
    tiny_base: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    net, _ = _net(tiny_base)
    artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    damage(tmp_path / "r")
    with pytest.raises(ReaderArtifactError, match=message) as err:
        Reader.load(tmp_path / "r", base=tiny_base)
    assert "\n" not in str(err.value)


def test_missing_artifact_and_mismatched_tensors_raise(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(ReaderArtifactError, match="no reader model"):
        Reader.load(tmp_path / "nothing", base=tiny_base)
    net, _ = _net(tiny_base, n_top=2)
    artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base, n_top=1))
    with pytest.raises(ReaderArtifactError, match="do not fit"):
        Reader.load(tmp_path / "r", base=tiny_base)


# ---- data -------------------------------------------------------------------------


def test_split_keeps_test_and_abstention_articles_out() -> None:
    split = squad_split(SQUAD)
    assert split.test == ("Super Bowl 50", "Warsaw")
    assert len(split.heldout) == 17
    kept_out = {*split.test, *split.heldout}
    assert set(split.test) & set(split.heldout) == {"Warsaw"}  # in both question sets
    roles = [kept_out, set(split.validation), set(split.train)]
    assert sum(map(len, roles)) == 48 == len(set().union(*roles))
    # eval/calibrate_abstention.py: every 3rd v2.0 question, sorted titles, odd positions
    with open(SQUAD / "questions_v2.0.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh][::3]
    assert list(split.heldout) == sorted({r["title"] for r in rows})[1::2]


def test_pairs_find_the_gold_sentence_and_clean_negatives(tmp_path: Path) -> None:
    corpus = [
        {
            "id": "A_0",
            "title": "A",
            "text": "Ann won the cup in 1990. Bob lost. It rained all day.",
        },
        {"id": "A_1", "title": "A", "text": "The cup is old. Nobody knows who made the cup."},
    ]
    v11 = [
        {
            "id": "q1",
            "question": "Who won the cup?",
            "answers": ["Ann", "Ann"],
            "gold_ids": ["A_0"],
            "title": "A",
        },
    ]
    v20 = [
        {
            "id": "q2",
            "question": "Who lost the cup final?",
            "answers": [],
            "gold_ids": [],
            "is_impossible": True,
            "source_paragraph_id": "A_0",
            "title": "A",
        },
    ]
    for name, rows in (("corpus", corpus), ("questions", v11), ("questions_v2.0", v20)):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pairs, stats = build_pairs(tmp_path, ["A"], seed=1, config=DataConfig(unanswerable=2))
    kinds = [(p.qid, p.kind, p.item.sentence) for p in pairs]
    assert kinds[0] == ("q1", "gold", "Ann won the cup in 1990.")
    gold = pairs[0]
    assert gold.span and gold.item.sentence[slice(*gold.span)] == "Ann"
    text = corpus[0]["text"]
    assert all(text[p.item.start : p.item.end] == p.item.sentence for p in pairs if p.qid == "q2")
    negatives = [p for p in pairs if p.qid == "q1" and p.label == 0]
    assert {p.kind for p in negatives} == {"paragraph", "bm25"}
    assert all("Ann" not in p.item.sentence for p in negatives)
    assert [p.kind for p in pairs if p.qid == "q2"] == ["unanswerable"] * 2
    assert stats.pairs == {"gold": 1, "paragraph": 2, "bm25": 1, "unanswerable": 2}
    again, _ = build_pairs(tmp_path, ["A"], seed=1, config=DataConfig(unanswerable=2))
    assert again == pairs


def test_retrieved_negatives_come_from_the_built_articles_only(tmp_path: Path) -> None:
    corpus = [
        {"id": "A_0", "title": "A", "text": "Ann won the cup in 1990. Bob lost."},
        {"id": "A_1", "title": "A", "text": "The cup is old. Ann kept it."},
        {"id": "B_0", "title": "B", "text": "A cup final was played. The crowd sang."},
        {"id": "T_0", "title": "T", "text": "Test text: who won the cup was asked."},
    ]
    v11 = [{"id": "q1", "question": "Who won the cup?", "answers": ["Ann"], "gold_ids": ["A_0"]}]
    v11[0]["title"] = "A"
    for name, rows in (("corpus", corpus), ("questions", v11), ("questions_v2.0", [])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    asked: list[str] = []

    def retrieve(question: str) -> list[str]:
        asked.append(question)
        # the gold paragraph, a paragraph of another split, then two of the built ones
        return ["A_0", "T_0", "B_0", "A_1"]

    config = DataConfig(neg_retrieved=2)
    pairs, stats = build_pairs(tmp_path, ["A", "B"], seed=1, config=config, retrieve=retrieve)
    assert asked == ["Who won the cup?"]
    got = [p.item.sentence for p in pairs if p.kind == "retrieved"]
    # B_0's most question-like sentence; A_1's without the answer string ("Ann kept it.")
    assert got == ["A cup final was played.", "The cup is old."]
    assert stats.pairs["retrieved"] == 2
    assert all(p.label == 0 and p.span is None for p in pairs if p.kind == "retrieved")
    without, _ = build_pairs(tmp_path, ["A", "B"], seed=1, config=config)
    assert without == [p for p in pairs if p.kind != "retrieved"]


# ---- the real bundled MiniLM -------------------------------------------------------


@pytest.mark.integration
def test_minilm_layers_run_as_the_base_model_runs(tmp_path: Path) -> None:
    from citechat.reader.scoring import bundled_base

    base = bundled_base()
    net, encoder = _net(base, n_top=2)
    items = _doc_inputs()
    arrays = encoder.batch(encoder.encode(["Who won the “Cup Final”?"] * 3, items))
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    with torch.inference_mode():
        lower = net.lower(t["input_ids"], t["token_type_ids"], t["attention_mask"])
        mine = net.upper(lower, t["attention_mask"])
        theirs = net.bert(
            input_ids=t["input_ids"],
            token_type_ids=t["token_type_ids"],
            attention_mask=t["attention_mask"],
        ).last_hidden_state
    real = t["attention_mask"].bool()
    assert torch.allclose(mine[real], theirs[real], atol=1e-4)
    for item, enc in zip(items, encoder.encode(["q"] * 3, items), strict=True):
        assert all(DOC[item.start + a : item.start + b] for a, b in enc.offsets)
    saved = artifact.save(
        tmp_path / "r", net.trainable_state(), replace(_manifest(base, 2), n_layers=6)
    )
    reader = Reader.load(tmp_path / "r")
    assert reader.manifest.base_sha256 == saved.base_sha256
    for item, s in zip(items, reader.score("Who won?", items), strict=True):
        assert s.span and DOC[s.span[0] : s.span[1]] == s.text and item.start <= s.span[0]


def test_gold_span_prefers_a_whole_word_occurrence() -> None:
    from citechat.reader.data import _gold

    item = ReaderInput("T", "", "Annual prizes went to Ann.", "", 0)
    found = _gold("Who won the prizes?", [item], ["Ann"])
    assert found is not None and found[1] == (22, 25)
