"""Audit events: the record that an erasure or a retention run happened, with counts only.

Invariant: no audit row holds the id of a user who was erased. An event names the user it is
about by `user_hash` (a pseudonym), never by id, and an actor's id is replaced by the same
pseudonym when that actor is erased (`pseudonymise_actor`). An operator who knows an id can
hash it and find its events (`list_events(subject_user_id=…)`), which is the point: it shows
that a known id was erased without the log keeping the id. It is a pseudonym, not anonymity:
anyone can guess a likely id and hash it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest
from genvault.store.schema import audit_events

__all__ = ["USER_HASH_DOMAIN", "list_events", "pseudonymise_actor", "user_hash"]

# Fixed for good: changing it would orphan every stored pseudonym. The prefix keeps these hashes
# apart from any other sha256 of the same id.
USER_HASH_DOMAIN = "genvault-audit-user:"


def user_hash(user_id: str) -> str:
    """The pseudonym audit events use for `user_id`: "sha256:" + hex sha256 of domain + id."""
    return "sha256:" + hashlib.sha256((USER_HASH_DOMAIN + user_id).encode()).hexdigest()


async def pseudonymise_actor(conn: AsyncConnection, user_id: str) -> int:
    """Replace `user_id` as the actor of earlier events by its pseudonym; returns how many."""
    result = await conn.execute(
        update(audit_events)
        .where(audit_events.c.actor_user_id == user_id)
        .values(actor_user_id=None, actor_user_hash=user_hash(user_id))
    )
    return max(result.rowcount, 0)


async def list_events(
    conn: AsyncConnection, *, subject_user_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest first; only those about `subject_user_id` (found by its hash) when given."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit must be between 1 and 1000, got {limit}")
    query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(limit)
    if subject_user_id is not None:
        query = query.where(audit_events.c.subject_user_hash == user_hash(subject_user_id))
    return [dict(row) for row in (await conn.execute(query)).mappings().all()]
