"""Abstention: the calibrated model, its packaged coefficients, and the
answer-type feature that both sentence choice and abstention use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citechat.abstention import FEATURES, AbstentionModel
from citechat.answering import DECLINE, ExtractiveAnswerer, packaged_abstention
from citechat.answertypes import answer_type, typed_support
from citechat.config import BUNDLED_EMBEDDER, Settings
from citechat.errors import ConfigError
from citechat.pipeline import Pipeline


def model(threshold: float = 0.5, **weights: float) -> AbstentionModel:
    coef = tuple(weights.get(name, 0.0) for name in FEATURES)
    return AbstentionModel(coef, weights.get("intercept", 0.0), threshold, "test")


def test_packaged_model_loads_and_names_its_calibration() -> None:
    m = AbstentionModel.load()
    assert len(m.coef) == len(FEATURES)
    assert 0.0 < m.threshold < 1.0
    assert "questions_v2.0" in m.calibrated_on
    assert m.embedder == BUNDLED_EMBEDDER


def test_packaged_model_is_only_used_with_its_embedder(fake_settings: Settings) -> None:
    assert packaged_abstention(BUNDLED_EMBEDDER) == AbstentionModel.load()
    assert packaged_abstention("hashing-256") is None
    pipe = Pipeline.load(fake_settings)  # the hashing embedder: the evidence threshold decides
    assert ExtractiveAnswerer(pipe.retriever).abstention is None


def test_round_trip_and_bad_files(tmp_path: Path) -> None:
    m = model(evidence=3.0, typed=1.5, intercept=-1.0, threshold=0.4)
    path = tmp_path / "m.json"
    m.save(path)
    assert AbstentionModel.load(path) == m
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"re-run eval/calibrate_abstention\.py"):
        AbstentionModel.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read abstention model"):
        AbstentionModel.load(path)
    with pytest.raises(ConfigError, match="coefficients"):
        AbstentionModel((1.0,), 0.0, 0.5)
    with pytest.raises(ConfigError, match="threshold"):
        model(threshold=1.5)


def test_probability_is_monotone_in_a_positive_feature() -> None:
    m = model(evidence=4.0, intercept=-2.0)
    low, mid, high = (m.p_answerable({"evidence": x}) for x in (0.1, 0.5, 0.9))
    assert low < mid < high
    assert mid == pytest.approx(0.5)
    assert m.declines({"evidence": 0.1}) and not m.declines({"evidence": 0.9})
    # extreme inputs do not overflow
    assert m.p_answerable({"evidence": 1e9}) == pytest.approx(1.0)


def test_type_gate_declines_a_question_whose_kind_of_answer_no_sentence_offers(
    tmp_path: Path,
) -> None:
    m = AbstentionModel(model(evidence=4.0, intercept=-2.0).coef, -2.0, 0.3, type_gate=0.6)
    middling = {"evidence": 0.55}  # p(answerable) about 0.55: between threshold and gate
    assert not m.declines(middling)  # no answer type asked: the gate does not apply
    assert m.declines({**middling, "has_type": 1.0})  # a date asked, none offered
    assert not m.declines({**middling, "has_type": 1.0, "typed": 0.3})  # one offered
    assert not m.declines({"evidence": 0.9, "has_type": 1.0})  # strong evidence otherwise
    assert not m.with_threshold(0.3).declines({"evidence": 0.55})
    assert m.with_threshold(0.1).type_gate == 0.6
    path = tmp_path / "gate.json"
    m.save(path)
    assert AbstentionModel.load(path) == m
    data = json.loads(path.read_text())
    del data["type_gate"]  # a model file written before the gate: gate off
    assert AbstentionModel.from_json(data).type_gate == 0.0
    with pytest.raises(ConfigError, match="type_gate"):
        AbstentionModel(m.coef, -2.0, 0.3, type_gate=2.0)
    assert packaged_abstention(BUNDLED_EMBEDDER) is not None
    assert 0.0 < AbstentionModel.load().type_gate < 1.0


def test_names_asked_without_a_wh_word_and_sums_of_money() -> None:
    assert answer_type("What was the name of Baby P's mother?") == "person"
    assert answer_type("Which doctor examined him?") == "person"
    assert answer_type("Which hospital treated him?") == "place"
    assert answer_type("Which reason did she give?") is None
    idf = {"cost": 2.0, "order": 1.0}
    preds = {"cost", "order"}
    # "£2000" is a sum, not the year 2000
    s = "It now costs an authority over £2000 per case to get a care order."
    assert typed_support(s, "number", preds, preds, idf) > 0.5
    # a byline answers "who wrote …?"
    wrote = {"wrote", "piec"}
    assert typed_support("by Amy Taylor", "person", wrote, wrote, {"wrote": 1.0}) > 0.0
    assert typed_support("by Amy Taylor", "person", preds, preds, idf) == 0.0


def test_answer_type_and_typed_support() -> None:
    assert answer_type("Who was appointed?") == "person"
    assert answer_type("How many children died?") == "number"
    assert answer_type("Why did she resign?") is None
    idf = {"appoint": 2.0, "director": 1.0}
    preds = {"appoint", "director"}
    asked = preds | {"ball"}
    # a new name next to the predicates supports a "who" question
    s = "Balls ordered the appointment of a new director, Peter Lewis."
    assert typed_support(s, "person", asked, preds, idf) == pytest.approx(1.0)
    # only names the question already gives: nothing new, no support
    assert typed_support("Balls spoke to the director.", "person", asked, preds, idf) == 0.0
    # a year far from the predicates counts for less than one close to them
    near = typed_support("The director was appointed in 2009.", "time", asked, preds, idf)
    far = typed_support(
        "The director was appointed and then many other unrelated things happened "
        "to everyone involved across the whole borough in 2009.",
        "time",
        asked,
        preds,
        idf,
    )
    assert near == pytest.approx(1.0) and far < near


def test_answerer_declines_by_the_model_and_reports_confidence(fake_settings: Settings) -> None:
    pipe = Pipeline.load(fake_settings)
    question = "Who was appointed as the new director?"
    never = ExtractiveAnswerer(pipe.retriever, abstention=model(intercept=-10.0))
    reading = never.read(question, pipe.retriever.search(question, 3))
    declined = never.answer(question, reading)
    assert declined.abstained and declined.text == DECLINE and not declined.citations
    assert declined.confidence is not None and declined.confidence < 0.01

    always = ExtractiveAnswerer(pipe.retriever, abstention=model(intercept=10.0))
    answered = always.answer(question, reading)
    assert not answered.abstained and "Peter Lewis" in answered.citations[0].quote
    assert answered.confidence is not None and answered.confidence > 0.99
    assert answered.to_json()["confidence"] == pytest.approx(answered.confidence, abs=1e-4)


def test_features_are_absolute_and_named(fake_settings: Settings) -> None:
    pipe = Pipeline.load(fake_settings)
    ans = ExtractiveAnswerer(pipe.retriever, abstention=None)

    def feats(q: str) -> dict[str, float]:
        return ans.read(q, pipe.retriever.search(q, 3)).features

    on = feats("Who ordered the appointment of Peter Lewis as director?")
    off = feats("Which zebra composed the Qwerty symphony?")
    assert set(on) == set(FEATURES)
    assert on["has_type"] == 1.0 and off["has_type"] == 0.0
    assert on["term_cov"] > off["term_cov"]
    assert off["unknown"] > on["unknown"]
    assert all(0.0 <= on[k] <= 1.0 for k in ("typed", "entity_cov", "term_cov", "unknown"))
    # "near but not in": the asked relation's words in the best sentences, or not
    assert on["pred_cov5"] > off["pred_cov5"]
    assert on["rare_missing"] == 0.0  # "appoint" (or rarer) is in its best sentence
    assert 0.0 <= on["typed_best"] <= on["typed"]
    assert off["unknown_cos"] == pytest.approx(off["unknown"] * off["cosine"])


def test_features_do_not_depend_on_the_retrieval_mode(fake_settings: Settings) -> None:
    """BM25-only retrieval has no dense scores; the abstention model must still see
    the chunk's cosine, or it declines nearly everything in that mode."""
    from citechat.retrieval import Retriever

    pipe = Pipeline.load(fake_settings)
    q = "Who ordered the appointment of Peter Lewis as director?"
    out = {}
    for mode in ("hybrid", "bm25"):
        retriever = Retriever(pipe.index, mode=mode)  # type: ignore[arg-type]
        ans = ExtractiveAnswerer(retriever, abstention=None)
        r = retriever.search(q, 3)
        assert r.hits[0].chunk.doc_id == "balls.txt"
        out[mode] = ans.read(q, r).features
        # the form eval/calibrate_abstention.py uses gives the same numbers
        assert ans.features(q, r, ans.candidates(q, r)) == out[mode]
    assert out["bm25"]["dense"] > 0.0
    assert out["bm25"]["dense"] == pytest.approx(out["hybrid"]["dense"], abs=1e-5)


def test_threshold_setting_overrides_the_calibrated_one(fake_settings: Settings) -> None:
    settings = Settings.load(env={"CITECHAT_ABSTAIN_THRESHOLD": "0.6"})
    assert settings.abstain_threshold == 0.6
    with pytest.raises(ConfigError, match="abstain_threshold must be between 0 and 1"):
        Settings(abstain_threshold=1.5)
    pipe = Pipeline.load(fake_settings)
    ans = ExtractiveAnswerer(pipe.retriever, abstention=model(0.5), abstain_threshold=0.9)
    assert ans.abstention is not None and ans.abstention.threshold == 0.9


@pytest.mark.parametrize("first_missing", ["reader_cosine", "pred_cov5"])
def test_a_model_fitted_before_later_features_gives_them_no_weight(
    tmp_path: Path, first_missing: str
) -> None:
    m = model(evidence=3.0, dense=1.0, intercept=-1.0, threshold=0.4)
    data = m.to_json()
    n = FEATURES.index(first_missing)
    old = {**data, "features": list(FEATURES[:n]), "coef": list(m.coef[:n])}
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    loaded = AbstentionModel.load(tmp_path / "old.json")
    assert loaded == m and loaded.coef[n:] == (0.0,) * (len(FEATURES) - n)
    feats = {"evidence": 0.2, "dense": 0.3, "reader_cosine": 0.9, "pred_cov5": 0.1}
    later = dict.fromkeys(FEATURES[n:], 0.0)
    assert loaded.p_answerable(feats) == m.p_answerable({**feats, **later})
    # names and coefficients that disagree in number are not padded
    bad = {**data, "features": list(FEATURES[:n]), "coef": list(m.coef)}
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ConfigError, match="re-run"):
        AbstentionModel.load(tmp_path / "bad.json")


def test_the_packaged_model_gives_the_reader_feature_no_weight() -> None:
    m = AbstentionModel.load()
    assert m.coef[FEATURES.index("reader_cosine")] == 0.0  # reader off: decisions as before


def test_an_abstention_model_file_set_in_the_settings_decides(
    fake_settings: Settings, tmp_path: Path
) -> None:
    from citechat.answerers import make_answerer

    pipe = Pipeline.load(fake_settings)
    never = tmp_path / "never.json"  # p(answerable) about 1 whatever the features
    AbstentionModel((0.0,) * len(FEATURES), 30.0, 0.5, "test").save(never)
    env = {"CITECHAT_ABSTENTION_MODEL": str(never)}
    settings = Settings.load(env=env)
    assert settings.abstention_model == never
    ans = make_answerer("extractive", pipe.retriever, settings)
    assert isinstance(ans, ExtractiveAnswerer) and ans.abstention == AbstentionModel.load(never)
    q = "Which zebra composed the Qwerty symphony?"
    assert not ans.answer(q, ans.read(q, pipe.retriever.search(q, 3))).abstained
    # one fitted on another embedder's cosines is refused, naming the setting
    other = tmp_path / "other.json"
    m = AbstentionModel((0.0,) * len(FEATURES), 0.0, 0.5, "test", embedder="another-model")
    m.save(other)
    with pytest.raises(ConfigError, match="fitted for embedder 'another-model'") as err:
        make_answerer("extractive", pipe.retriever, Settings(abstention_model=other))
    assert err.value.setting == "abstention_model"
    # unset: the packaged model (none for the hashing embedder: the evidence threshold)
    assert ExtractiveAnswerer(pipe.retriever).abstention is None
