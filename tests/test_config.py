"""Settings: every field validated, bad values named with where they were set."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from citechat.cli import main
from citechat.config import (
    Settings,
    model_cache,
    omp_num_threads,
    openai_api_key,
    web_login,
)
from citechat.errors import ConfigError
from citechat.index.stores.faiss import FaissParams

#: (setting, bad value, what the message says it must be): every setting at least once
BAD: list[tuple[str, Any, str]] = [
    ("corpus", 5, "a path"),
    ("index", None, "a path"),
    ("embedder", "", "a non-empty name"),
    ("embedder", 3, "a non-empty name"),
    ("chunk_tokens", 31, "at least 32"),
    ("chunk_tokens", 200.0, "a whole number"),
    ("chunk_tokens", True, "a whole number"),
    ("chunk_overlap", -1, "at least 0"),
    ("chunk_overlap", 200, "less than chunk_tokens (200)"),
    ("top_k", 0, "at least 1"),
    ("top_k", "5", "a whole number"),
    ("reranker", 1, "text"),
    ("evidence_depth", -1, "at least 0 (0 turns it off)"),
    ("verifier", ["x"], "text"),
    ("abstain_threshold", -0.1, "between 0 and 1"),
    ("abstain_threshold", 1.5, "between 0 and 1"),
    ("abstain_threshold", math.nan, "between 0 and 1"),
    ("abstention_model", 5, "a path or unset"),
    ("answerer", " ", "a non-empty name"),
    ("reader", "", "a non-empty name"),
    ("reader_decline", 0, "above 0 and at most 1"),
    ("reader_decline", 1.5, "above 0 and at most 1"),
    ("host", "", "a non-empty name"),
    ("port", 0, "between 1 and 65535"),
    ("port", 65536, "between 1 and 65535"),
    ("port", 80.5, "between 1 and 65535"),
    ("max_question_chars", 0, "at least 1"),
    ("max_upload_mb", -5, "greater than 0"),
    ("max_upload_mb", 0, "greater than 0"),
    ("max_upload_mb", math.inf, "greater than 0"),
    ("max_new_tokens", 0, "at least 1"),
    ("temperature", -1, "0 (greedy decoding) or more"),
    ("temperature", math.nan, "0 (greedy decoding) or more"),
    ("openai_api_key", 12345, "text"),
    ("openai_timeout", 0, "greater than 0"),
    ("openai_timeout", "60", "greater than 0"),
    ("store", "bogus", "unknown store 'bogus'"),
    ("store", "milvus://", "names no host"),
    ("store", 7, "text"),
    ("flat_max", 0, "at least 1"),
    ("hnsw_m", 0, "at least 1"),
    ("hnsw_ef_construction", 0, "at least 1"),
    ("hnsw_ef_search", -3, "at least 1"),
    ("hnsw_max", 0, "at least 1"),
    ("faiss_type", "ivf", "one of flat, hnsw, hnsw_sq8, ivf_pq or empty"),
    ("faiss_type", 3, "text"),
    ("ivf_nprobe", 0, "at least 1"),
    ("pq_m", -1, "at least 1"),
]


def test_every_setting_has_a_bad_value_case() -> None:
    assert {name for name, _, _ in BAD} == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize(("name", "value", "rule"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_value_is_a_one_line_config_error(name: str, value: Any, rule: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings(**{name: value})
    message = str(err.value)
    assert message.startswith(name) or name == "store", message
    assert rule in message and "\n" not in message
    assert err.value.setting == name and err.value.exit_code == 2


def test_the_api_key_is_never_repeated() -> None:
    with pytest.raises(ConfigError) as err:
        Settings(openai_api_key=12345)  # type: ignore[arg-type]
    assert "12345" not in str(err.value)
    assert "sk-secret" not in repr(Settings(openai_api_key="sk-secret"))


@pytest.mark.parametrize(
    "good",
    [
        {"port": 1},
        {"port": 65535},
        {"temperature": 0},
        {"temperature": 1.3},
        {"abstain_threshold": 0.0},
        {"abstain_threshold": 1},
        {"evidence_depth": 0},
        {"chunk_tokens": 32, "chunk_overlap": 31},
        {"max_upload_mb": 0.001},
        {"store": "faiss"},
        {"store": "milvus-lite:./index/milvus.db"},
        {"reranker": None, "verifier": None, "openai_api_key": None},
    ],
)
def test_edge_values_are_accepted(good: dict[str, Any]) -> None:
    settings = Settings(**good)
    assert all(getattr(settings, k) == v for k, v in good.items())


def test_a_path_given_as_text_becomes_a_path() -> None:
    settings = Settings(corpus="docs", index="ix")  # type: ignore[arg-type]
    assert settings.corpus == Path("docs") and settings.index == Path("ix")


@pytest.mark.parametrize(
    "name",
    ["flat_max", "hnsw_max", "hnsw_m", "ef_construction", "ef_search", "ivf_nprobe", "pq_m"],
)
@pytest.mark.parametrize("value", [-1, 0, 1, 2])
def test_settings_and_faiss_params_agree(name: str, value: int) -> None:
    """A FAISS value Settings accepts is one FaissParams accepts, and the reverse."""
    field = name if name.startswith(("flat", "hnsw", "ivf", "pq")) else f"hnsw_{name}"

    def accepts(make: Any) -> bool:
        try:
            make()
        except ConfigError:
            return False
        return True

    overrides: dict[str, Any] = {field: value}
    params: dict[str, Any] = {name: value}
    assert accepts(lambda: Settings(**overrides)) == accepts(lambda: FaissParams(**params))


# -- where a bad value came from -----------------------------------------------------


def test_env_value_is_named_by_its_variable() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load(env={"CITECHAT_MAX_UPLOAD_MB": "-5"})
    assert str(err.value) == (
        "max_upload_mb must be a number greater than 0, got -5 (CITECHAT_MAX_UPLOAD_MB)"
    )


@pytest.mark.parametrize(
    ("raw", "shown"), [("abc", "'abc'"), ("5.5", "'5.5'"), ("nan", "'nan'"), ("", None)]
)
def test_env_text_that_is_no_whole_number(raw: str, shown: str | None) -> None:
    if shown is None:  # an empty variable counts as unset
        assert Settings.load(env={"CITECHAT_TOP_K": raw}).top_k == Settings().top_k
        return
    with pytest.raises(ConfigError) as err:
        Settings.load(env={"CITECHAT_TOP_K": raw})
    assert str(err.value) == f"top_k must be a whole number, got {shown} (CITECHAT_TOP_K)"


def test_env_values_are_coerced() -> None:
    settings = Settings.load(
        env={"CITECHAT_TOP_K": "3", "CITECHAT_TEMPERATURE": "0.5", "CITECHAT_CORPUS": "docs"}
    )
    assert (settings.top_k, settings.temperature, settings.corpus) == (3, 0.5, Path("docs"))


def test_toml_value_is_named_by_its_key_and_file(tmp_path: Path) -> None:
    toml = tmp_path / "citechat.toml"
    toml.write_text("[citechat]\nhnsw_m = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Settings.load(config_file=toml, env={})
    assert (
        str(err.value) == f"hnsw_m must be a whole number of at least 1, got 0 (hnsw_m in {toml})"
    )


def test_toml_types(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("top_k = 4.0\nmax_upload_mb = 3\ncorpus = 'docs'\n", encoding="utf-8")
    settings = Settings.load(config_file=toml, env={})
    assert (settings.top_k, settings.max_upload_mb, settings.corpus) == (4, 3.0, Path("docs"))
    assert isinstance(settings.max_upload_mb, float)
    toml.write_text("embedder = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^embedder must be a non-empty name, got 5 \(embedder"):
        Settings.load(config_file=toml, env={})
    toml.write_text("top_k = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^top_k must be a whole number .*got True"):
        Settings.load(config_file=toml, env={})


def test_env_wins_over_toml_and_is_the_one_named(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("port = 8000\n", encoding="utf-8")
    assert Settings.load(config_file=toml, env={}).port == 8000
    with pytest.raises(ConfigError, match=r"got 0 \(CITECHAT_PORT\)$"):
        Settings.load(config_file=toml, env={"CITECHAT_PORT": "0"})


def test_unknown_toml_key_names_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[citechat]\ntop_kk = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"unknown setting 'top_kk' in {toml}; known settings"):
        Settings.load(config_file=toml, env={})


def test_replace_names_the_flag() -> None:
    with pytest.raises(ConfigError) as err:
        Settings().replace(top_k=0, origin={"top_k": "-k"})
    assert str(err.value) == "top_k must be a whole number of at least 1, got 0 (-k)"
    with pytest.raises(ConfigError, match=r"got 0$"):
        Settings().replace(top_k=0)


# -- through the CLI -----------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tiny_corpus: Path, tmp_path: Path) -> Path:
    for name in ("CITECHAT_CONFIG", "CITECHAT_MAX_UPLOAD_MB", "CITECHAT_HNSW_M"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CITECHAT_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("CITECHAT_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and not captured.out
    return line


def test_cli_names_a_bad_env_value(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITECHAT_MAX_UPLOAD_MB", "-5")
    assert cli_error(["index"], capsys) == (
        "citechat: error: max_upload_mb must be a number greater than 0, got -5 "
        "(CITECHAT_MAX_UPLOAD_MB)"
    )
    assert not (cli_env / "index").exists()  # it failed before any work


def test_cli_names_a_bad_toml_value(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (cli_env / "citechat.toml").write_text("[citechat]\nhnsw_m = 0\n", encoding="utf-8")
    assert cli_error(["ask", "Who?"], capsys) == (
        "citechat: error: hnsw_m must be a whole number of at least 1, got 0 "
        "(hnsw_m in citechat.toml)"
    )
    other = cli_env / "other.toml"
    other.write_text("temperature = -1\n", encoding="utf-8")
    monkeypatch.setenv("CITECHAT_CONFIG", str(other))
    assert cli_error(["ask", "Who?"], capsys).endswith(f"got -1 (temperature in {other})")


@pytest.mark.parametrize(
    ("argv", "end"),
    [
        (["ask", "Who?", "-k", "0"], "top_k must be a whole number of at least 1, got 0 (-k)"),
        (["serve", "--port", "70000"], "between 1 and 65535, got 70000 (--port)"),
        (["index", "--store", "bogus"], "or milvus-lite:PATH.db (--store)"),
        (["--embedder", "", "index"], "embedder must be a non-empty name, got '' (--embedder)"),
    ],
)
def test_cli_names_a_bad_flag(
    cli_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], end: str
) -> None:
    assert cli_error(argv, capsys).endswith(end)


# -- the environment outside Settings ------------------------------------------------


def test_web_login() -> None:
    assert web_login({}) is None and web_login({"CITECHAT_AUTH": ""}) is None
    assert web_login({"CITECHAT_AUTH": "ann:s3:cret"}) == ("ann", "s3:cret")
    for bad in ("hunter2", ":pw", "ann:"):
        with pytest.raises(ConfigError) as err:
            web_login({"CITECHAT_AUTH": bad})
        assert "user:password" in str(err.value) and bad not in str(err.value)


def test_model_cache_openai_key_and_threads(tmp_path: Path) -> None:
    assert model_cache({"CITECHAT_MODEL_CACHE": str(tmp_path)}) == tmp_path
    assert model_cache({}) == Path.home() / ".cache" / "citechat" / "models"
    assert openai_api_key(Settings(openai_api_key="a"), {"CITECHAT_OPENAI_API_KEY": "b"}) == "a"
    assert openai_api_key(Settings(), {"CITECHAT_OPENAI_API_KEY": "b"}) == "b"
    assert openai_api_key(Settings(), {}) is None
    assert omp_num_threads({"OMP_NUM_THREADS": "1"}) == "1" and omp_num_threads({}) is None
