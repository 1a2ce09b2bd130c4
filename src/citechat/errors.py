"""One exception hierarchy for every failure a user can cause or fix.

Each message names the problem and the fix in one line; the CLI prints it
without a traceback (``--debug`` shows one) and exits with ``exit_code``:

====  =========================================================
code  meaning
====  =========================================================
1     any other :class:`CitechatError`; a file-system error
2     :class:`UsageError`, :class:`ConfigError`
3     :class:`CorpusError`
4     :class:`IndexError_` and its subclasses
5     :class:`ModelError`
====  =========================================================

It does not print or log anything itself (cli.py does); :func:`one_line` fits
another library's message into one of these.
"""

from __future__ import annotations


class CitechatError(Exception):
    """Base class: a one-line message that names the problem and the fix."""

    exit_code = 1


class UsageError(CitechatError):
    """Bad input from the user (empty question, bad flag value)."""

    exit_code = 2


class ConfigError(CitechatError):
    """A setting has a bad value; ``setting`` names it when one setting is at fault
    (:class:`~citechat.config.Settings` adds where it was set)."""

    exit_code = 2

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class CorpusError(CitechatError):
    """The corpus path is missing or holds nothing that can be read."""

    exit_code = 3


class IndexError_(CitechatError):
    """The index is missing, damaged, or was built with other settings.

    ``problem`` is the message without its fix, for callers that apply the fix
    themselves ("...; rebuilding it"):

    >>> err = IndexError_("the index is damaged", "run `citechat index --rebuild`")
    >>> str(err), err.problem
    ('the index is damaged; run `citechat index --rebuild`', 'the index is damaged')
    """

    exit_code = 4

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem


class IndexDamagedError(IndexError_):
    """Part of the index is missing or unreadable; rebuilding from the corpus fixes it."""


class IndexMismatchError(IndexError_):
    """The index was built with another model or chunking."""


class IndexFormatError(IndexMismatchError):
    """The index was written by a citechat with another on-disk format."""


class IndexLockedError(IndexError_):
    """Another ``citechat index`` is writing this index."""


class ModelError(CitechatError):
    """A model could not be loaded or a generator endpoint failed."""

    exit_code = 5


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """A message fit for one line of output: whitespace, newlines included, collapsed
    and at most ``limit`` characters (``…`` marks a cut); an exception without a
    message gives its class name.  Libraries put newlines and pages of detail in
    their messages; citechat's own are one line already.

    >>> one_line(ValueError("bad xref\\n  at byte 12"))
    'bad xref at byte 12'
    >>> one_line(KeyError()), one_line("abcdef", limit=4), one_line("")
    ('KeyError', 'abc…', '')
    """
    flat = " ".join(str(error).split())
    if not flat and isinstance(error, BaseException):
        return type(error).__name__
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
