"""UI message streams as HTTP responses: SSE framing, the five headers, client compatibility.

A response only *follows* a generation through the hub. When the client goes away Starlette
cancels this iterator, and the generation, which belongs to the engine, carries on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from genvault.messages.chunks import boundary_wire, downgrade_for_client, plain_delta
from genvault.messages.sse import (
    SSE_DONE,
    UI_MESSAGE_STREAM_HEADERS,
    encode_boundary_sse,
    encode_delta_sse,
    encode_sse,
)

__all__ = ["LastFrame", "ui_message_stream_response"]


class LastFrame(bytes):
    """The stream's last bytes (`[DONE]`, with the last chunks when they came together): a
    response that knows it (`hot_route.send_following`) sends them with the end of the body, in
    one write; to any other, plain bytes."""


def _frames(chunk: dict[str, Any], compat: str) -> bytes:
    """One chunk's SSE event(s), as `_sse` writes them without `id:` lines."""
    delta = plain_delta(chunk)
    if delta is not None:
        return encode_delta_sse(*delta)
    wire = boundary_wire(chunk)
    if wire is not None:  # a step, text or start boundary: every client level takes it as it is
        return encode_boundary_sse(wire)
    return b"".join([encode_sse(wire) for wire in downgrade_for_client(chunk, compat)])


async def _sse(chunks: AsyncIterator[dict[str, Any]], compat: str, first_id: int | None) -> AsyncIterator[bytes]:
    # With `first_id`, the last event of chunk N carries `id: N`, so an `EventSource` that
    # reconnects sends `Last-Event-ID: N` and the route resumes at chunk N + 1.
    index = first_id
    async for chunk in chunks:
        delta = plain_delta(chunk)
        if delta is not None:  # one per token; every client level takes it as it is
            frame = encode_delta_sse(*delta)
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


def ui_message_stream_response(
    chunks: AsyncIterator[dict[str, Any]] | None,
    *,
    compat: str,
    headers: dict[str, str] | None = None,
    first_id: int | None = None,
    batches: AsyncIterator[tuple[list[dict[str, Any]], bool]] | None = None,
) -> StreamingResponse:
    """The SSE response; `first_id` (the index of the first chunk) adds `id:` lines. With
    `batches` (a follower's batches, `MemoryHub.follow_batches`) instead of `chunks`, one frame
    per batch (no `id:` lines)."""
    if batches is not None:
        body = _sse_batches(batches, compat)
    else:
        assert chunks is not None
        body = _sse(chunks, compat, first_id)
    return StreamingResponse(
        body,
        headers={**UI_MESSAGE_STREAM_HEADERS, **(headers or {})},
        media_type="text/event-stream",
    )
