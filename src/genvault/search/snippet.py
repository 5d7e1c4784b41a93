"""The highlighted snippet of a hit: computed here, the same on both databases.

The index finds and ranks; the few texts of one page are then cut around their first match and
the query's words marked. HTML-escaped text with `<mark>…</mark>` around each matched word, so a
page can show it as is and a terminal can turn the marks into bold.
"""

from __future__ import annotations

import html
import re

from genvault.search.query import TextQuery

__all__ = ["MARK_CLOSE", "MARK_OPEN", "snippet"]

MARK_OPEN = "<mark>"
MARK_CLOSE = "</mark>"
_TOKEN = re.compile(r"[^\W_]+")


def snippet(text: str, query: TextQuery, *, width: int = 24) -> str | None:
    """About `width` words of `text` around its first matched word, matches marked; None when
    no wanted word occurs in `text` (the hit matched in another field)."""
    whole, prefixes = query.highlight_words()
    spans: list[tuple[int, int]] = []
    for m in _TOKEN.finditer(text):
        word = m.group().lower()
        if word in whole or word.startswith(prefixes):
            spans.append(m.span())
    if not spans:
        return None
    tokens = list(_TOKEN.finditer(text))
    first = next(i for i, t in enumerate(tokens) if t.start() == spans[0][0])
    lo = max(0, first - width // 3)
    hi = min(len(tokens), lo + width)
    start = 0 if lo == 0 else tokens[lo].start()
    end = len(text) if hi == len(tokens) else tokens[hi - 1].end()
    out: list[str] = ["…" if start > 0 else ""]
    at = start
    for s, e in spans:
        if s < start or e > end:
            continue
        out.append(html.escape(text[at:s]))
        out.append(MARK_OPEN + html.escape(text[s:e]) + MARK_CLOSE)
        at = e
    out.append(html.escape(text[at:end]))
    if end < len(text):
        out.append("…")
    return " ".join("".join(out).split())
