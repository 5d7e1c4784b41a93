"""Ranking a user's own matches on SQLite, without FTS5's bm25().

FTS5's bm25() weighs each term by its inverse document frequency over the whole index, and finds
that frequency by reading the term's entire doclist on every query: at a million messages, "table
error" for one user (11 matches) took 0.7 ms to match and 20 ms to rank, every user's rows read to
rank one user's. A user's search ranks with this function instead, registered on every SQLite
connection as `genvault_rank(text, terms)`: the same BM25 shape (term frequency saturated by k1,
normalised by the document's length with b) computed from the matched row's own text, each wanted
term weighing the same (no corpus-wide frequency). Its cost is per matched row of that user,
never the corpus. A search of everyone keeps bm25() (its unfiltered window,
`service._windowed`, is scored inside the index, without reading 200 rows per kind).

It runs once per matched row (a user's common words: hundreds), so it does not split the text
into words in Python: each term is found by a compiled pattern in the lowercased text (C's
substring search; a hit counts when it starts a word), and the length is the text's characters
(no word count to make). Splitting the words one by one took 80-250 µs a message under load;
this takes 8-30.

`terms` is `rank_terms(query)`: the wanted words, space-separated, a prefix ending with `*`; a
phrase counts as its words. Lower is better, as bm25()'s sign.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from genvault.search.query import TextQuery, count_words, word_patterns

__all__ = ["FUNCTION", "rank", "rank_terms", "register"]

FUNCTION = "genvault_rank"
# bm25's usual constants (FTS5's too), and a typical message's length in characters for the
# length normalisation (the benchmark corpus averages ~45 words, ~340 characters; FTS5 uses the
# index's own average, in words).
_K1 = 1.2
_B = 0.75
_AVERAGE_CHARS = 340.0


def rank_terms(query: TextQuery) -> str:
    """The query's wanted terms as `genvault_rank`'s second argument."""
    out: list[str] = []
    for term in query.wanted:
        if term.kind == "prefix":
            out.append(term.words[0] + "*")
        else:
            out.extend(term.words)
    return " ".join(out)


@lru_cache(maxsize=256)
def _patterns(terms: str) -> tuple[re.Pattern[str], ...]:
    words = terms.split()
    whole = frozenset(w for w in words if not w.endswith("*"))
    return word_patterns(whole, tuple(w[:-1] for w in words if w.endswith("*")))


def rank(text: Any, terms: Any) -> float:
    """Minus the BM25 sum over the wanted terms found in `text` (0.0 for no text)."""
    if not isinstance(text, str) or not isinstance(terms, str):
        return 0.0
    lowered = text.lower()
    norm = _K1 * (1.0 - _B + _B * len(lowered) / _AVERAGE_CHARS)
    total = 0.0
    for pattern in _patterns(terms):
        tf = count_words(pattern, lowered)
        if tf:
            total += tf * (_K1 + 1.0) / (tf + norm)
    return -total


def register(dbapi_connection: Any) -> None:
    """Make `genvault_rank` callable on this SQLite connection (a deterministic function)."""
    dbapi_connection.create_function(FUNCTION, 2, rank, deterministic=True)
