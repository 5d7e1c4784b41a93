"""The rules every caller-supplied id, key, time and JSON body meets before anything reads or writes.

One rule per kind of input, checked at the boundary (the `Vault` methods and the HTTP server),
the same on every database: so SQLite never keeps what PostgreSQL would refuse, and bad input is
an `InvalidRequest` that says what to send instead, never a driver error or a `RecursionError`.

- Ids and keys (chat ids, message ids, `Idempotency-Key`, cursors' ids, path ids): 1 to 200
  visible ASCII characters (`!` to `~`: letters, digits, punctuation; no spaces, control
  characters or NUL). 200 is the width of every id column that holds a caller's id.
- Times: timezone-aware. `2024-01-01T00:00:00` is ambiguous; `…Z` or `…+02:00` is not.
- JSON: at most `MAX_JSON_DEPTH` arrays/objects deep, checked before the value is parsed (a
  100,000-deep body never reaches the recursive parser), and valid UTF-8.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from genvault._json import load_json_bytes
from genvault.errors import InvalidRequest

__all__ = [
    "ID_RULE",
    "MAX_ID_CHARS",
    "MAX_JSON_DEPTH",
    "check_aware",
    "check_id",
    "check_json_depth",
    "check_message_ids",
    "check_user_id",
    "find_bad_char",
    "is_id",
    "json_depth_exceeds",
    "loads_json",
]

MAX_ID_CHARS = 200
# Deep enough for any real UIMessage (body → messages → message → parts → part → tool input …
# a few dozen levels of tool JSON), shallow enough for every recursive walk after it.
MAX_JSON_DEPTH = 64

_ID = re.compile(rf"[!-~]{{1,{MAX_ID_CHARS}}}")
ID_RULE = (
    f"1 to {MAX_ID_CHARS} visible ASCII characters (letters, digits, punctuation; no spaces or control characters)"
)

# Characters no id, key or query value may hold: C0 controls (NUL included), DEL, C1 controls.
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def find_bad_char(text: str) -> str | None:
    """The first control character in `text` (NUL included), or None."""
    match = _BAD_CHAR.search(text)
    return match.group() if match else None


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def is_id(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: Any, what: str) -> str:
    """`value` if it is a valid id or key; `InvalidRequest` naming `what` and the rule otherwise."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string of {ID_RULE}")
    if not _ID.fullmatch(value):
        if len(value) > MAX_ID_CHARS:
            got = f"it has {len(value)} characters"
        elif not value:
            got = "it is empty"
        else:
            got = f"{_shown(value)} has the character {next(c for c in value if not '!' <= c <= '~')!r}"
        raise InvalidRequest(f"{what} must be {ID_RULE}; {got}")
    return value


MAX_USER_ID_CHARS = 64


def check_user_id(value: Any, what: str = "user id") -> str:
    """A user id names an account: 1 to 64 characters without control characters (a trusted proxy
    may name users with spaces or non-ASCII letters, so the id rule's charset does not apply)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USER_ID_CHARS:
        got = f"it has {len(value)} characters" if isinstance(value, str) else f"got {type(value).__name__}"
        raise InvalidRequest(f"{what} must be 1 to {MAX_USER_ID_CHARS} characters; {got}")
    bad = find_bad_char(value)
    if bad is not None:
        raise InvalidRequest(f"{what} must not contain the control character U+{ord(bad):04X}")
    return value


# Part fields stored in columns of a fixed width (store/schema.py `parts`): longer values would be
# refused by PostgreSQL and kept by SQLite, so both refuse them here.
_PART_LIMITS: tuple[tuple[str, int], ...] = (
    ("toolCallId", 200),
    ("toolName", 200),
    ("type", 200),
    ("mediaType", 200),
    ("filename", 500),
    ("sourceId", 500),
    ("title", 500),
    ("state", 32),
)


# Each limited part field's width, the part id's (reasoning and data parts) last: the order a
# part's too-wide fields are reported in.
_PART_WIDTHS = {**dict(_PART_LIMITS), "id": MAX_ID_CHARS}


def check_message_ids(message: dict[str, Any], what: str = "message") -> None:
    """The message id by the id rule; part ids and other column-sized fields by their width."""
    check_id(message.get("id"), f"{what} id")
    for position, part in enumerate(message.get("parts") or ()):
        if not isinstance(part, dict):
            continue
        # A part holds a few keys: each is looked up among the limited ones (not each of the
        # nine limited keys in the part); the first too wide in `_PART_WIDTHS` order is reported.
        for key, value in part.items():
            limit = _PART_WIDTHS.get(key)
            if limit is not None and _wider(value, limit):
                key, limit = next((k, n) for k, n in _PART_WIDTHS.items() if _wider(part.get(k), n))
                raise InvalidRequest(
                    f"{what} {message.get('id')!r} parts[{position}].{key} has {len(part[key])} characters; "
                    f"the limit is {limit}"
                )


def _wider(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def check_aware(value: datetime | None, what: str) -> datetime | None:
    """`value` if it carries a timezone (or is None)."""
    if value is not None and (value.tzinfo is None or value.tzinfo.utcoffset(value) is None):
        shown = value.isoformat()
        raise InvalidRequest(f"{what} {shown} has no timezone; add one, e.g. {shown}Z or {shown}+00:00")
    return value


# A tuple, not `dict | list`: that expression builds a union object at every evaluation, and an
# isinstance against it costs twice a tuple's (once per dict and list of a request, every turn).
_CONTAINERS = (dict, list)


def check_json_depth(value: Any, what: str, *, limit: int = MAX_JSON_DEPTH) -> None:
    """`InvalidRequest` if `value` (parsed JSON, or any dicts and lists) nests deeper than `limit`.
    Walks with a stack, so a value too deep for recursion is refused rather than crashing."""
    stack: list[tuple[Iterable[Any], int]] = [((value,), 0)]
    while stack:
        items, depth = stack.pop()
        for item in items:
            if isinstance(item, _CONTAINERS):
                if depth + 1 > limit:
                    raise InvalidRequest(_too_deep(what, limit))
                stack.append((item.values() if isinstance(item, dict) else item, depth + 1))


def _too_deep(what: str, limit: int) -> str:
    return f"{what} nests arrays and objects more than {limit} deep; flatten it"


_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # inside strings only, in valid JSON
_STRING_LEFT = re.compile(rb'"[^"]*"')
_BRACKETS = bytes.maketrans(b"[]", b"{}")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def _structure(raw: bytes) -> bytes:
    """`raw` reduced to its brackets outside strings, every one written `{` or `}`. All C-speed:
    escapes go first (so every quote left delimits a string), then everything but quotes and
    brackets; adjacent quotes (an empty string, or one string's end and the next one's start with
    only `,`/`:` between) go at once; the few strings that held brackets go last."""
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    reduced = raw.translate(_BRACKETS, _NOT_STRUCTURE).replace(b'""', b"")
    return _STRING_LEFT.sub(b"", reduced) if b'"' in reduced else reduced


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `raw` opens more than `limit` arrays/objects at once, found without
    parsing it. Ordinary bodies (fewer brackets than `limit` in all) are not scanned; the rest are
    reduced to their brackets outside strings, and innermost pairs are removed a level at a time:
    at most `limit` passes of C-speed `bytes.replace`, never a recursion."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _structure(raw)
    for level in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"{}", b"")
        if shorter == brackets:
            # Unbalanced (invalid JSON): the parser would still recurse into the unclosed opens.
            return level + brackets.count(b"{") > limit
        brackets = shorter
    return bool(brackets)


def loads_json(raw: bytes, what: str = "body", *, limit: int = MAX_JSON_DEPTH, checked: bool = False) -> Any:
    """Parse JSON text: UTF-8, at most `limit` deep, else `InvalidRequest`. `checked`: the UTF-8
    and depth checks were made already (by the server's input guard), so only parse."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if checked:
        return _parse(raw, what)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{what} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); send JSON encoded as UTF-8"
        ) from None
    if json_depth_exceeds(raw, limit):
        raise InvalidRequest(_too_deep(what, limit))
    return _parse(raw, what)


def _parse(raw: bytes, what: str) -> Any:
    try:
        # `json.loads(raw)`'s value or error, read by orjson where it reads the same (a chat
        # turn's body: ~40 % fewer instructions; `genvault._json`).
        return load_json_bytes(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
