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


async def _sse(chunks: AsyncIterator[dict[str, Any]], compat: str) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        delta = plain_delta(chunk)
        if delta is not None:  # one per token; every client level takes it as it is
            yield encode_delta_sse(*delta)
            continue
        for wire in downgrade_for_client(chunk, compat):
            yield encode_sse(wire)
    yield SSE_DONE


def ui_message_stream_response(
    chunks: AsyncIterator[dict[str, Any]], *, compat: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        _sse(chunks, compat),
        headers={**UI_MESSAGE_STREAM_HEADERS, **(headers or {})},
        media_type="text/event-stream",
    )
