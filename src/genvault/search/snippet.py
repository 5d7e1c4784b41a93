"""The highlighted snippet of a hit: computed here, the same on both databases.

The index finds and ranks; the few texts of one page are then cut around their first match and
the query's words marked. HTML-escaped text with `<mark>…</mark>` around each matched word, so a
page can show it as is and a terminal can turn the marks into bold.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from genvault.search.query import TextQuery, find_word, word_patterns

__all__ = ["MARK_CLOSE", "MARK_OPEN", "snippet"]

MARK_OPEN = "<mark>"
MARK_CLOSE = "</mark>"
_TOKEN = re.compile(r"[^\W_]+")


def snippet(text: str, query: TextQuery, *, width: int = 24) -> str | None:
    """About `width` words of `text` around its first matched word, matches marked; None when
    no wanted word occurs in `text` (the hit matched in another field).

    The first match is found by the query's compiled patterns in the lowercased text (`re`'s
    substring search, `query.find_word`), not by testing word after word in Python (120 µs for a
    message's 50 words under load, twenty texts a page, and a text that matched in another field
    is read to its end); then only the words around it are split."""
    whole, prefixes = query.highlight_words()

    def matches(m: re.Match[str]) -> bool:
        word = m.group().lower()
        return word in whole or word.startswith(prefixes)

    before = width // 3
    lowered = text.lower()
    if len(lowered) == len(text):  # the same positions in both (lower() can lengthen a few letters)
        found = find_word(word_patterns(whole, prefixes), lowered)
        if found is None:
            return None
        match = _TOKEN.match(text, found.start())
        assert match is not None  # a hit starts a word
        prior, first = _words_before(text, found.start(), before)
    else:
        match, prior, first = _first_match_slowly(text, matches, before)
        if match is None:
            return None
    shown = [*prior, match]
    following: Iterator[re.Match[str]] = _TOKEN.finditer(text, match.end())
    while len(shown) < width:
        nxt = next(following, None)
        if nxt is None:
            break
        shown.append(nxt)
    more = len(shown) == width and next(following, None) is not None
    start = 0 if first <= before else shown[0].start()
    end = shown[-1].end() if more else len(text)
    out: list[str] = ["…" if start > 0 else ""]
    at = start
    for m in shown:
        if not matches(m):
            continue
        s, e = m.span()
        out.append(html.escape(text[at:s]))
        out.append(MARK_OPEN + html.escape(text[s:e]) + MARK_CLOSE)
        at = e
    out.append(html.escape(text[at:end]))
    if end < len(text):
        out.append("…")
    return " ".join("".join(out).split())


def _words_before(text: str, at: int, count: int) -> tuple[list[re.Match[str]], int]:
    """The last `count` words of `text` before `at` (a word's start), and how many words there
    are before it (exact up to `count`; any number above it means more). Reads backwards from
    `at` in growing slices rather than every word from the text's start."""
    reach = 16 * (count + 1)
    while True:
        low = max(0, at - reach)
        words = list(_TOKEN.finditer(text, low, at))
        if low > 0 and words:
            words = words[1:]  # it may be a word cut by the slice
        if low == 0 or len(words) > count:
            return words[max(0, len(words) - count) :] if count else [], len(words)
        reach *= 4


def _first_match_slowly(
    text: str, matches: object, before: int
) -> tuple[re.Match[str] | None, list[re.Match[str]], int]:
    """`snippet`'s first match word by word, for a text whose lowercase has other positions."""
    assert callable(matches)
    prior: list[re.Match[str]] = []
    for i, m in enumerate(_TOKEN.finditer(text)):
        if matches(m):
            return m, prior[-before:] if before else [], i
        prior.append(m)
    return None, [], 0
