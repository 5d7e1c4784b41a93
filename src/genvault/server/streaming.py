"""UI message streams as HTTP responses: SSE framing, the five headers, client compatibility.

A response only *follows* a generation through the hub. When the client goes away Starlette
cancels this iterator, and the generation, which belongs to the engine, carries on.

One exception to "only follows", for the busiest path: a chat turn's own response in this process
(`HubReply` under `hot_route.send_following`) lets the generation's task write each token's event
to that client at once (`DirectSend`), instead of waking the response's task for it: one loop
wake-up per token instead of two. The generation never waits for the client: a write that would
wait (the client reads slowly) finishes in a task of its own, and the response goes back to
following the hub from the next chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from json.encoder import encode_basestring
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Message, Send

from genvault._json import dump_compact_bytes
from genvault.messages.chunks import boundary_wire, downgrade_for_client, plain_delta
from genvault.messages.sse import (
    SSE_DONE,
    UI_MESSAGE_STREAM_HEADERS,
    delta_event,
    delta_prefix,
    encode_boundary_sse,
    encode_sse,
)
from genvault.streams.memory import MemoryHub

__all__ = ["DirectSend", "HubReply", "LastFrame", "hub_reply_response", "ui_message_stream_response"]

# What `next` gives back for an awaitable that finished without waiting.
_DONE = object()


class LastFrame(bytes):
    """The stream's last bytes (`[DONE]`, with the last chunks when they came together): a
    response that knows it (`hot_route.send_following`) sends them with the end of the body, in
    one write; to any other, plain bytes."""


def _encode_sse(wire: dict[str, Any]) -> bytes:
    """`sse.encode_sse(wire)`, the same bytes (or error), its JSON by `_json.dump_compact_bytes`:
    orjson's for plain values without a float (the engine's `finish` and metadata chunks; a
    turn's `finish` event 80 k → 52 k instructions, docs/benchmarks.md "finloop"). Here, not in
    `genvault.messages`, which imports nothing beyond the standard library and pydantic. Only
    the hub's batches (`_frames`: a turn's own response) take it; `_sse` (a stream followed from
    elsewhere, and the bench's bare relay, the issue's yardstick) keeps `encode_sse`."""
    return b"data: " + dump_compact_bytes(wire) + b"\n\n"


def _frames(chunk: dict[str, Any], compat: str) -> bytes:
    """One chunk's SSE event(s), as `_sse` writes them without `id:` lines."""
    event = delta_event(chunk)
    if event is not None:
        return event
    wire = boundary_wire(chunk)
    if wire is not None:  # a step, text or start boundary: every client level takes it as it is
        return encode_boundary_sse(wire)
    return b"".join([_encode_sse(wire) for wire in downgrade_for_client(chunk, compat)])


async def _sse(chunks: AsyncIterator[dict[str, Any]], compat: str, first_id: int | None) -> AsyncIterator[bytes]:
    # With `first_id`, the last event of chunk N carries `id: N`, so an `EventSource` that
    # reconnects sends `Last-Event-ID: N` and the route resumes at chunk N + 1.
    index = first_id
    async for chunk in chunks:
        frame = delta_event(chunk)
        if frame is not None:  # one per token; every client level takes it as it is
            yield frame if index is None else b"id: %d\n" % index + frame
        else:
            wires = downgrade_for_client(chunk, compat)
            for n, wire in enumerate(wires):
                frame = encode_sse(wire)
                yield frame if index is None or n < len(wires) - 1 else b"id: %d\n" % index + frame
        if index is not None:
            index += 1
    yield LastFrame(SSE_DONE)


async def _sse_batches(batches: AsyncIterator[tuple[list[dict[str, Any]], bool]], compat: str) -> AsyncIterator[bytes]:
    """`_sse` (no `id:` lines) over a follower's batches (`MemoryHub.follow_batches`): one
    bytes object per batch, the last one with `[DONE]` and as a `LastFrame`."""
    last = b""
    async for batch, closed in batches:
        frames = b"".join([_frames(chunk, compat) for chunk in batch])
        if closed:  # the follower ends at the next step, at once: left to end, not to the collector
            last = frames
        elif frames:
            yield frames
    yield LastFrame(last + SSE_DONE)


class HubReply:
    """The SSE body of a generation this process runs, followed in its in-process hub a batch at a
    time (`MemoryHub.follow_batches`, no `id:` lines). Iterated (Starlette's `StreamingResponse`),
    `_sse_batches`' bytes; `hot_route.send_following` takes `writing_to(send)` instead."""

    def __init__(self, hub: MemoryHub, stream_id: str, compat: str) -> None:
        self.hub = hub
        self.stream_id = stream_id
        self.compat = compat

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _sse_batches(self.hub.follow_batches(self.stream_id), self.compat)

    def writing_to(self, send: Send) -> tuple[AsyncIterator[bytes], DirectSend]:
        """The same bytes for the response to send with the returned `DirectSend.send`, except the
        token events its sink wrote from the generation's task (the same bytes, in their place)."""
        direct = DirectSend(send)
        batches = self.hub.follow_batches(self.stream_id, sink=direct.write, delta_sink=direct.write_delta)
        return _sse_batches(batches, self.compat), direct


class DirectSend:
    """The server's `send` as a response uses it (`send`), shared with the hub sink (`write`) that
    writes a token's event from the generation's task, so that every write to the client goes out
    once, in order.

    `write` runs only while the response waits for the hub with nothing of its own being sent
    (`MemoryHub.follow_batches`), and takes a chunk only when it can write it at once: a plain
    delta (a boundary or the end is declined, so it goes out with what was published along with
    it, in one write with `[DONE]` at the end, as before), the client still there, nothing of its
    own still waiting and no earlier failure. The server's `send` is driven by hand: uvicorn's
    returns without suspending unless the client's transport is paused (flow control); then the
    rest of that write goes on in a task of its own, `write` declines every later chunk, and the
    response's next `send` waits for it first. An error of the server's `send` is raised to the
    response by its next `send`, as if it had made that write itself; the generation goes on."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._waiting: asyncio.Future[None] | None = None  # the sink's write the client held up
        self._failed: Exception | None = None
        self._gone = False
        # The last delta's part (`(type, id)`) and its events' start (`sse.delta_prefix`).
        self._part: tuple[str, str] = ("", "")
        self._prefix = ""

    def write(self, chunk: dict[str, Any]) -> bool:
        """The hub's sink, in the generation's task: True when the chunk is taken."""
        if plain_delta(chunk) is None:  # a boundary or the end: declined
            return False
        return self.write_delta(chunk)

    def write_delta(self, chunk: dict[str, Any]) -> bool:
        """`write` of a plain delta (published with `MemoryHub.publish_nowait(..., delta=True)`: its
        keys and their types hold, so `delta_event`'s test is skipped), its event's start kept per
        part: one token's event costs one string encoding, its delta's. The same bytes as `write`."""
        if self._gone or self._waiting is not None or self._failed is not None:
            return False
        try:  # the encoding too: a lone surrogate in a delta fails it, and that is the response's error
            part = (chunk["type"], chunk["id"])
            if part != self._part:
                self._part, self._prefix = part, delta_prefix(*part)
            body = f"{self._prefix}{encode_basestring(chunk['delta'])}}}\n\n".encode()
            steps = self._send({"type": "http.response.body", "body": body, "more_body": True}).__await__()
            waits_on = next(steps, _DONE)
        except Exception as exc:
            self._failed = exc
            return True
        if waits_on is not _DONE:
            self._waiting = asyncio.ensure_future(_Rest(steps, waits_on))
        return True

    async def send(self, message: Message) -> None:
        """The response's own writes, each after the sink's write still going on, if any."""
        if self._waiting is not None:
            await self._waiting
            self._waiting = None
        if self._failed is not None:
            raise self._failed
        await self._send(message)

    def stop(self) -> None:
        """The client went away, or the response ended: the sink writes nothing more, and a write
        of its still waiting for the client is dropped."""
        self._gone = True
        waiting = self._waiting
        if waiting is not None:
            if waiting.done():
                if not waiting.cancelled():
                    waiting.exception()  # retrieved: the response that would have raised it is gone
            else:
                waiting.cancel()


class _Rest:
    """The rest of an awaitable that `DirectSend.write` drove by hand up to its first wait (on
    `waits_on`), to be awaited in a task: resumed, or thrown a cancellation into, as that task's
    own step would have."""

    def __init__(self, steps: Generator[Any, None, Any], waits_on: Any) -> None:
        self.steps = steps
        self.waits_on = waits_on

    def __await__(self) -> Generator[Any, None, None]:
        steps, waits_on = self.steps, self.waits_on
        while waits_on is not _DONE:
            try:
                yield waits_on
            except BaseException as exc:
                try:
                    waits_on = steps.throw(exc)
                except StopIteration:
                    return
            else:
                waits_on = next(steps, _DONE)


def ui_message_stream_response(
    chunks: AsyncIterator[dict[str, Any]] | HubReply,
    *,
    compat: str,
    headers: dict[str, str] | None = None,
    first_id: int | None = None,
) -> StreamingResponse:
    """The SSE response; `first_id` (the index of the first chunk) adds `id:` lines. A `HubReply`
    is the body as it is (one frame per batch, no `id:` lines)."""
    body = chunks if isinstance(chunks, HubReply) else _sse(chunks, compat, first_id)
    return StreamingResponse(
        body,
        headers={**UI_MESSAGE_STREAM_HEADERS, **(headers or {})},
        media_type="text/event-stream",
    )


# `UI_MESSAGE_STREAM_HEADERS` as Starlette's `init_headers` writes them (lower-cased names, latin-1
# bytes; its `content-type` there, so Starlette adds none), encoded once.
_SSE_RAW_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in UI_MESSAGE_STREAM_HEADERS.items()
)
_GENERATION_ID_HEADER = b"x-genvault-generation-id"


def hub_reply_response(reply: HubReply, generation_id: str) -> StreamingResponse:
    """`ui_message_stream_response(reply, headers={"X-Genvault-Generation-Id": generation_id})`,
    the same response object (attributes, raw headers in the same order), made without
    `StreamingResponse.__init__`: its ABC check of the body and `init_headers`' encoding of the
    six headers on every chat turn (tests/test_hot_route.py holds them equal)."""
    response: StreamingResponse = StreamingResponse.__new__(StreamingResponse)
    response.body_iterator = reply
    response.status_code = 200
    response.media_type = "text/event-stream"
    response.background = None
    response.raw_headers = [*_SSE_RAW_HEADERS, (_GENERATION_ID_HEADER, generation_id.encode("latin-1"))]
    return response
