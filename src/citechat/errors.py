"""One exception hierarchy for every failure a user can cause or fix.

Each message names the problem and the fix in one line; the CLI prints it
without a traceback (``--debug`` shows one) and exits with ``exit_code``.
"""

from __future__ import annotations


class CitechatError(Exception):
    """Base class: a one-line message that names the problem and the fix."""

    exit_code = 1


class UsageError(CitechatError):
    """Bad input from the user (empty question, bad flag value)."""

    exit_code = 2


class ConfigError(CitechatError):
    """A setting has a bad value."""

    exit_code = 2


class CorpusError(CitechatError):
    """The corpus path is missing or holds nothing that can be read."""

    exit_code = 3


class IndexError_(CitechatError):
    """The index is missing, damaged, or was built with other settings."""

    exit_code = 4


class IndexMismatchError(IndexError_):
    """The index was built with another model or chunking."""


class IndexLockedError(IndexError_):
    """Another ``citechat index`` is writing this index."""


class ModelError(CitechatError):
    """A model could not be loaded or a generator endpoint failed."""

    exit_code = 5
