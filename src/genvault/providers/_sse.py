"""Server-sent events read as bytes: the lines exactly as the upstream sent them, so a provider
can parse them and a gateway caller can be given them unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

__all__ = ["sse_lines"]


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
