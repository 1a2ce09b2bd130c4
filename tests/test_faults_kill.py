"""Builds killed with a real SIGKILL at each step of a save, and two concurrent
``citechat index`` processes (issue 7): the last good index always loads and answers.
Slow: each test runs ``citechat`` in child processes."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from citechat.config import Settings
from citechat.embedding import HashingEmbedder
from citechat.index import Index, current_generation, write_lock
from citechat.pipeline import Pipeline
from helpers import (
    QUESTION,
    assert_cites_corpus,
    child_env,
    generations,
    leftovers,
    one_line_error,
    run_citechat,
)

pytestmark = pytest.mark.slow

# --- builds killed with SIGKILL; concurrent builds -------------------------------------

CHILD = textwrap.dedent(
    """
    import contextlib, os, sys, time
    from pathlib import Path
    import citechat.embedding, citechat.index, citechat.index.sync

    marks, phase = Path(sys.argv[1]), sys.argv[2]

    def mark(name):
        (marks / name).write_text(str(os.getpid()))

    def hang(name):
        mark(name)
        time.sleep(600)  # until the test kills this process

    if phase == "embedding":
        citechat.embedding.HashingEmbedder.embed = lambda self, texts: hang("embedding")
    elif phase == "writing":
        import citechat.index.build
        real_write = citechat.index.build.StreamedBuild.write_batch
        def write_then_hang(self, batch):
            real_write(self, batch)
            hang("writing")  # a batch's rows are in the temporary folder
        citechat.index.build.StreamedBuild.write_batch = write_then_hang
    elif phase == "lexical":
        import citechat.index.lexical
        real_finish = citechat.index.lexical.LexicalBuilder.finish
        def finish_then_hang(self, folder):
            entry = real_finish(self, folder)
            hang("lexical")  # vectors, terms and BM25 written; the store and manifest not yet
            return entry
        citechat.index.lexical.LexicalBuilder.finish = finish_then_hang
    elif phase == "switching":
        real_replace = os.replace
        def replace(src, dst):
            if Path(src).name == ".CURRENT.tmp":
                hang("switching")  # the new generation is in place, CURRENT not yet
            return real_replace(src, dst)
        os.replace = replace
    elif phase == "cleaning":
        import citechat.index.generations
        citechat.index.generations.remove_old_generations = lambda folder, keep: hang("cleaning")
    elif phase == "logged":
        # holds the lock until the test creates marks/go, logging when it has it
        real_embed = citechat.embedding.HashingEmbedder.embed
        def slow_embed(self, texts):
            while not (marks / "go").exists():
                time.sleep(0.05)
            return real_embed(self, texts)
        citechat.embedding.HashingEmbedder.embed = slow_embed
        real_lock = citechat.index.sync.write_lock
        @contextlib.contextmanager
        def logged_lock(folder, **kw):
            with real_lock(folder, **kw):
                with open(marks / "events", "a") as fh:
                    fh.write(f"acquired {os.getpid()}\\n")
                try:
                    yield
                finally:
                    with open(marks / "events", "a") as fh:
                        fh.write(f"released {os.getpid()}\\n")
        citechat.index.sync.write_lock = logged_lock
    elif phase == "impatient":
        import functools
        citechat.index.sync.write_lock = functools.partial(
            citechat.index.sync.write_lock, wait_s=0.5
        )

    from citechat.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


def start_child(
    settings: Settings, marks: Path, phase: str, *args: str, stderr: Path | None = None
) -> subprocess.Popen[str]:
    """A ``citechat`` process with ``phase``'s patches (see CHILD); ``stderr`` to a file."""
    marks.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(stderr.open("w")) if stderr else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(marks), phase, *args],
            env=child_env(settings),
            cwd=settings.index.parent,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` until it holds; fail (never hang) if the child exits first."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("phase", ["embedding", "writing", "lexical", "switching", "cleaning"])
def test_build_killed_at_any_step(built: Settings, tmp_path: Path, phase: str) -> None:
    before = current_generation(built.index)
    (built.corpus / "extra.txt").write_text("Extra news\n\nA brand new article appeared.\n")
    marks = tmp_path / "marks"
    proc = start_child(built, marks, phase, "index")
    wait_for((marks / phase).exists, proc, f"the {phase} step")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    if phase in ("writing", "lexical"):
        assert any(n.startswith(".tmp-gen-") for n in leftovers(built.index))
    if phase == "switching":
        assert len(generations(built.index)) == 2 and ".CURRENT.tmp" in leftovers(built.index)
    # the index still loads and answers: the old one, or the new one once CURRENT moved
    landed = phase == "cleaning"
    assert (current_generation(built.index) == before) is not landed
    index = Index.load(built.index, HashingEmbedder(256), built)
    assert ("extra.txt" in index.documents) is landed
    answer = Pipeline(built, index).ask(QUESTION)
    assert answer.citations and not answer.abstained
    assert_cites_corpus(answer, index)

    # the next `citechat index` completes the update and cleans up
    proc2 = run_citechat(built, "index")
    assert proc2.returncode == 0, proc2.stderr
    assert ("up to date" if landed else "index updated") in proc2.stdout
    assert "extra.txt" in Index.load(built.index, HashingEmbedder(256), built).documents
    assert not leftovers(built.index)
    assert generations(built.index) == [current_generation(built.index).name]


def test_two_concurrent_builds_take_turns(fake_settings: Settings, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    first = start_child(fake_settings, marks, "logged", "index")
    wait_for((marks / "events").exists, first, "the first build to take the lock")
    second = start_child(fake_settings, marks, "logged", "index", stderr=tmp_path / "err2")
    wait_for(lambda: "waiting" in (tmp_path / "err2").read_text(), second, "the second to wait")
    (marks / "go").touch()
    out1, err1 = first.communicate(timeout=120)
    out2, _ = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err1
    assert "index built" in out1 and "up to date" in out2
    assert "another `citechat index` is writing" in (tmp_path / "err2").read_text()
    events = (marks / "events").read_text().split()
    assert events == [
        "acquired",
        str(first.pid),
        "released",
        str(first.pid),
        "acquired",
        str(second.pid),
        "released",
        str(second.pid),
    ]
    assert len(generations(fake_settings.index)) == 1 and not leftovers(fake_settings.index)


def test_a_second_build_gives_up_with_a_one_line_error(
    fake_settings: Settings, tmp_path: Path
) -> None:
    with write_lock(fake_settings.index):
        proc = start_child(fake_settings, tmp_path / "marks", "impatient", "index")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4
    line = one_line_error(err)
    assert "another `citechat index` is writing" in line and "try again" in line
    assert not (fake_settings.index / "CURRENT").exists()
