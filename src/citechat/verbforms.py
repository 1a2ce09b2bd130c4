"""Irregular verb forms read as their verb, so that a question's words meet a
sentence's: "gave" is "give", "rewrote" and "Rewritten" are "rewrite", "death" is "die".

    >>> "give" in stems("Ofsted gave Haringey three stars")
    True

The stemmer (text.py) leaves irregular forms apart; this adds a small table on top of
it.  It neither finds claims nor compares them (disagreement.py does).
"""

from __future__ import annotations

import re

from .text import term_set, terms

#: a word as disagreement.py reads one ("hasn’t", "Debian-derived")
WORD = re.compile(r"\w[\w’'-]*")

#: irregular past forms (and "death"), so "gave" meets "give" ("Ofsted gave Haringey
#: three stars") and "died" / "death" meet "die", which the stemmer leaves apart
IRREGULAR: dict[str, str] = {
    "gave": "give",
    "given": "give",
    "left": "leave",
    "saw": "see",
    "seen": "see",
    "led": "lead",
    "had": "have",
    "has": "have",
    "told": "tell",
    "made": "make",
    "took": "take",
    "taken": "take",
    "paid": "pay",
    "found": "find",
    "won": "win",
    "lost": "lose",
    "sent": "send",
    "went": "go",
    "came": "come",
    "ran": "run",
    "held": "hold",
    "met": "meet",
    "kept": "keep",
    "wrote": "write",
    "written": "write",
    "knew": "know",
    "known": "know",
    "died": "die",
    "death": "die",
}


def verb(word: str) -> str:
    """An irregular past form as its verb, a prefixed one too.

    >>> verb("gave"), verb("rewrote"), verb("Rewritten"), verb("ribs")
    ('give', 'rewrite', 'rewrite', 'ribs')
    """
    low = word.lower()
    if low in IRREGULAR:
        return IRREGULAR[low]
    if low[:2] == "re" and low[2:] in IRREGULAR:
        return "re" + IRREGULAR[low[2:]]
    return word


def stems(text: str) -> frozenset[str]:
    """:func:`term_set` with irregular past forms read as their verb."""
    return frozenset(t for w in WORD.findall(text) for t in term_set(verb(w)))


def ordered(text: str) -> list[str]:
    """The stems of ``text`` in order, each once."""
    out: list[str] = []
    for w in WORD.findall(text):
        for t in terms(verb(w)):
            if t not in out:
                out.append(t)
    return out
