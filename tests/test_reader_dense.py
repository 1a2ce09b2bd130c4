"""The dense reader (reader/dense.py, reader/densefit.py): before training it is the
base model's cosine; a few training steps lower the loss; an interrupted run resumes
to the same weights; the artifact round-trips and loads through ``Reader.load``.

Unit tests use the tiny random BERT of test_reader.py; the one test with the real
bundled MiniLM is marked integration.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import test_reader as cross
from citechat.reader import Reader, ReaderInput, artifact
from citechat.reader.data import Pair

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SQUAD = Path(__file__).resolve().parents[1] / "eval" / "datasets" / "squad-dev"
_doc_inputs = cross._doc_inputs


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cross.write_tiny_base(tmp_path_factory.mktemp("tiny-base"))


def _net(base: Path, n_top: int = 1, seed: int = 0) -> tuple[Any, Any]:
    from citechat.reader.dense import DenseNet
    from citechat.reader.scoring import load_base

    torch.manual_seed(seed)
    bert, tok = load_base(base)
    return DenseNet(bert, n_top), tok


def _manifest(base: Path, n_top: int = 1, n_layers: int = 3) -> artifact.Manifest:
    return artifact.Manifest(
        base_sha256=artifact.sha256_file(artifact.base_weights(base)),
        weights_sha256="",
        n_layers=n_layers,
        n_top=n_top,
        max_len=64,
        calibration=(-2.0, 1.0),
        kind="dense",
        answer_calibration=(8.0, -4.0),
    )


def _base_cosines(base: Path, question: str, texts: list[str]) -> np.ndarray:
    """Mean-pooled, unit-length embeddings of the untouched base model."""
    tok = transformers.AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    bert = transformers.AutoModel.from_pretrained(
        str(base), local_files_only=True, add_pooling_layer=False
    ).eval()
    vecs = []
    with torch.inference_mode():
        for text in [question, *texts]:
            t = tok([text], return_tensors="pt", truncation=True, max_length=64)
            out = bert(**t).last_hidden_state[0]
            v = out.mean(0)
            vecs.append((v / v.norm()).numpy())
    return np.array([float(v @ vecs[0]) for v in vecs[1:]])


def _synthetic() -> list[Pair]:
    """ "where was X born?": the sentence with "born" answers; "lives" and the river
    sentence do not."""
    out = []
    people, cities = ["ann", "bob"], ["paris", "london", "rome", "zurich"]
    for i in range(8):
        who, city, other = people[i % 2], cities[i % 4], cities[(i + 1) % 4]
        q, qid = f"where was {who} born?", f"q{i}"
        rows = [
            (1, f"{who} was born in {city}.", "gold"),
            (0, f"{who} lives in {other}.", "paragraph"),
            (0, f"the river bridge of {other}.", "bm25"),
        ]
        for label, sentence, kind in rows:
            item = ReaderInput("city report", "", sentence, "", 0)
            out.append(Pair(qid, q, item, label, (0, 3) if label else None, kind, (city,)))  # type: ignore[arg-type]
    return out


def test_before_training_it_scores_the_base_cosine(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader.dense import DenseReader, candidate_text

    net, _ = _net(tiny_base)
    artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    reader = Reader.load(tmp_path / "r", base=tiny_base)
    assert isinstance(reader, DenseReader)
    items = _doc_inputs()
    question = "Who won the cup?"
    want = _base_cosines(tiny_base, question, [candidate_text(i) for i in items])
    # float16 storage of the top layer moves the cosine a little, never the order
    got = np.array(reader.cosines(question, items))
    assert np.allclose(got, want, atol=2e-3)
    scores = reader.score(question, items)
    assert [s.logit for s in scores] == pytest.approx([8.0 * c - 4.0 for c in got])
    assert all(s.span is None and s.text == "" and 0 < s.p_answer < 1 for s in scores)
    assert reader.score(question, []) == []
    # the best candidate's logit pools into P(unanswerable) through the calibration
    best = max(s.logit for s in scores)
    assert reader.p_unanswerable(scores) == pytest.approx(1 / (1 + np.exp(2.0 * best - 1.0)))


def test_examples_take_the_hardest_negatives_and_skip_unanswerables() -> None:
    from citechat.reader.densefit import examples

    pairs = _synthetic()
    item = ReaderInput("h", "", "nothing here.", "", 0)
    pairs.append(Pair("u1", "where was eve born?", item, 0, None, "unanswerable"))
    got = examples(pairs, negatives=1)
    assert len(got) == 8  # the unanswerable question has no gold sentence
    assert got[0].positive == "city report\nann was born in paris."
    assert got[0].negatives == ("city report\nann lives in london.",)
    assert len(examples(pairs, negatives=5)[0].negatives) == 2


def test_retrieved_negatives_rank_after_the_paragraphs_hardest() -> None:
    from citechat.reader.densefit import examples

    def pair(sentence: str, label: int, kind: str) -> Pair:
        item = ReaderInput("h", "", sentence, "", 0)
        return Pair("q", "who?", item, label, (0, 1) if label else None, kind)  # type: ignore[arg-type]

    pairs = [
        pair("gold.", 1, "gold"),
        pair("hardest.", 0, "paragraph"),
        pair("random.", 0, "paragraph"),
        pair("bm25.", 0, "bm25"),
        pair("retrieved.", 0, "retrieved"),
    ]
    got = examples(pairs, negatives=4)[0].negatives
    assert got == ("h\nhardest.", "h\nretrieved.", "h\nbm25.", "h\nrandom.")


def test_training_lowers_the_loss_and_reports(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader import report
    from citechat.reader.densefit import DenseConfig, examples, fit, mean_loss

    pairs = _synthetic()
    config = DenseConfig(epochs=8, batch_size=4, lr=3e-3, warmup=0.0, eval_every=0)
    net, tok = _net(tiny_base)
    data = examples(pairs, config.negatives)
    before = mean_loss(net, tok, data, config)
    result = fit(net, tok, pairs, pairs, config, tmp_path / "work", progress=False)
    after = mean_loss(net, tok, data, config)
    assert after < before * 0.8
    assert len(result.losses) == 8 * 2
    # step 0 (the base model) and each epoch's end
    assert [h["step"] for h in result.history] == [0.0, *range(2, 17, 2)]
    assert result.best["select"] == max(h["select"] for h in result.history)
    assert "answer_a" in result.best and len(result.calibration) == 2
    report.write(tmp_path / "report", result, {"command": "test"})
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["best"]["top1"] == result.best["top1"]
    assert (tmp_path / "report" / "loss.png").stat().st_size > 1000


def test_interrupted_training_resumes_to_the_same_weights(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader.densefit import DenseConfig, fit

    pairs = _synthetic()
    config = DenseConfig(epochs=2, batch_size=4, checkpoint_every=1, eval_every=0)
    whole, tok = _net(tiny_base)
    fit(whole, tok, pairs, pairs, config, tmp_path / "a", progress=False)
    part, tok = _net(tiny_base)
    first = fit(part, tok, pairs, pairs, config, tmp_path / "b", progress=False, stop_after=3)
    assert len(first.losses) == 3
    resumed, tok = _net(tiny_base, seed=99)
    second = fit(resumed, tok, pairs, pairs, config, tmp_path / "b", progress=False)
    assert len(second.losses) == 4
    for key, value in whole.trainable_state().items():
        assert torch.equal(value, resumed.trainable_state()[key]), key


def test_dense_artifact_round_trips_and_refuses_a_misfit(tiny_base: Path, tmp_path: Path) -> None:
    from citechat.reader import ReaderArtifactError
    from citechat.reader.dense import DenseReader

    net, tok = _net(tiny_base, seed=3)
    state = {k: v.to(torch.float16).to(torch.float32) for k, v in net.trainable_state().items()}
    net.load_state_dict(state, strict=False)
    saved = artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    in_memory = DenseReader(net, tok, saved)
    loaded = Reader.load(tmp_path / "r", base=tiny_base)
    assert loaded.manifest.kind == "dense" and loaded.manifest.answer_calibration == (8.0, -4.0)
    items = _doc_inputs()
    want, got = in_memory.score("Where was it?", items), loaded.score("Where was it?", items)
    assert np.allclose([s.logit for s in got], [s.logit for s in want], atol=1e-5)
    # two trained layers saved where the manifest says one
    two, _ = _net(tiny_base, n_top=2)
    artifact.save(tmp_path / "bad", two.trainable_state(), _manifest(tiny_base))
    with pytest.raises(ReaderArtifactError, match="do not fit"):
        Reader.load(tmp_path / "bad", base=tiny_base)


def test_stored_sentence_vectors_leave_only_the_question_to_embed(
    tiny_base: Path, tmp_path: Path
) -> None:
    from citechat.reader.dense import DenseReader, candidate_text

    net, _ = _net(tiny_base, seed=3)
    artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    plain = DenseReader.load(tmp_path / "r", base=tiny_base)
    stored = Reader.load(tmp_path / "r", base=tiny_base, vectors=tmp_path / "vectors")
    assert isinstance(stored, DenseReader) and stored.store is not None
    items = _doc_inputs()
    assert stored.prepare(items) == len({candidate_text(i) for i in items})
    assert stored.prepare(items) == 0  # all stored already
    embedded: list[list[str]] = []
    real = stored._embed

    def recording(texts: Any) -> Any:
        embedded.append(list(texts))
        return real(texts)

    stored._embed = recording  # type: ignore[method-assign]
    question = "Where was it?"
    got = stored.cosines(question, items)
    assert embedded == [[question]]  # the sentence side came from the store
    assert np.allclose(got, plain.cosines(question, items), atol=1e-5)
    # a later process with the same artifact reads the same store; a new sentence is
    # embedded once, then stored
    later = Reader.load(tmp_path / "r", base=tiny_base, vectors=tmp_path / "vectors")
    new = replace(items[0], sentence="A sentence nobody prepared.")
    assert later.prepare([*items, new]) == 1


def test_a_reader_artifact_brings_its_abstention_model(
    tiny_base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from citechat.abstention import FEATURES, AbstentionModel
    from citechat.rereading import ABSTENTION, load_reader

    net, _ = _net(tiny_base)
    folder = tmp_path / "r"
    artifact.save(folder, net.trainable_state(), _manifest(tiny_base))
    assert load_reader(str(folder), base=tiny_base, vectors=tmp_path / "v").stage.abstention is None  # type: ignore[union-attr]
    own = AbstentionModel((1.0,) * len(FEATURES), -2.0, 0.3, "test")
    own.save(folder / ABSTENTION)
    stage = load_reader(str(folder), base=tiny_base, vectors=tmp_path / "v").stage
    assert stage is not None and stage.abstention == own
    (folder / ABSTENTION).write_text("{broken", encoding="utf-8")
    with caplog.at_level("WARNING", logger="citechat"):
        stage = load_reader(str(folder), base=tiny_base, vectors=tmp_path / "v").stage
    assert stage is not None and stage.abstention is None  # the packaged model decides
    assert "abstention model is not used" in caplog.text


def test_an_old_manifest_reads_as_a_cross_encoder(tiny_base: Path, tmp_path: Path) -> None:
    net, _ = _net(tiny_base)
    artifact.save(tmp_path / "r", net.trainable_state(), _manifest(tiny_base))
    data = json.loads((tmp_path / "r" / artifact.MANIFEST).read_text())
    del data["kind"], data["answer_calibration"]
    (tmp_path / "r" / artifact.MANIFEST).write_text(json.dumps(data))
    manifest = artifact.read_manifest(tmp_path / "r")
    assert manifest.kind == "cross" and manifest.answer_calibration == (1.0, 0.0)


def test_a_setting_of_the_other_design_is_refused() -> None:
    from citechat.errors import UsageError
    from citechat.reader.train import main

    with pytest.raises(UsageError, match="--span-weight is not a setting of --design dense"):
        main(["--data", str(SQUAD), "--span-weight", "2"])
    with pytest.raises(UsageError, match="--negatives is not a setting of --design cross"):
        main(["--data", str(SQUAD), "--design", "cross", "--negatives", "1"])


@pytest.mark.integration
def test_untrained_dense_reader_is_the_bundled_embedder(tmp_path: Path) -> None:
    """The bundled MiniLM through DenseNet embeds as sentence-transformers does."""
    from sentence_transformers import SentenceTransformer

    from citechat.reader.dense import candidate_text
    from citechat.reader.scoring import bundled_base

    base = bundled_base()
    net, _ = _net(base, n_top=2)
    artifact.save(tmp_path / "r", net.trainable_state(), replace(_manifest(base, 2, 6), max_len=96))
    reader = Reader.load(tmp_path / "r")
    items = _doc_inputs()
    st = SentenceTransformer(str(base), device="cpu")
    vecs = st.encode(
        ["Who won the cup?", *(candidate_text(i) for i in items)], normalize_embeddings=True
    )
    want = vecs[1:] @ vecs[0]
    assert np.allclose(reader.cosines("Who won the cup?", items), want, atol=2e-3)  # type: ignore[attr-defined]
