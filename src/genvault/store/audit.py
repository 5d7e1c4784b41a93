"""Audit events: the record that an erasure or a retention run happened, with counts only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest
from genvault.store.schema import audit_events

__all__ = ["list_events"]


async def list_events(
    conn: AsyncConnection, *, subject_user_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest first; only those about `subject_user_id` when given."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit must be between 1 and 1000, got {limit}")
    query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(limit)
    if subject_user_id is not None:
        query = query.where(audit_events.c.subject_user_id == subject_user_id)
    return [dict(row) for row in (await conn.execute(query)).mappings().all()]
