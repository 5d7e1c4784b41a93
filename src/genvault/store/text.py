"""Text every database can keep.

U+0000 cannot be stored in PostgreSQL text or JSONB, and unpaired UTF-16 surrogates (which JSON
can smuggle in as `\\ud800` escapes) are not encodable as UTF-8 at all. Both are refused up
front, the same way on every backend, with a message that says what is wrong, instead of a
driver error halfway through a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from genvault.errors import InvalidRequest
from genvault.validation import MAX_JSON_DEPTH, json_depth_exceeds

__all__ = ["check_storable", "plain_json"]


def plain_json(value: Any, *, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if `value` certainly passes both `validation.check_json_depth` (at `limit`) and
    `check_storable`, found in one C-speed encode instead of two Python walks over the value:
    orjson encodes it (so it holds no unpaired surrogate), without a `\\u0000` escape (so no
    NUL), and the text nests at most `limit` deep (every dict and list is a bracket pair there,
    so the value nests no deeper). False says only "run the exact checks", which then decide
    (and word the error) as before."""
    try:
        raw = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return b"\\u0000" not in raw and not json_depth_exceeds(raw, limit)


def check_storable(value: Any, what: str) -> None:
    # The common case in one C call: orjson refuses an unpaired surrogate and writes U+0000 as
    # `\u0000`, so a value it encodes without that escape has neither (a chat turn checks its
    # message and its reply this way; the walk below took ~2 % of a turn's CPU). Anything else
    # (orjson refused it, or the escape may be a literal backslash-u in the text) takes the walk,
    # which decides exactly as before.
    try:
        if b"\\u0000" not in orjson.dumps(value):
            return
    except (orjson.JSONEncodeError, TypeError):
        pass
    for text in _strings(value):
        if "\x00" in text:
            raise InvalidRequest(f"{what} contains a NUL character (U+0000), which cannot be stored")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{what} contains an unpaired UTF-16 surrogate, which is not valid Unicode text"
            ) from None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
