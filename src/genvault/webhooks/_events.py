"""Webhook events: their names, and the outbox rows written in the event's own transaction.

`enqueue` is one `INSERT … SELECT` over the subscribed webhooks: no subscriber, no row, and no
second round trip to find them. It runs inside the caller's transaction (a finalize, a sweep, a
chat deletion, an erasure), so the event and its deliveries commit together or not at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, Text, cast, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.ids import new_id
from genvault.money import nano_usd_text
from genvault.records import Generation
from genvault.store.audit import user_hash
from genvault.store.schema import UTCDateTime, webhook_deliveries, webhooks

__all__ = [
    "EVENTS",
    "STATUS_EVENTS",
    "enqueue",
    "enqueue_chat_deleted",
    "enqueue_generation",
    "enqueue_user_erased",
    "generation_data",
]

EVENTS = (
    "generation.completed",
    "generation.failed",
    "generation.cancelled",
    "generation.interrupted",
    "chat.deleted",
    "user.erased",
)
# A record's final status → its event.
STATUS_EVENTS = {
    "complete": "generation.completed",
    "error": "generation.failed",
    "cancelled": "generation.cancelled",
    "interrupted": "generation.interrupted",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


async def enqueue(
    conn: AsyncConnection,
    event: str,
    data: dict[str, Any],
    *,
    ordering_key: str,
    user_id: str | None,
    at: datetime | None = None,
) -> str:
    """Write one delivery per active webhook subscribed to `event`, in the caller's transaction.
    Returns the event id (the same for every webhook: receivers deduplicate by it)."""
    assert event in EVENTS, event
    at = at or datetime.now(UTC)
    event_id = new_id("evt")
    body = _dumps({"id": event_id, "type": event, "created_at": at.isoformat(), "data": data})
    subscribers = select(
        webhooks.c.id,
        literal(event_id, String),
        literal(event, String),
        literal(ordering_key, String),
        literal(user_id, String),
        literal(body, Text),
        literal("pending", String),
        cast(literal(0), Integer),
        literal(at, UTCDateTime),
        literal(at, UTCDateTime),
    ).where(webhooks.c.active.is_(True), webhooks.c.events.like(f"%,{event},%"))
    columns = [
        "webhook_id",
        "event_id",
        "event",
        "ordering_key",
        "user_id",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    await conn.execute(insert(webhook_deliveries).from_select(columns, subscribers))
    return event_id


def generation_data(record: Generation) -> dict[str, Any]:
    """What a generation event tells: ids, status, model, usage, cost, timings. Never the prompt or
    the output (personal data): a receiver reads the record by its id if it needs them."""
    return {
        "generation_id": record.id,
        "kind": record.kind,
        "status": record.status,
        "user_id": record.user_id,
        "chat_id": record.chat_id,
        "message_id": record.message_id,
        "model": record.model,
        "provider": record.provider,
        "finish_reason": record.finish_reason,
        "error": record.error,
        "usage": record.usage.model_dump(mode="json"),
        "cost_usd": nano_usd_text(record.cost_nano_usd),
        "tags": record.tags,
        "created_at": record.created_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }


async def enqueue_generation(conn: AsyncConnection, record: Generation) -> None:
    """The event of a record that just became final, in the transaction that made it so. Events of
    one chat's generations keep their order (the ordering key is the chat; else the generation)."""
    event = STATUS_EVENTS.get(record.status)
    if event is None:
        return
    key = f"chat:{record.chat_id}" if record.chat_id else f"generation:{record.id}"
    await enqueue(conn, event, generation_data(record), ordering_key=key, user_id=record.user_id, at=record.finished_at)


async def enqueue_chat_deleted(conn: AsyncConnection, chat_id: str, user_id: str) -> None:
    """In the deleting transaction; ordered after the chat's generation events."""
    at = datetime.now(UTC)
    data = {"chat_id": chat_id, "user_id": user_id, "deleted_at": at.isoformat()}
    await enqueue(conn, "chat.deleted", data, ordering_key=f"chat:{chat_id}", user_id=user_id, at=at)


async def enqueue_user_erased(conn: AsyncConnection, user_id: str, audit_id: str, at: datetime) -> None:
    """In the erasure's transaction. The row carries no `user_id` (erasure just removed every row
    that did) and its ordering key is the pseudonym; the body names the user until it is delivered
    (receivers must learn whom to forget), then holds the pseudonym instead."""
    data = {"user_id": user_id, "audit_id": audit_id, "erased_at": at.isoformat()}
    await enqueue(conn, "user.erased", data, ordering_key=f"user:{user_hash(user_id)}", user_id=None, at=at)
