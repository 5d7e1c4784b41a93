"""`json.loads` with orjson's speed where orjson reads the same value: stored JSON cells (a page
read) and a streamed reply's events (one per token) both take this path; and `json.dumps` with
orjson's where it writes JSON (the checkpoint writer's payload and messages, every interval)."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = [
    "dump_compact",
    "dump_compact_bytes",
    "dump_json",
    "dump_json_column",
    "dump_jsonb",
    "load_json",
    "load_json_bytes",
]

# Every byte to a space but ASCII digits (to "0"): a run of 19 zeros in the translated text is
# a number orjson may not read as `json` does (it reads an integer beyond 64 bits as a float).
# Two C passes over the bytes, a few times cheaper than a regular expression's search.
_DIGITS_ONLY = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_NUMBER = b"0" * 19


_SLOW = object()  # `_fast`'s answer when `json.loads` must read it


def _fast(data: bytes) -> Any:
    if _LONG_NUMBER not in data.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _SLOW


def load_json_bytes(data: bytes) -> Any:
    """`json.loads(data)`: its value or its error, parsed by orjson (about a third of the
    instructions: 14.9k against 35.2k for a 248-byte OpenAI chunk) where that gives the same
    value. What orjson reads differently goes to `json.loads`: NaN and Infinity, lone surrogates,
    invalid UTF-8 or JSON, a byte-order mark (raised or read as `json` does), and any run of 19 or
    more digits (an integer beyond 64 bits, which orjson would read as a float; no float
    `json.dumps` writes has one)."""
    value = _fast(data)
    return json.loads(data) if value is _SLOW else value


def load_json(text: str) -> Any:
    """`json.loads(text)`, the same way (`json` refuses a text's byte-order mark, which it reads
    past in bytes: the text itself goes to it)."""
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate in the text itself
        return json.loads(text)
    value = _fast(data)
    return json.loads(text) if value is _SLOW else value


def dump_json(value: Any) -> str:
    """`value` as compact JSON text: orjson's (~50x `json.dumps`), or `json.dumps`'s for what only
    `json` takes (an integer over 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False)


def dump_jsonb(value: Any) -> str:
    """`json.dumps(value)` for PostgreSQL to read into a `jsonb` (or `json`) value: orjson's text
    where PostgreSQL reads the same value from it (`dump_json`), and `json.dumps`'s itself where
    it might not: an integer over 64 bits (orjson refuses it), and any text holding `null`, which
    is how orjson writes NaN and ±Infinity (`json.dumps` writes `NaN`, which PostgreSQL refuses, as
    it did before). The two texts differ otherwise only in spacing, escapes and a float's exponent
    (`1e16` for `1e+16`), none of which a parsed JSON value keeps. A chat turn's request record
    costs ~15x less this way (docs/benchmarks.md, "pgloop")."""
    try:
        data = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)
    if b"null" in data:
        return json.dumps(value)
    return data.decode()


# How deep `_float_free` walks before it leaves a value to `json` (orjson's own limit is 254).
_PLAIN_DEPTH = 32


def _float_free(value: Any, depth: int) -> bool:
    """Whether `value` is JSON of exact plain types without a float: dicts with str keys, lists,
    str, int, bool, None, at most `depth` containers deep. For such a value orjson writes the
    text `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` writes, byte for byte
    (every string escaped alike: tested over every code point; an int beyond 64 bits orjson
    refuses). A float is left to `json`: its exponent is written otherwise (`1e16`, `1e+16`), and
    orjson writes NaN as `null` where `json` writes `NaN` or refuses it."""
    kind = type(value)
    if kind is dict:
        if depth == 0:
            return False
        for key, item in value.items():
            if type(key) is not str:
                return False
            leaf = type(item)
            if not (leaf is str or leaf is int or item is None or leaf is bool) and not _float_free(item, depth - 1):
                return False
        return True
    if kind is list:
        if depth == 0:
            return False
        for item in value:
            leaf = type(item)
            if not (leaf is str or leaf is int or item is None or leaf is bool) and not _float_free(item, depth - 1):
                return False
        return True
    return kind is str or kind is int or kind is bool or value is None


def _plain_orjson(value: Any) -> bytes | None:
    """orjson's compact text of a value of plain types without a float (`_float_free`), or None:
    the caller's `json` writes it instead (a float, another type, an int beyond 64 bits)."""
    if _float_free(value, _PLAIN_DEPTH):
        try:
            return orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError):  # an int beyond 64 bits
            pass
    return None


def dump_compact(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False)`, the same text (or error):
    orjson's for a value of plain types without a float (`_float_free`), `json`'s otherwise.
    A reply's metadata: ~15 k instructions against ~41 k (the walk ~11 k, orjson ~4 k; `json.dumps`
    builds an encoder per call for these arguments; docs/benchmarks.md, "finloop")."""
    data = _plain_orjson(value)
    return data.decode() if data is not None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump_compact_bytes(value: Any) -> bytes:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)` encoded as
    UTF-8, the same bytes (or error), the way `dump_compact` gets them."""
    data = _plain_orjson(value)
    if data is not None:
        return data
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def dump_json_column(value: Any) -> str:
    """A JSON (not `JSONText`) column's text on SQLite: the JSON value `json.dumps(value)` writes
    (SQLAlchemy's `JSON` bind there, `None` as `null`), as orjson's compact text for a value of
    plain types without a float (`_float_free`; the checkpoint writer stores orjson's text in
    the same column), else `json.dumps`'s own. The texts differ only in spacing and in non-ASCII
    characters written as themselves rather than as `\\u` escapes: SQLite's JSON functions and
    the readers (`json.loads`) read the same value from either."""
    data = _plain_orjson(value)
    return data.decode() if data is not None else json.dumps(value)
