"""The in-process hub: the embedded default, and the twin the Redis hub is tested against.

A closed stream is kept only `retain_seconds` (a few seconds: a follower that asks just as it
ends), then forgotten: its record in the database is final before the stream closes, and a late
follower replays from it (`genvault.replay`). So memory follows the streams running now, not the
last minutes of traffic. Forgetting is in close order, from a queue: no scan of every stream.

A running stream keeps every chunk (a follower may start from any index), so its memory grows
with its tokens. A text or reasoning delta, one per token, is a ~200-byte dict and its own small
string. Once the live followers are well past it (`_KEEP_RECENT` chunks later), its text is moved
into one string per stream (`_Stream.text`, all its parts' aged deltas end to end), its slot keeps
only the part's `(type, id)` key (one tuple per part, shared) and two offsets into that string go
to an array: ~10 bytes a token instead of ~290 (a dict), or ~120 (the tuple this hub kept before).
Chunk `i` is handed out as an equal dict (same keys in the same order, the same delta text), so
every index, every follower and every replay sees the stream as published; the live hand-off, one
per token, still passes the publisher's own dict. The joined string is large, so it lives in
glibc's heap (given back by `malloc_trim` once the process is quiet), not in the small-object
arenas that a run's peak fills and that stay pinned afterwards (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from genvault.messages.chunks import plain_delta

__all__ = ["CLOSED_RETAIN_SECONDS", "MemoryHub"]

# How long a closed stream's chunks stay in memory by default.
CLOSED_RETAIN_SECONDS = 5.0
# The most recent chunks kept as published; older plain deltas are compacted, every this many.
_KEEP_RECENT = 16
# A stream's joined text stops growing past this (offsets are unsigned 32-bit): later deltas stay
# as published. Far above anything a reply holds; it only keeps the offsets' arithmetic exact.
_MAX_TEXT = 2**31


@dataclass
class _Stream:
    # Chunks as published, or for a compacted plain delta its part's `(type, id)` (see `chunk`).
    chunks: list[Any] = field(default_factory=list)
    compacted: int = 0  # chunks before this index were looked at by `_compact`
    # Chunks from this index on were published as plain deltas (`publish_nowait(..., delta=True)`):
    # `compact` takes their three values without testing them.
    plain_from: int = 0
    # The compacted deltas' text end to end, and each compacted index's `[start, end)` in it at
    # `spans[2 * index]`, `spans[2 * index + 1]` (zeros for a chunk kept as published).
    text: str = ""
    spans: array[int] = field(default_factory=lambda: array("I"))
    # Each part's `(type, id)` key, one tuple per part shared by its slots.
    parts: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    closed: bool = False
    closed_at: float = 0.0
    # One future per follower that has to wait, resolved and dropped by the next change: a chunk
    # nobody is waiting for (a follower still draining, or none at all) wakes nothing. A future of
    # its own (not a shared one, not an `asyncio.Event`): a follower cancelled while waiting
    # cancels only its own future, and the per-token wake-up is one C-level `set_result`.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # A follower's sink (`MemoryHub.follow_batches`): while set, the publisher hands it each chunk
    # at once; `sink_end` is what that follower waits on, resolved when the sink is removed with the
    # index of the first chunk it did not take.
    sink: Callable[[dict[str, Any]], bool] | None = None
    # The same follower's sink for a plain delta its publisher vouches for (`publish_nowait`).
    delta_sink: Callable[[dict[str, Any]], bool] | None = None
    sink_end: asyncio.Future[int] | None = None

    def detach(self, end: int) -> None:
        """Remove the sink; its follower goes on from chunk `end`."""
        waiting = self.sink_end
        self.sink = self.delta_sink = self.sink_end = None
        if waiting is not None and not waiting.done():
            waiting.set_result(end)

    def end(self) -> None:
        """Closed (or discarded): the sink's and the waiting followers' last wake-up."""
        self.closed = True
        self.detach(len(self.chunks))
        self.wake()

    def wake(self) -> None:
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():  # cancelled with its follower
                    waiter.set_result(None)

    def chunk(self, index: int) -> dict[str, Any]:
        """Chunk `index` as published (an equal dict for a compacted delta)."""
        kept = self.chunks[index]
        if type(kept) is not tuple:
            return kept  # type: ignore[no-any-return]
        spans = self.spans
        return {"type": kept[0], "id": kept[1], "delta": self.text[spans[2 * index] : spans[2 * index + 1]]}

    def compact(self) -> None:
        """Move the plain deltas in `[compacted, len - _KEEP_RECENT)` into `text`."""
        chunks = self.chunks
        end = len(chunks) - _KEEP_RECENT
        if len(self.text) >= _MAX_TEXT:
            return
        spans = self.spans
        parts = self.parts
        pieces: list[str] = []
        offset = len(self.text)
        key: tuple[str, str] | None = None
        plain_from = self.plain_from
        for index in range(self.compacted, end):
            chunk = chunks[index]
            delta = (chunk["type"], chunk["id"], chunk["delta"]) if index >= plain_from else plain_delta(chunk)
            if delta is None:
                spans.extend((0, 0))
                continue
            kind, part, text = delta
            if key is None or key[0] != kind or key[1] != part:
                key = parts.setdefault((kind, part), (kind, part))
            pieces.append(text)
            spans.append(offset)
            offset += len(text)
            spans.append(offset)
            chunks[index] = key
        if pieces:
            self.text += "".join(pieces)
        self.compacted = end


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

    def publish_nowait(self, stream_id: str, chunk: dict[str, Any], *, delta: bool = False) -> None:
        """`publish` without the coroutine (the engine's chunks). `delta`: `chunk` is a plain delta
        the caller built, exactly `{"type": "text-delta" or "reasoning-delta", "id": <str>,
        "delta": <str>}` in that order (`chunks.plain_delta` holds for it), which a follower's
        `delta_sink` takes without testing it: the engine's text deltas, one per token."""
        stream = self._streams[stream_id]
        chunks = stream.chunks
        chunks.append(chunk)
        if not delta:
            stream.plain_from = len(chunks)
        if not len(chunks) % _KEEP_RECENT:
            stream.compact()
        sink = stream.delta_sink if delta else stream.sink
        if sink is not None and not sink(chunk):  # declined: its follower takes it from here
            stream.detach(len(chunks) - 1)
        # Wake every waiting follower; each arms a fresh future the next time it waits.
        if stream.waiters:
            stream.wake()

    async def close(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed:
            return
        stream.closed_at = time.monotonic()
        self._closed.append((stream.closed_at, stream_id, stream))
        stream.end()
        self._evict()

    async def exists(self, stream_id: str) -> bool:
        self._evict()
        return stream_id in self._streams

    def count(self, stream_id: str) -> int:
        """How many chunks were published so far (0 for an unknown stream)."""
        stream = self._streams.get(stream_id)
        return len(stream.chunks) if stream is not None else 0

    def chunks(self, stream_id: str, start: int = 0) -> list[dict[str, Any]]:
        """The chunks published so far from index `start`, as published (empty for an unknown
        stream)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return []
        return [stream.chunk(index) for index in range(max(start, 0), len(stream.chunks))]

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
            stream.end()

    async def follow(self, stream_id: str, start: int = 0) -> AsyncIterator[dict[str, Any]]:
        async for batch, _closed in self.follow_batches(stream_id, start):
            for chunk in batch:
                yield chunk

    async def follow_batches(
        self,
        stream_id: str,
        start: int = 0,
        sink: Callable[[dict[str, Any]], bool] | None = None,
        delta_sink: Callable[[dict[str, Any]], bool] | None = None,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], bool]]:
        """`follow` from index `start`, a batch at a time: every chunk published since the last
        batch, as soon as there is one (nothing waits for more), with whether the stream had
        closed by then (then it is the last batch, possibly empty). A reply's response writes each
        batch in one send: chunks published together (a step's boundaries, a text part's start
        and first delta) go out in one write rather than one each.

        With `sink`, each time this follower has caught up with the open stream (and no other
        follower's sink is set), the publisher hands every chunk it publishes to `sink(chunk)` at
        once, in its own task, instead of waking this follower; this follower's batches skip what
        the sink took. A chunk it declines (`False`) ends that: the follower wakes and goes on from
        that chunk. The sink must not raise: it runs in the generation's task. `delta_sink` (by
        default `sink`) takes instead the plain deltas published with `publish_nowait(..., delta=True)`,
        under the same rules."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        index = max(start, 0)
        chunks = stream.chunks  # only ever appended to (a compacted slot is replaced in place)
        loop = asyncio.get_running_loop()
        while True:
            end = len(chunks)
            closed = stream.closed  # read with `end`: nothing is published after the close
            if end > index or closed:
                batch = chunks[index:end]
                for n, chunk in enumerate(batch):
                    if type(chunk) is tuple:
                        batch[n] = stream.chunk(index + n)
                index = end
                yield batch, closed
                if closed:
                    return
                continue
            if sink is not None and stream.sink is None:
                stream.sink = sink
                stream.delta_sink = delta_sink or sink
                taken = stream.sink_end = loop.create_future()
                try:
                    index = await taken
                finally:
                    if stream.sink_end is taken:  # still set: this follower was cancelled (its client left)
                        stream.detach(index)
                continue
            waiter = loop.create_future()
            stream.waiters.append(waiter)
            await waiter

    async def aclose(self) -> None:
        for stream in self._streams.values():
            stream.end()
