from __future__ import annotations

import json
from pathlib import Path

import pytest

from citechat.cli import main

RESULT_KEYS = {"id", "question", "answer", "abstained", "citations", "retrieved", "latency_ms"}
CITATION_KEYS = {"n", "doc_id", "title", "section", "commenter", "start", "end", "quote"}
#: added by issue 16 (citations that stay true): the document's sha256 when quoted
CITATION_KEYS |= {"content_hash"}
#: added by issue 16 (where a claim is): None where the document has no pages or headings
CITATION_KEYS |= {"page", "page_label", "heading"}
RETRIEVED_KEYS = {"rank", "doc_id", "chunk_id", "start", "end", "score"}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tiny_corpus: Path, tmp_path: Path) -> Path:
    monkeypatch.setenv("CITECHAT_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("CITECHAT_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("CITECHAT_EMBEDDER", "hashing-256")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_index_then_up_to_date(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index"]) == 0
    out = capsys.readouterr().out
    assert "2 added" in out and "chunks:" in out
    assert main(["index"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_ask_json_builds_index_first(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Who was appointed new director?", "--json", "-k", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["abstained"] is False
    assert set(data["citations"][0]) == CITATION_KEYS
    assert set(data["retrieved"][0]) == RETRIEVED_KEYS
    assert len(data["retrieved"]) <= 3
    assert (cli_env / "index" / "CURRENT").is_file()


def test_ask_text_output_lists_sources(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Who was appointed new director?"]) == 0
    out = capsys.readouterr().out
    assert "Sources:" in out and "[1]" in out and "balls.txt" in out


def test_ask_names_the_pdf_page_of_each_source(
    cli_env: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_pdftext import book_pdf

    book_pdf(tiny_corpus / "book.pdf")
    assert main(["ask", "How often are log files rotated under the variable data folder?"]) == 0
    out = capsys.readouterr().out
    assert "— book.pdf, p. 5 (printed 3) chars" in out
    question = "How often are log files rotated under the variable data folder?"
    assert main(["ask", question, "--json"]) == 0
    cited = json.loads(capsys.readouterr().out)["citations"]
    assert {(c["doc_id"], c["page"], c["page_label"]) for c in cited} >= {("book.pdf", 5, "3")}


def test_empty_question_exits_2_without_traceback(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "  "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citechat: error: the question is empty")
    assert "Traceback" not in err


def test_missing_corpus_is_one_line_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--corpus", str(cli_env / "nope"), "index"]) == 3
    err = capsys.readouterr().err.strip()
    assert "corpus not found" in err and "\n" not in err


def test_history_file_is_used(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hist = cli_env / "h.json"
    hist.write_text(json.dumps([["user", "Tell me about Peter Lewis"], ["assistant", "x"]]))
    assert main(["ask", "Who appointed him?", "--history", str(hist), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["retrieved"][0]["doc_id"] == "balls.txt"
    bad = cli_env / "bad.json"
    bad.write_text("{")
    assert main(["ask", "x?", "--history", str(bad)]) == 2


def test_eval_writes_exact_schema(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = cli_env / "q.jsonl"
    rows = [
        {
            "id": "a",
            "question": "Who was appointed new director?",
            "answers": ["Peter Lewis"],
            "gold_docs": ["balls.txt"],
        },
        {
            "id": "b",
            "question": "What closed schools in London?",
            "gold_docs": ["weather.txt"],
            "answers": ["Heavy snow"],
        },
        {"id": "c", "question": "Who won the 1966 World Cup?", "answers": [], "gold_docs": []},
    ]
    q.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = cli_env / "res.jsonl"
    assert main(["eval", str(q), "--out", str(out), "--limit", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and summary["questions"] == 2
    for rec in lines:
        assert set(rec) >= RESULT_KEYS
        assert set(rec["latency_ms"]) == {"retrieve", "answer", "total"}
        for c in rec["citations"]:
            assert set(c) == CITATION_KEYS
    assert summary["retrieval"]["hit@1"] == 1.0
    assert main(["eval", str(q), "--out", str(out), "--limit", "0"]) == 2


def test_help_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, citechat.cli; sys.exit('torch' in sys.modules or 'gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_train_reader_takes_its_own_options_and_names_missing_data(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["train-reader", "--help"])
    assert shown.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: citechat train-reader") and "--epochs" in out
    # run from a folder without the SQuAD dev files: one line naming them and the fix
    assert main(["train-reader", "--data", str(cli_env / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("citechat: error: no corpus.jsonl in") and "--data" in err
    assert "\n" not in err
    # other commands still refuse options they do not have
    with pytest.raises(SystemExit) as refused:
        main(["index", "--epochs", "2"])
    assert refused.value.code == 2
    assert "unrecognized arguments: --epochs 2" in capsys.readouterr().err
