"""Many sessions at once against one served app: each gets its own answer.

Twenty gradio_client sessions, one thread each, ask twenty different questions
through ``/ask`` while documents are uploaded (and the index swapped) in the
background; every answer must cite the document its question is about.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from citechat.config import Settings
from citechat.pipeline import Pipeline

#: (topic word, place, animal): each document and question shares only these words
TOPICS = [
    ("accordion", "Aberdeen", "badgers"),
    ("bagpipe", "Bristol", "beavers"),
    ("cello", "Cardiff", "camels"),
    ("didgeridoo", "Dundee", "dolphins"),
    ("euphonium", "Exeter", "eagles"),
    ("flugelhorn", "Falkirk", "ferrets"),
    ("glockenspiel", "Glasgow", "gibbons"),
    ("harpsichord", "Hull", "hedgehogs"),
    ("kazoo", "Kendal", "koalas"),
    ("lute", "Leeds", "lemurs"),
    ("mandolin", "Margate", "meerkats"),
    ("nyckelharpa", "Norwich", "narwhals"),
    ("ocarina", "Oxford", "ocelots"),
    ("piccolo", "Perth", "pelicans"),
    ("recorder", "Reading", "reindeer"),
    ("sitar", "Swansea", "salamanders"),
    ("theremin", "Truro", "tapirs"),
    ("ukulele", "Ullapool", "urchins"),
    ("vibraphone", "Valletta", "vultures"),
    ("xylophone", "Yeovil", "yaks"),
]


@pytest.fixture
def many(tmp_path: Path) -> Settings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, (instrument, place, animal) in enumerate(TOPICS):
        (corpus / f"doc{i:02d}.txt").write_text(
            f"The {instrument} festival\n\n"
            f"The {instrument} festival in {place} was opened by a troupe of {animal}. "
            f"Every {instrument} player in {place} brought a picnic.\n",
            encoding="utf-8",
        )
    return Settings(corpus=corpus, index=tmp_path / "index", embedder="hashing-256")


@pytest.fixture
def served(many: Settings, serve_chat: Any) -> Iterator[tuple[str, Pipeline]]:
    pipe = Pipeline.load(many)
    with serve_chat(pipe) as url:
        yield url, pipe


def test_twenty_sessions_each_get_their_own_answer_while_uploads_reindex(
    served: tuple[str, Pipeline], tmp_path: Path
) -> None:
    from gradio_client import Client

    url, pipe = served
    start = threading.Barrier(len(TOPICS) + 1)
    stop = threading.Event()

    def session(i: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
        instrument, place, _ = TOPICS[i]
        client = Client(url, verbose=False)
        start.wait(60)
        first = client.predict(
            f"Which animals opened the {instrument} festival in {place}?", 5, "[]", api_name="/ask"
        )
        # a follow-up in the same session, with its own history
        history = f'[["user", "Tell me about the festival in {place}."]]'
        second = client.predict("Who opened it?", 5, history, api_name="/ask")
        return i, first, second

    def uploads() -> int:
        n = 0
        start.wait(60)
        while not stop.is_set() and n < 5:
            f = tmp_path / f"extra{n}.txt"
            f.write_text(f"Extra {n}\n\nA note about kites number {n}.\n", encoding="utf-8")
            pipe.add_documents([(f.name, f)])
            n += 1
        return n

    with ThreadPoolExecutor(max_workers=len(TOPICS) + 1) as pool:
        uploader = pool.submit(uploads)
        results = list(pool.map(session, range(len(TOPICS))))
        stop.set()
        added = uploader.result(timeout=120)

    assert added >= 1 and f"extra{added - 1}.txt" in pipe.index.documents
    for i, first, second in results:
        _, _, animal = TOPICS[i]
        for data in (first, second):
            assert "error" not in data, data
            assert not data["abstained"], (i, data["answer"])
            cited = {c["doc_id"] for c in data["citations"]}
            assert cited == {f"doc{i:02d}.txt"}, (i, data["question"], cited)
        assert animal in first["answer"]
