"""Server-sent-events framing of the UI message stream (spec §2.1).

Invariant: `encode_sse` produces the exact bytes the AI SDK's `JsonToSseTransformStream` writes
(`data: ` + compact JSON without ASCII escaping + a blank line), so byte offsets into a stored
stream match a Node server's, and `parse_sse` reads them back the way the v5 client's
eventsource-parser does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any, Final

__all__ = [
    "SSE_DONE",
    "UI_MESSAGE_STREAM_HEADERS",
    "delta_event",
    "delta_prefix",
    "encode_boundary_sse",
    "encode_delta_sse",
    "encode_sse",
    "parse_sse",
]

SSE_DONE: Final = b"data: [DONE]\n\n"

# The defaults of createUIMessageStreamResponse. The v5 client reads none of them, but proxies do
# (`x-accel-buffering: no` stops nginx from buffering the stream) and the protocol doc asks for
# the version header.
UI_MESSAGE_STREAM_HEADERS: Final[Mapping[str, str]] = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}


def encode_sse(chunk_json: Mapping[str, Any]) -> bytes:
    """One SSE event for one chunk JSON object."""
    body = json.dumps(chunk_json, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return b"data: " + body.encode("utf-8") + b"\n\n"


_DELTA_PREFIX: Final = {kind: f'data: {{"type":"{kind}","id":' for kind in ("text-delta", "reasoning-delta")}


def encode_delta_sse(kind: str, stream_id: str, delta: str) -> bytes:
    """`encode_sse({"type": kind, "id": stream_id, "delta": delta})`, the same bytes, built from
    a fixed prefix and two string encodings (one event per token: this is the hot path)."""
    # `encode_basestring` is what `json.dumps(str, ensure_ascii=False)` runs for a string.
    body = f'{_DELTA_PREFIX[kind]}{encode_basestring(stream_id)},"delta":{encode_basestring(delta)}}}\n\n'
    return body.encode("utf-8")


def delta_prefix(kind: str, stream_id: str) -> str:
    """What `encode_delta_sse(kind, stream_id, delta)` decodes to before the delta's JSON string,
    the same for every delta of a part: a writer that keeps it per part encodes only each delta
    (`server.streaming.DirectSend.write_delta`)."""
    return f'{_DELTA_PREFIX[kind]}{encode_basestring(stream_id)},"delta":'


def delta_event(chunk: Any) -> bytes | None:
    """`encode_delta_sse(*plain_delta(chunk))`, or None when `chunks.plain_delta(chunk)` is None
    (anything but exactly a text or reasoning delta's three keys with string values): the test
    and the encoding in one call, for the hub sink that writes each token's event
    (`server.streaming.DirectSend.write`)."""
    if type(chunk) is not dict or len(chunk) != 3:
        return None
    kind = chunk.get("type")
    if kind != "text-delta" and kind != "reasoning-delta":
        return None
    stream_id = chunk.get("id")
    delta = chunk.get("delta")
    if type(stream_id) is not str or type(delta) is not str:
        return None
    body = f'{_DELTA_PREFIX[kind]}{encode_basestring(stream_id)},"delta":{encode_basestring(delta)}}}\n\n'
    return body.encode("utf-8")


def encode_boundary_sse(wire: Mapping[str, Any]) -> bytes:
    """`encode_sse(wire)`, the same bytes, for a boundary's wire JSON (`chunks.boundary_wire`:
    `{"type": kind}` or `{"type": kind, key: <str>}`, kind and key from fixed sets that JSON
    writes as they are): five events a turn."""
    items = iter(wire.items())
    kind = next(items)[1]
    extra = next(items, None)
    if extra is None:
        return f'data: {{"type":"{kind}"}}\n\n'.encode()
    return f'data: {{"type":"{kind}","{extra[0]}":{encode_basestring(extra[1])}}}\n\n'.encode()


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_sse(data: bytes | str) -> list[dict[str, Any] | str]:
    """Decode an SSE body into chunk objects, with `"[DONE]"` kept as the string `"[DONE]"`.

    Follows eventsource-parser v3: lines end with CR, LF or CRLF; `data:` may be followed by one
    optional space; several `data:` lines of one event are joined with `\\n`; comment lines
    (`:`) and other fields are ignored; an event is dispatched at a blank line only if it had
    data. A trailing event without its blank line is discarded, as the SSE standard says.
    Raises `ValueError` for event data that is not a JSON object (the client would fail too).
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    events: list[dict[str, Any] | str] = []
    lines: list[str] = []
    has_data = False
    # The last element after splitting is an unterminated line (or ""), which never dispatches.
    for line in _LINE_BREAK.split(text)[:-1]:
        if not line:
            if has_data:
                events.append(_decode_event("\n".join(lines)))
            lines, has_data = [], False
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if field != "data":
            continue
        if colon and value.startswith(" "):
            value = value[1:]
        lines.append(value)
        has_data = True
    return events


def _decode_event(payload: str) -> dict[str, Any] | str:
    if payload == "[DONE]":
        return payload
    try:
        value = json.loads(payload, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"SSE event is not JSON: {payload[:200]!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"SSE event is not a JSON object: {payload[:200]!r}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
