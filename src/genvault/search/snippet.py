"""The highlighted snippet of a hit: computed here, the same on both databases.

The index finds and ranks; the few texts of one page are then cut around their first match and
the query's words marked. HTML-escaped text with `<mark>…</mark>` around each matched word, so a
page can show it as is and a terminal can turn the marks into bold.
"""

from __future__ import annotations

import html
import re
from collections import deque

from genvault.search.query import TextQuery

__all__ = ["MARK_CLOSE", "MARK_OPEN", "snippet"]

MARK_OPEN = "<mark>"
MARK_CLOSE = "</mark>"
_TOKEN = re.compile(r"[^\W_]+")


def snippet(text: str, query: TextQuery, *, width: int = 24) -> str | None:
    """About `width` words of `text` around its first matched word, matches marked; None when
    no wanted word occurs in `text` (the hit matched in another field).

    Reads the text's words only up to the end of the window (a generation's output can be long,
    and a page cuts up to twenty of them)."""
    whole, prefixes = query.highlight_words()

    def matches(m: re.Match[str]) -> bool:
        word = m.group().lower()
        return word in whole or word.startswith(prefixes)

    before = width // 3
    words = _TOKEN.finditer(text)
    window: deque[re.Match[str]] = deque(maxlen=before + 1)  # the first match and the words before it
    first = -1
    for i, m in enumerate(words):
        window.append(m)
        if matches(m):
            first = i
            break
    if first < 0:
        return None
    shown = list(window)
    while len(shown) < width:
        following = next(words, None)
        if following is None:
            break
        shown.append(following)
    more = len(shown) == width and any(True for _ in words)
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
