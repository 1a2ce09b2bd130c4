"""citechat: ask a folder of documents; every claim cites the exact passage.

Library API (the CLI and the web chat are thin layers over it)::

    from citechat import Pipeline, Settings
    pipe = Pipeline.load(Settings(corpus=Path("corpus"), index=Path("index")))
    answer = pipe.ask("Who did Ed Balls appoint to run Haringey's children's services?")
    answer.text, answer.citations[0].quote

Heavy modules load lazily, so ``import citechat`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "CitechatError",
    "Document",
    "Hit",
    "Index",
    "Pipeline",
    "Section",
    "Settings",
    "__version__",
    "chunk_document",
    "load_corpus",
    "sync_index",
]

_LAZY = {
    "Answer": "types",
    "Chunk": "types",
    "Citation": "types",
    "Document": "types",
    "Hit": "types",
    "Section": "types",
    "CitechatError": "errors",
    "Settings": "config",
    "Index": "index",
    "sync_index": "index",
    "Pipeline": "pipeline",
    "chunk_document": "chunking",
    "load_corpus": "corpus",
}

if TYPE_CHECKING:
    from .chunking import chunk_document
    from .config import Settings
    from .corpus import load_corpus
    from .errors import CitechatError
    from .index import Index, sync_index
    from .pipeline import Pipeline
    from .types import Answer, Chunk, Citation, Document, Hit, Section


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'citechat' has no attribute {name!r}")
