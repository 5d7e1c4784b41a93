"""Retention: delete generations and chats older than the configured number of days, per kind.

Invariants:
- Only finished records go: a chat whose reply is still running, or a generation that is still
  `pending`/`streaming`, waits for the next run.
- A chat goes whole, with its messages, parts, generations and files; a text or image generation
  goes with whatever points at it (its images, its cache entries). Blob objects no row
  references any more are deleted from the blob store, and stream buffers are discarded. This is
  the same cascade as erasure (`genvault.ops.erasure`), chosen by age instead of by owner.
- Each run that deletes something writes one `audit_events` row (action `retention`) with counts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Table, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.ids import new_id
from genvault.ops.erasure import delete_unreferenced_objects
from genvault.store import generations as gen_store
from genvault.store.schema import audit_events, blobs, chats, generations, messages, metadata, parts

if TYPE_CHECKING:
    from genvault.vault import Vault

__all__ = ["RetentionReport", "apply_retention", "delete_chats", "delete_generations"]

log = logging.getLogger(__name__)
BATCH = 500


class RetentionReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Per kind (`chat`, `text`, `image`): records older than this were deleted. Kinds kept forever
    # are absent.
    cutoffs: dict[str, datetime]
    counts: dict[str, int]
    audit_id: str | None


def _referencing(parent: Table) -> list[tuple[Table, Any]]:
    """Tables other than the chat tables that point at `parent` (a cache entry, a blob row)."""
    core = {"chats", "messages", "parts", "generations", "blobs"}
    return [
        (table, fk.parent)
        for table in reversed(metadata.sorted_tables)
        if table.name not in core
        for fk in table.foreign_keys
        if fk.column.table is parent
    ]


def _add(counts: dict[str, int], name: str, n: int) -> None:
    if n > 0:
        counts[name] = counts.get(name, 0) + n


async def _delete_blob_rows(conn: AsyncConnection, where: Any, counts: dict[str, int], hashes: set[str]) -> None:
    """File rows linked by id (no foreign key), remembering their objects for the cleanup."""
    hashes.update((await conn.execute(select(blobs.c.sha256).where(where).distinct())).scalars().all())
    _add(counts, "blobs", (await conn.execute(delete(blobs).where(where))).rowcount)


async def delete_generations(conn: AsyncConnection, ids: list[str], counts: dict[str, int], hashes: set[str]) -> None:
    """Delete these generations and the rows that point at them (their files' sha256 go to `hashes`)."""
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        await _delete_blob_rows(conn, blobs.c.generation_id.in_(chunk), counts, hashes)
        await conn.execute(update(generations).where(generations.c.cached_from.in_(chunk)).values(cached_from=None))
        for table, column in _referencing(generations):
            _add(counts, table.name, (await conn.execute(delete(table).where(column.in_(chunk)))).rowcount)
        _add(
            counts, "generations", (await conn.execute(delete(generations).where(generations.c.id.in_(chunk)))).rowcount
        )


async def delete_chats(conn: AsyncConnection, ids: list[str], counts: dict[str, int], hashes: set[str]) -> list[str]:
    """Delete these chats whole, files included; returns the ids of their generations."""
    gone: list[str] = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        gen_ids = list(
            (await conn.execute(select(generations.c.id).where(generations.c.chat_id.in_(chunk)))).scalars().all()
        )
        await delete_generations(conn, gen_ids, counts, hashes)
        gone += gen_ids
        await _delete_blob_rows(conn, blobs.c.chat_id.in_(chunk), counts, hashes)
        for table, column in _referencing(chats):
            _add(counts, table.name, (await conn.execute(delete(table).where(column.in_(chunk)))).rowcount)
        _add(counts, "parts", (await conn.execute(delete(parts).where(parts.c.chat_id.in_(chunk)))).rowcount)
        _add(counts, "messages", (await conn.execute(delete(messages).where(messages.c.chat_id.in_(chunk)))).rowcount)
        _add(counts, "chats", (await conn.execute(delete(chats).where(chats.c.id.in_(chunk)))).rowcount)
    return gone


def cutoffs(vault: Vault, now: datetime) -> dict[str, datetime]:
    days = {
        "chat": vault.settings.retention_days_chat,
        "text": vault.settings.retention_days_text,
        # Embedding calls are text in, numbers out: they keep as long as text generations.
        "embedding": vault.settings.retention_days_text,
        "image": vault.settings.retention_days_image,
    }
    return {kind: now - timedelta(days=n) for kind, n in days.items() if n is not None}


async def apply_retention(vault: Vault, *, now: datetime | None = None) -> RetentionReport:
    """Delete what the retention settings say is too old; returns what went."""
    now = now or datetime.now(UTC)
    limits = cutoffs(vault, now)
    counts: dict[str, int] = {}
    gone: list[str] = []
    hashes: set[str] = set()
    audit_id: str | None = None
    async with vault.store.write() as conn:
        if "chat" in limits:
            running = exists().where(
                generations.c.id == chats.c.active_generation_id, generations.c.status.in_(gen_store.ACTIVE)
            )
            old = select(chats.c.id).where(chats.c.updated_at < limits["chat"], ~running)
            gone += await delete_chats(conn, list((await conn.execute(old)).scalars().all()), counts, hashes)
        for kind in ("text", "image", "embedding"):
            if kind not in limits:
                continue
            old = select(generations.c.id).where(
                generations.c.kind == kind,
                generations.c.created_at < limits[kind],
                generations.c.status.not_in(gen_store.ACTIVE),
                # An image made inside a chat goes with its chat (the chat's retention decides).
                generations.c.chat_id.is_(None),
            )
            ids = list((await conn.execute(old)).scalars().all())
            await delete_generations(conn, ids, counts, hashes)
            gone += ids
        if counts:
            audit_id = new_id("aud")
            await conn.execute(
                audit_events.insert().values(
                    id=audit_id, at=now, actor_user_id=None, action="retention", subject_user_hash=None, counts=counts
                )
            )
    for generation_id in gone:
        await vault.hub.discard(generation_id)
    objects = await delete_unreferenced_objects(vault, hashes)
    if objects:
        counts["blob_objects"] = objects
        async with vault.store.write() as conn:
            await conn.execute(update(audit_events).where(audit_events.c.id == audit_id).values(counts=counts))
    if counts:
        log.info("retention deleted %s", counts)
    return RetentionReport(cutoffs=limits, counts=counts, audit_id=audit_id)
