"""The stream hub protocol.

A stream is the ordered list of UI message stream chunks (JSON objects) of one generation. The
producer `open`s it, `publish`es chunks and `close`s it; followers `follow` it from any index:
first the chunks already published, then live ones, until it closes. Chunk `i` is the same
object for every follower, so a replay is byte-identical to the original stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

__all__ = ["StreamHub"]


class StreamHub(Protocol):
    async def open(self, stream_id: str) -> None: ...

    async def publish(self, stream_id: str, chunk: dict[str, Any]) -> None: ...

    async def close(self, stream_id: str) -> None: ...

    async def exists(self, stream_id: str) -> bool:
        """True while the stream is open or closed but still retained for replay."""
        ...

    def follow(self, stream_id: str, start: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Chunks from index `start` until the stream closes. Nothing if the stream is unknown."""
        ...

    async def abandon(self, stream_id: str) -> None:
        """End, with an `abort` chunk, the stream of a generation whose process died."""
        ...

    async def discard(self, stream_id: str) -> None:
        """Delete the stream's buffer now, wherever it is kept (erasure); followers end."""
        ...

    async def aclose(self) -> None: ...
