"""A finished generation's UI message stream, rebuilt from its record: what a stream URL serves
once the live stream is gone, and what a cache hit replays."""

from __future__ import annotations

from typing import Any

from genvault.messages.assembler import encode_message
from genvault.messages.ui import parse_ui_message
from genvault.records import Generation

__all__ = ["chunks_from_record"]


def chunks_from_record(record: Generation) -> list[dict[str, Any]]:
    """The UI message stream of a finished generation, rebuilt from what the record stored."""
    chunks: list[dict[str, Any]] = [{"type": "start", "messageId": record.message_id or record.id}]
    if record.result_message is not None:
        encoded = encode_message(parse_ui_message(record.result_message))
        chunks += [c for c in encoded if c["type"] not in ("start", "finish")]
    else:
        chunks.append({"type": "start-step"})
        if record.result_text:
            chunks += [
                {"type": "text-start", "id": "t1"},
                {"type": "text-delta", "id": "t1", "delta": record.result_text},
                {"type": "text-end", "id": "t1"},
            ]
        chunks.append({"type": "finish-step"})
    metadata = (record.result_message or {}).get("metadata")
    if record.status != "complete" and metadata is not None:
        # How it ended, as the live stream sent it before its `error` or `abort` (the client
        # stops reading at an `error`): a replayed message carries the stored metadata.
        chunks.append({"type": "message-metadata", "messageMetadata": metadata})
    if record.status == "error":
        chunks.append({"type": "error", "errorText": record.error or "the generation failed"})
    elif record.status in ("cancelled", "interrupted"):
        chunks.append({"type": "abort"})
        return chunks
    chunks.append({"type": "finish"})
    return chunks
