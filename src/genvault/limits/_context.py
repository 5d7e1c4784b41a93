"""Which API key the current request came with.

The server's auth dependency sets it; admission reads it wherever a generation starts (chat
turns, `/api/generate`, images, the `/v1` gateway), so no route has to pass the key along.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

__all__ = ["KeyGrant", "acting_key"]


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """An authenticated API key: whose it is, until when, and which models it may call."""

    id: str
    user_id: str
    expires_at: datetime | None = None
    models: tuple[str, ...] | None = None  # None: every model


acting_key: ContextVar[KeyGrant | None] = ContextVar("genvault_acting_key", default=None)
