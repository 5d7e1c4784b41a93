"""Opaque page cursors: a (timestamp, id) position, base64url JSON. Lists order by that pair, so
a cursor names exactly where the next page starts, however many rows share a timestamp."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from genvault.errors import InvalidRequest
from genvault.validation import is_id

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(at: datetime, row_id: str) -> str:
    raw = json.dumps([at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = datetime.fromisoformat(at)
        # Only what encode_cursor makes: an aware time and an id (a forged NUL would reach the query).
        if position.tzinfo is None or not is_id(row_id):
            raise ValueError("not a cursor of ours")
        return position, row_id
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"invalid cursor {cursor[:80]!r}: pass back a next_cursor from a previous page") from exc
