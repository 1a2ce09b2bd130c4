"""Faults while answering (issue 7): hostile questions, a generator that is down or
slow, and the CLI's error contract (one line, exit code by error class, ``--debug``
shows the traceback)."""

import errno
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from citechat import cli
from citechat.cli import main
from citechat.config import Settings
from citechat.errors import (
    CitechatError,
    ConfigError,
    CorpusError,
    IndexDamagedError,
    IndexError_,
    IndexFormatError,
    IndexLockedError,
    IndexMismatchError,
    ModelError,
    UsageError,
)
from citechat.pipeline import Pipeline
from citechat.types import Answer
from helpers import QUESTION, assert_cites_corpus, one_line_error, run_citechat

# --- questions ---------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\n\t \r\n", "\x00\x1b\u200f\u202e", "\x7f\x08"])
def test_empty_question_is_a_usage_error(
    pipe: Pipeline, cli_env: Settings, question: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="the question is empty"):
        pipe.ask(question)
    assert main(["ask", question]) == 2
    assert "the question is empty" in one_line_error(capsys.readouterr().err)


def test_long_question_is_cut_with_a_notice(
    pipe: Pipeline, cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    long = QUESTION + " " + "very " * 2000
    answer = pipe.ask(long)
    assert len(answer.question) == 2000 and answer.question.startswith(QUESTION)
    assert answer.notice == "The question was cut to its first 2000 characters."
    assert main(["ask", long]) == 0
    assert "note: The question was cut to its first 2000 characters." in capsys.readouterr().out
    short = Pipeline(pipe.settings.replace(max_question_chars=10), pipe.index)
    assert short.ask(long).question == QUESTION[:10]


@pytest.mark.parametrize(
    "question",
    [
        "Who was\x00 appointed\x1b[31m new director?\x1b[0m",
        "\u202eWho was appointed new director?\u200f",
        "Who was appointed new director? 👩‍💼🎉",
        "新主任是谁？ Who was appointed new director?",
        "من هو المدير الجديد؟ Who was appointed new director?",
        "Who\u2028was\u2029appointed new director?",
    ],
)
def test_control_characters_and_any_unicode_are_fine(pipe: Pipeline, question: str) -> None:
    answer = pipe.ask(question)
    assert answer.citations and answer.citations[0].doc_id == "balls.txt"
    assert not any(ch in answer.question for ch in "\x00\x1b\u202e")
    assert_cites_corpus(answer, pipe.index)


@pytest.mark.parametrize(
    "question", ["新主任是谁？", "🎉🎉🎉", "ﷺ" * 3000, "\U0010ffff?", "[1] [0] [99]"]
)
def test_questions_without_matching_words_do_not_crash(pipe: Pipeline, question: str) -> None:
    answer = pipe.ask(question)
    assert answer.abstained or answer.citations
    assert_cites_corpus(answer, pipe.index)
    json.dumps(answer.to_json(), ensure_ascii=False)


def test_unicode_and_control_characters_through_the_real_cli(built: Settings) -> None:
    question = "\u202eWho was appointed\x1b[31m new director? 👩‍💼 新主任\u200f"
    proc = run_citechat(built, "ask", question, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["citations"][0]["doc_id"] == "balls.txt"
    assert "👩" in data["question"] and "新主任" in data["question"]
    assert "\x1b" not in data["question"] and "\u202e" not in data["question"]
    proc = run_citechat(built, "ask", " \t ")
    assert proc.returncode == 2 and "the question is empty" in one_line_error(proc.stderr)


# --- a generator that fails ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_endpoint_down_falls_back_to_the_extractive_answer(pipe: Pipeline) -> None:
    spec = f"openai:http://127.0.0.1:{_closed_port()}/v1#m"
    with pytest.raises(ModelError, match="cannot be reached"):
        pipe.ask(QUESTION, answerer=spec)
    answer = pipe.ask(QUESTION, answerer=spec, fallback=True)
    assert answer.answerer == "extractive" and answer.citations and not answer.abstained
    assert answer.notice is not None
    assert answer.notice.startswith("The language model could not answer (the endpoint http://")
    assert "cannot be reached" in answer.notice
    assert answer.notice.endswith("showing the extractive answer.")
    assert_cites_corpus(answer, pipe.index)
    assert pipe.ask(QUESTION).citations  # the pipeline keeps serving


@pytest.mark.slow  # waits on an endpoint that never answers
def test_endpoint_timeout_falls_back(fake_settings: Settings, silent_server: int) -> None:
    pipe = Pipeline.load(fake_settings.replace(openai_timeout=0.3))
    spec = f"openai:http://127.0.0.1:{silent_server}/v1#m"
    answer = pipe.ask(QUESTION, answerer=spec, fallback=True)
    assert answer.notice is not None and "did not answer within 0.3 s" in answer.notice
    assert answer.answerer == "extractive" and answer.citations


def test_missing_model_falls_back_and_keeps_the_question_notice(
    pipe: Pipeline, tmp_path: Path
) -> None:
    class MissingModel:  # declares the answer contract's flags (answering.Answerer)
        name, can_stream, can_condense = "transformers:missing", False, False

        def answer(self, *args: object, **kwargs: object) -> Answer:
            raise ModelError(f"GGUF file {tmp_path}/m.gguf does not exist; check the path")

    pipe.answerers["transformers:missing"] = MissingModel()  # type: ignore[assignment]
    answer = pipe.ask(QUESTION + " x" * 2000, answerer="transformers:missing", fallback=True)
    assert answer.notice is not None
    assert "does not exist" in answer.notice and "cut to its first 2000" in answer.notice
    assert answer.citations


def test_fallback_does_not_hide_other_errors(pipe: Pipeline) -> None:
    with pytest.raises(UsageError):
        pipe.ask("  ", answerer="openai:http://127.0.0.1:9/v1#m", fallback=True)
    with pytest.raises(ConfigError, match="unknown answerer"):
        pipe.ask(QUESTION, answerer="gpt", fallback=True)


# --- the errors users see ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CitechatError("something failed; try again"), 1),
        (UsageError("bad question; ask another"), 2),
        (ConfigError("top_k must be at least 1, got 0; pass -k 5"), 2),
        (CorpusError("corpus not found: x; pass --corpus"), 3),
        (IndexError_("no index at x", "run `citechat index`"), 4),
        (IndexDamagedError("damaged", "run `citechat index --rebuild`"), 4),
        (IndexMismatchError("other model", "run `citechat index --rebuild`"), 4),
        (IndexFormatError("other format", "run `citechat index --rebuild`"), 4),
        (IndexLockedError("locked", "wait"), 4),
        (ModelError("the endpoint x cannot be reached\nsecond line"), 5),
        (OSError(errno.EACCES, "Permission denied", "/some/file"), 1),
        (RuntimeError("a bug\nwith detail"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_every_error_is_one_line_with_its_exit_code(
    cli_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    code: int,
) -> None:
    def fail(args: object, settings: object) -> int:
        raise error

    monkeypatch.setitem(cli._COMMANDS, "index", fail)
    assert main(["index"]) == code
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("citechat: ") and "Traceback" not in line
    if isinstance(error, CitechatError):
        assert line == "citechat: error: " + " ".join(str(error).split())
    elif isinstance(error, OSError):
        assert line.startswith("citechat: error: cannot access /some/file (Permission denied)")
    elif isinstance(error, RuntimeError):
        assert line == (
            "citechat: internal error: RuntimeError: a bug with detail; "
            "run again with --debug for the traceback and please report it"
        )
    if not isinstance(error, KeyboardInterrupt):
        with pytest.raises(type(error)):
            main(["--debug", "index"])


def test_debug_shows_the_traceback_in_a_real_process(fake_settings: Settings) -> None:
    missing = str(fake_settings.corpus / "nope")
    plain = run_citechat(fake_settings, "--corpus", missing, "index")
    assert plain.returncode == 3
    assert one_line_error(plain.stderr) == (
        f"citechat: error: corpus not found: {missing}; pass --corpus FOLDER or set CITECHAT_CORPUS"
    )
    debug = run_citechat(fake_settings, "--debug", "--corpus", missing, "index")
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "citechat.errors.CorpusError: corpus not found" in debug.stderr
