"""Opaque page cursors: a (timestamp, id) position, base64url JSON. Lists order by that pair, so
a cursor names exactly where the next page starts, however many rows share a timestamp."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from genvault.errors import InvalidRequest

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(at: datetime, row_id: str) -> str:
    raw = json.dumps([at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"invalid cursor {cursor!r}: pass back a next_cursor from a previous page") from exc
