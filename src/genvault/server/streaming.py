"""UI message streams as HTTP responses: SSE framing, the five headers, client compatibility.

A response only *follows* a generation through the hub. When the client goes away Starlette
cancels this iterator, and the generation, which belongs to the engine, carries on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from genvault.messages.chunks import downgrade_for_client, plain_delta
from genvault.messages.sse import SSE_DONE, UI_MESSAGE_STREAM_HEADERS, encode_delta_sse, encode_sse

__all__ = ["ui_message_stream_response"]


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
    yield SSE_DONE


def ui_message_stream_response(
    chunks: AsyncIterator[dict[str, Any]],
    *,
    compat: str,
    headers: dict[str, str] | None = None,
    first_id: int | None = None,
) -> StreamingResponse:
    """The SSE response; `first_id` (the index of the first chunk) adds `id:` lines."""
    return StreamingResponse(
        _sse(chunks, compat, first_id),
        headers={**UI_MESSAGE_STREAM_HEADERS, **(headers or {})},
        media_type="text/event-stream",
    )
