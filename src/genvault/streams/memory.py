"""The in-process hub: the embedded default, and the twin the Redis hub is tested against.

A closed stream is kept only `retain_seconds` (a few seconds: a follower that asks just as it
ends), then forgotten: its record in the database is final before the stream closes, and a late
follower replays from it (`genvault.replay`). So memory follows the streams running now, not the
last minutes of traffic. Forgetting is in close order, from a queue: no scan of every stream.

A running stream keeps every chunk (a follower may start from the first), so its memory grows
with its tokens: a text or reasoning delta, one per token, was a ~200-byte dict kept for the
stream's life. Once the live followers are well past it (`_KEEP_RECENT` chunks later) it is kept
packed in one string (`_pack`: ~70 bytes) and handed out as an equal dict; the live hand-off,
one per token, still passes the publisher's own dict.

A string, not a `(type, id, delta)` tuple: a tuple is a container the cyclic garbage collector
counts, so each kept token added one to its young generation's count for the stream's life, and
with hundreds of replies streaming that started a young collection every ~600 tokens, each
walking every suspended task's coroutines and futures (~5,000 objects, ~1.4 ms): ~2.7 µs of CPU
per token at 300 streams (docs/benchmarks.md, "Many slow streams: the per-token path"). A string
is not counted: the dict it replaces is freed, so a kept token costs the collector nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from genvault.messages.chunks import plain_delta

__all__ = ["CLOSED_RETAIN_SECONDS", "MemoryHub", "as_chunk"]

# How long a closed stream's chunks stay in memory by default.
CLOSED_RETAIN_SECONDS = 5.0
# The most recent chunks kept as published; older plain deltas are compacted, every this many.
_KEEP_RECENT = 64


_KINDS = {"t": "text-delta", "r": "reasoning-delta"}


def _pack(kind: str, stream_id: str, delta: str) -> str:
    """A plain delta in one string: its kind's letter, the id's length, `:`, the id, the delta
    (any characters in either: the length says where the id ends)."""
    return f"{kind[0]}{len(stream_id)}:{stream_id}{delta}"


def as_chunk(kept: dict[str, Any] | str) -> dict[str, Any]:
    """A chunk as published, from what the hub keeps of it."""
    if type(kept) is str:
        colon = kept.index(":")
        end = colon + 1 + int(kept[1:colon])
        return {"type": _KINDS[kept[0]], "id": kept[colon + 1 : end], "delta": kept[end:]}
    return kept  # type: ignore[return-value]


def _compact(chunks: list[Any], start: int, end: int) -> None:
    for index in range(start, end):
        delta = plain_delta(chunks[index])
        if delta is not None:
            chunks[index] = _pack(*delta)


@dataclass
class _Stream:
    # Chunks as published, or a plain delta packed in a string (`as_chunk` gives it back).
    chunks: list[Any] = field(default_factory=list)
    compacted: int = 0  # chunks before this index were looked at by `_compact`
    closed: bool = False
    closed_at: float = 0.0
    # One future per follower that has to wait, resolved and dropped by the next change: a chunk
    # nobody is waiting for (a follower still draining, or none at all) wakes nothing. A future of
    # its own (not a shared one, not an `asyncio.Event`): a follower cancelled while waiting
    # cancels only its own future, and the per-token wake-up is one C-level `set_result`.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wake(self) -> None:
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():  # cancelled with its follower
                    waiter.set_result(None)


class MemoryHub:
    def __init__(self, *, retain_seconds: float = CLOSED_RETAIN_SECONDS) -> None:
        self.retain_seconds = retain_seconds
        self._streams: dict[str, _Stream] = {}
        # Closed streams, oldest first: eviction pops from the left while they are stale.
        self._closed: deque[tuple[float, str, _Stream]] = deque()

    def _evict(self) -> None:
        horizon = time.monotonic() - self.retain_seconds
        closed = self._closed
        while closed and closed[0][0] < horizon:
            _at, key, stream = closed.popleft()
            if self._streams.get(key) is stream:  # not reopened or discarded since
                del self._streams[key]

    @property
    def size(self) -> int:
        """Streams held (running, and closed within `retain_seconds`)."""
        self._evict()
        return len(self._streams)

    async def open(self, stream_id: str) -> None:
        self._evict()
        self._streams[stream_id] = _Stream()

    async def publish(self, stream_id: str, chunk: dict[str, Any]) -> None:
        self.publish_nowait(stream_id, chunk)

    def publish_nowait(self, stream_id: str, chunk: dict[str, Any]) -> None:
        """`publish` without the coroutine: the engine calls this once per token."""
        stream = self._streams[stream_id]
        chunks = stream.chunks
        chunks.append(chunk)
        if not len(chunks) % _KEEP_RECENT:
            end = len(chunks) - _KEEP_RECENT
            _compact(chunks, stream.compacted, end)
            stream.compacted = end
        # Wake every waiting follower; each arms a fresh future the next time it waits.
        stream.wake()

    async def close(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed:
            return
        stream.closed = True
        stream.closed_at = time.monotonic()
        self._closed.append((stream.closed_at, stream_id, stream))
        stream.wake()
        self._evict()

    async def exists(self, stream_id: str) -> bool:
        self._evict()
        return stream_id in self._streams

    def chunks(self, stream_id: str) -> list[Any]:
        """What is kept of the chunks published so far (empty for an unknown stream): each the
        chunk, or what `as_chunk` turns back into it."""
        stream = self._streams.get(stream_id)
        return stream.chunks if stream is not None else []

    async def abandon(self, stream_id: str) -> None:
        """End a stream whose producer is gone, with an `abort` chunk (if it is still open)."""
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.closed:
            await self.publish(stream_id, {"type": "abort"})
            await self.close(stream_id)

    async def discard(self, stream_id: str) -> None:
        """Forget a stream now (erasure); its followers end."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.closed = True
            stream.wake()

    async def follow(self, stream_id: str, start: int = 0) -> AsyncIterator[dict[str, Any]]:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        index = max(start, 0)
        chunks = stream.chunks  # only ever appended to
        loop = asyncio.get_running_loop()
        while True:
            while index < len(chunks):
                chunk = chunks[index]
                yield chunk if type(chunk) is not str else as_chunk(chunk)
                index += 1
            if stream.closed:
                return
            waiter = loop.create_future()
            stream.waiters.append(waiter)
            await waiter

    async def aclose(self) -> None:
        for stream in self._streams.values():
            stream.closed = True
            stream.wake()
