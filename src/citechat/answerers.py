"""Answerer specs -> answerers: one registry of factories, by the spec's prefix.

A spec is ``<prefix>`` or ``<prefix>:<argument>``; the factory registered for the
prefix gets the argument (``""`` when there is none), the retriever and the
settings.  Built in: ``extractive``, ``transformers:<model>`` and
``openai:<base_url>#<model>``; a plugin or a test adds its own the same way:

>>> def mine(argument, retriever, settings):
...     return ExtractiveAnswerer(retriever, max_sentences=int(argument or 1))
>>> register_answerer("mine", mine, form="mine:<n>")
>>> "mine:<n>" in known_forms()
True
>>> unregister_answerer("mine")

The factories import what they need themselves (generation.py, transformers,
openai), so ``extractive`` never loads an LLM library.  It does not answer,
retrieve or cache answerers (the pipeline keeps one per spec).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .abstention import configured as configured_abstention
from .answering import Answerer, ExtractiveAnswerer
from .config import Settings
from .errors import ConfigError
from .retrieval import Retriever

#: (the spec after ``prefix:``, retriever, settings) -> an answerer
Factory = Callable[[str, Retriever, Settings], Answerer]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    #: how the spec is written, for error messages
    form: str


_REGISTRY: dict[str, _Entry] = {}


def register_answerer(prefix: str, factory: Factory, *, form: str | None = None) -> None:
    """Make ``<prefix>`` and ``<prefix>:<argument>`` specs build answerers with ``factory``.

    ``form`` shows how the spec is written in error messages (default: the prefix).
    """
    if not re.fullmatch(r"[A-Za-z][\w.-]*", prefix):
        raise ConfigError(
            f"answerer prefix {prefix!r} must be a word (letters, digits, '_', '.', '-')"
        )
    if prefix in _REGISTRY:
        raise ConfigError(
            f"answerer prefix {prefix!r} is already registered; unregister_answerer it first"
        )
    _REGISTRY[prefix] = _Entry(factory, form or prefix)


def unregister_answerer(prefix: str) -> None:
    """Forget ``prefix`` (a test's fake, a plugin unloaded); unknown prefixes are ignored."""
    _REGISTRY.pop(prefix, None)


def known_forms() -> str:
    """The registered spec forms, for messages: ``extractive, transformers:<model ...>, ...``."""
    return ", ".join(entry.form for entry in _REGISTRY.values())


def unknown(spec: str) -> ConfigError:
    """The one error for a spec that names no answerer."""
    return ConfigError(f"unknown answerer {spec!r}; use one of: {known_forms()}")


def make_answerer(spec: str, retriever: Retriever, settings: Settings) -> Answerer:
    """The answerer a spec names, built by its prefix's factory.

    >>> make_answerer("gpt", None, Settings())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    citechat.errors.ConfigError: unknown answerer 'gpt'; use one of: extractive, ...
    """
    prefix, _, argument = spec.partition(":")
    entry = _REGISTRY.get(prefix)
    if entry is None:
        raise unknown(spec)
    return entry.factory(argument, retriever, settings)


# -- built in ------------------------------------------------------------------------


def _extractive(argument: str, retriever: Retriever, settings: Settings) -> Answerer:
    if argument:
        raise unknown(f"extractive:{argument}")
    return ExtractiveAnswerer(
        retriever,
        abstention=configured_abstention(settings.abstention_model, retriever.index.embedder.name),
        abstain_threshold=settings.abstain_threshold,
        reader_decline=settings.reader_decline,
    )


def _transformers(argument: str, retriever: Retriever, settings: Settings) -> Answerer:
    if not argument.strip():
        raise unknown(f"transformers:{argument}")
    from .generation import TransformersAnswerer

    return TransformersAnswerer(argument.strip(), retriever, settings)


def _openai(argument: str, retriever: Retriever, settings: Settings) -> Answerer:
    base_url, _, model = argument.rpartition("#")
    if not (re.match(r"https?://\S+$", base_url) and model.strip()):
        raise unknown(f"openai:{argument}")
    from .generation import OpenAIAnswerer

    return OpenAIAnswerer(base_url, model.strip(), retriever, settings)


register_answerer("extractive", _extractive)
register_answerer(
    "transformers", _transformers, form="transformers:<model id | folder | file.gguf>"
)
register_answerer("openai", _openai, form="openai:<base_url>#<model>")
