"""Word tokens for matching: lowercased, stop words dropped, Snowball-stemmed.

One tokeniser serves BM25 (index/lexical.py), the answerer's term coverage, the
citation support check and the eval scripts, so a question and a passage are always
cut the same way.  It does not weigh terms (IDF lives with the lexical index).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

#: bump when :func:`terms` changes (stop words, stemmer, token pattern)
TOKENIZER = "snowball-en-stop-v1"
_TOKEN = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


#: question words and pronouns carry no topic; bm25s's English list keeps them
_EXTRA_STOP = """who whom whose what which when where why how did does do done many much
he she her hers him his they them their theirs it its i me my we us our you your s t
said says would could should can may might also one"""


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | frozenset(_EXTRA_STOP.split())


def terms(text: str) -> list[str]:
    """Lowercased, stop-word-free, Snowball-stemmed word tokens.

    >>> terms("Who appointed the new directors?")
    ['appoint', 'new', 'director']
    >>> terms("Did she lose her appeal?")
    ['lose', 'appeal']
    """
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _stopwords()]
    return list(_stemmer().stemWords(words))


@lru_cache(maxsize=1 << 16)
def term_set(text: str) -> frozenset[str]:
    """``set(terms(text))``, cached: the answerer scores the same sentences and
    words for question after question, and stemming is most of its time."""
    return frozenset(terms(text))
