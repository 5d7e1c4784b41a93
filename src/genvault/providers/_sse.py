"""Server-sent events read as bytes: the lines exactly as the upstream sent them, so a provider
can parse them and a gateway caller can be given them unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson

__all__ = ["loads_event", "sse_lines"]

# Digits to "0", every other byte to " ": a run of 19 zeros in the translation is a run of 19
# digits in the event, which may be an integer beyond 64 bits (orjson reads one as a float). Two
# C passes over the bytes, a few times cheaper than a regular expression's search.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def loads_event(data: bytes) -> Any:
    """`json.loads(data)`, the same value, with orjson: one per token of a streamed reply, in
    about a third of the instructions (callgrind: 14.9k against 35.2k for a 248-byte OpenAI
    chunk). What orjson reads differently goes to `json.loads`: NaN and Infinity, lone surrogates,
    invalid UTF-8 (raised as `json` raises it), and any run of 19 or more digits (an integer
    beyond 64 bits, which orjson would read as a float)."""
    if _LONG_RUN not in data.translate(_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


async def sse_lines(response: Any) -> AsyncIterator[bytes]:
    """The response body's lines as sent, each with its line ending (the last may lack one)."""
    pending = b""
    async for data in response.aiter_bytes():
        pending += data
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending
