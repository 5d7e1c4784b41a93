"""The in-process hub: the embedded default, and the twin the Redis hub is tested against.

A closed stream is kept only `retain_seconds` (a few seconds: a follower that asks just as it
ends), then forgotten: its record in the database is final before the stream closes, and a late
follower replays from it (`genvault.replay`). So memory follows the streams running now, not the
last minutes of traffic. Forgetting is in close order, from a queue: no scan of every stream.

A text or reasoning delta (one per token: most of a stream) is kept as a `(type, id, delta)`
tuple, its `type` and `id` strings shared with the stream's other deltas, and given to each
follower as a new dict equal to the one published (same keys, same order: the same bytes on the
wire). A dict per token held for a stream's whole life was ~60 % of a running stream's memory,
and those small objects, spread over the allocator's arenas while hundreds of replies stream,
were what kept the arenas (and the RSS) from being given back after the traffic.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLOSED_RETAIN_SECONDS", "MemoryHub"]

# How long a closed stream's chunks stay in memory by default.
CLOSED_RETAIN_SECONDS = 5.0


# A plain delta as kept: (type, id, delta).
_Delta = tuple[str, str, str]
_DELTA_TYPES = frozenset({"text-delta", "reasoning-delta"})


def _kept(chunk: dict[str, Any], previous: dict[str, Any] | _Delta | None) -> dict[str, Any] | _Delta:
    """`chunk`, or its compact form when it is a plain delta (exactly `type`, `id` and `delta`,
    all strings, in that order); `type` and `id` are the previous delta's strings when equal."""
    if type(chunk) is not dict or len(chunk) != 3:
        return chunk
    first, second, third = chunk  # the keys, in order
    if first != "type" or second != "id" or third != "delta":
        return chunk
    kind, stream_id, delta = chunk["type"], chunk["id"], chunk["delta"]
    if kind not in _DELTA_TYPES or type(stream_id) is not str or type(delta) is not str:
        return chunk
    if type(previous) is tuple and previous[0] == kind and previous[1] == stream_id:
        kind, stream_id = previous[0], previous[1]
    return (kind, stream_id, delta)


def _given(kept: dict[str, Any] | _Delta) -> dict[str, Any]:
    if isinstance(kept, tuple):
        return {"type": kept[0], "id": kept[1], "delta": kept[2]}
    return kept


@dataclass
class _Stream:
    chunks: list[dict[str, Any] | _Delta] = field(default_factory=list)
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
        chunks.append(_kept(chunk, chunks[-1] if chunks else None))
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

    def count(self, stream_id: str) -> int:
        """How many chunks were published so far (0 for an unknown stream)."""
        stream = self._streams.get(stream_id)
        return len(stream.chunks) if stream is not None else 0

    def chunks(self, stream_id: str, start: int = 0) -> list[dict[str, Any]]:
        """The chunks published so far from index `start` (empty for an unknown stream)."""
        stream = self._streams.get(stream_id)
        return [_given(kept) for kept in stream.chunks[start:]] if stream is not None else []

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
                kept = chunks[index]
                index += 1
                yield {"type": kept[0], "id": kept[1], "delta": kept[2]} if isinstance(kept, tuple) else kept
            if stream.closed:
                return
            waiter = loop.create_future()
            stream.waiters.append(waiter)
            await waiter

    async def aclose(self) -> None:
        for stream in self._streams.values():
            stream.closed = True
            stream.wake()
