"""Erasing a user: every trace of them, in the order `ERASURE_STEPS` lists, with a receipt.

Invariants:
- After `erase_user`, no table holds a row with the user's id (every table with a `user_id`
  column is emptied of them, generically, so a table added later is covered), no row of a table
  that only points at their records (through a foreign key) is left, their live stream buffers
  are gone, and every blob object no other row references is deleted from the blob store.
- One `audit_events` row records who asked, when, and the counts; never any content, and not
  the user's id either: it names them by pseudonym (`store.audit.user_hash`), as the actor too
  when they erased themself, and earlier events they acted in get the pseudonym in place of
  their id. So after erasure no column of any table holds the id (`genvault audit --user ID`
  still finds the events by hashing the id it is given).
- Running it again is safe: it finds nothing and writes a receipt of zeros.

Backends that hold user data outside SQL (the dedup cache, the stream hub, the blob store) each
have a step in `ERASURE_STEPS`: read the list to see everything that runs, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.ids import new_id
from genvault.store import files as file_store
from genvault.store import generations as gen_store
from genvault.store.audit import pseudonymise_actor, user_hash
from genvault.store.schema import audit_events, blobs, generations, metadata, owned_by, users

if TYPE_CHECKING:
    from genvault.vault import Vault

__all__ = ["ERASURE_STEPS", "Erasure", "ErasureReceipt", "erase_user", "user_tables"]

log = logging.getLogger(__name__)


class ErasureReceipt(BaseModel):
    """What an erasure removed. `counts` has one entry per table (rows deleted) and per store
    outside SQL (`stream_buffers`, `blob_objects`, …); `audit_id` names the audit event."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    audit_id: str
    erased_at: datetime
    counts: dict[str, int]


@dataclass
class Erasure:
    """The state one erasure carries from step to step."""

    vault: Vault
    user_id: str
    actor_user_id: str | None
    audit_id: str = field(default_factory=lambda: new_id("aud"))
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    generation_ids: list[str] = field(default_factory=list)
    blob_hashes: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)


Step = Callable[[Erasure], Awaitable[None]]


def user_tables() -> list[Table]:
    """Tables whose rows carry a `user_id`, children before parents."""
    return [t for t in reversed(metadata.sorted_tables) if "user_id" in t.columns]


def _dependent_tables() -> list[tuple[Table, Any, Table, Any]]:
    """(table, column, parent, parent column) for tables without `user_id` whose rows only point
    at a user's rows through a foreign key (a cache entry of a generation, say)."""
    found = []
    for table in reversed(metadata.sorted_tables):
        if "user_id" in table.columns or table is users:
            continue
        for fk in table.foreign_keys:
            parent = fk.column.table
            if parent is not table and "user_id" in parent.columns:
                found.append((table, fk.parent, parent, fk.column))
    return found


# -- the steps -------------------------------------------------------------------------------------


async def stop_running_generations(job: Erasure) -> None:
    """Cancel the user's running generations first, so none writes after its rows are gone."""
    async with job.vault.store.read() as conn:
        active = (
            (
                await conn.execute(
                    select(generations.c.id).where(
                        generations.c.user_id == job.user_id, generations.c.status.in_(gen_store.ACTIVE)
                    )
                )
            )
            .scalars()
            .all()
        )
    for generation_id in active:
        record = await job.vault.get_generation(generation_id, user_id=None)
        if not record.is_final:
            await job.vault.engine.cancel(record)


async def collect_references(conn: AsyncConnection, job: Erasure) -> None:
    """What lives outside SQL and is found through the rows about to go: stream ids, blob hashes.
    Read in the deleting transaction, so a generation started meanwhile is not missed."""
    job.generation_ids = list(
        (await conn.execute(select(generations.c.id).where(generations.c.user_id == job.user_id))).scalars().all()
    )
    hashes = await conn.execute(select(blobs.c.sha256).where(blobs.c.user_id == job.user_id).distinct())
    job.blob_hashes = set(hashes.scalars().all())


async def delete_rows(conn: AsyncConnection, user_id: str) -> dict[str, int]:
    """Delete every row of the user, in the caller's transaction; returns rows per table."""
    counts: dict[str, int] = {}
    theirs = select(generations.c.id).where(generations.c.user_id == user_id)
    # Another user's cache hit may point at this user's generation: keep the hit, drop the link
    # (what ON DELETE SET NULL does, done explicitly so it holds whatever the FK settings are).
    await conn.execute(
        update(generations)
        .where(generations.c.user_id != user_id, generations.c.cached_from.in_(theirs))
        .values(cached_from=None)
    )
    for table, column, parent, parent_column in _dependent_tables():
        result = await conn.execute(
            delete(table).where(column.in_(select(parent_column).where(parent.c.user_id == user_id)))
        )
        counts[table.name] = counts.get(table.name, 0) + max(result.rowcount, 0)
    for table in user_tables():
        result = await conn.execute(delete(table).where(owned_by(table, user_id)))
        counts[table.name] = max(result.rowcount, 0)
    result = await conn.execute(delete(users).where(users.c.id == user_id))
    counts["users"] = max(result.rowcount, 0)
    return counts


async def delete_rows_and_audit(job: Erasure) -> None:
    """All SQL rows in one transaction, with the audit event: either both happen or neither."""
    subject = user_hash(job.user_id)
    by_self = job.actor_user_id == job.user_id
    async with job.vault.store.write() as conn:
        await collect_references(conn, job)
        job.counts.update(await delete_rows(conn, job.user_id))
        # Not counted in the receipt: audit rows are not the user's data, and the counts of a
        # repeated erasure stay all zeros.
        await pseudonymise_actor(conn, job.user_id)
        await conn.execute(
            audit_events.insert().values(
                id=job.audit_id,
                at=job.at,
                actor_user_id=None if by_self else job.actor_user_id,
                actor_user_hash=subject if by_self else None,
                action="erase_user",
                subject_user_hash=subject,
                counts=job.counts,
            )
        )
        if job.counts["users"]:  # a repeated erasure found nobody: no event
            await job.vault.webhooks.user_erased(conn, job.user_id, job.audit_id, job.at)


async def discard_stream_buffers(job: Erasure) -> None:
    """Replay buffers of the user's generations (a finished stream is kept a while for replay)."""
    discarded = 0
    for generation_id in job.generation_ids:
        if await job.vault.hub.exists(generation_id):
            await job.vault.hub.discard(generation_id)
            discarded += 1
    job.counts["stream_buffers"] = discarded


async def forget_cache_entries(job: Erasure) -> None:
    """The dedup cache's entries of the user. The SQL cache's rows already went with the user's
    rows (`cache_entries`); a Redis cache keeps its own keys, counted here."""
    job.counts["cache_keys"] = await job.vault.dedup.forget_user(job.user_id)


async def delete_unreferenced_objects(vault: Vault, hashes: set[str]) -> int:
    """Delete the blob objects among `hashes` that no row references any more; returns how many.

    Runs after the rows' deletion committed. A concurrent `store_file` of the same bytes re-puts
    its object after its row commits, so deleting here never loses someone else's file."""
    deleted = 0
    for sha256 in sorted(hashes):
        async with vault.store.read() as conn:
            if await file_store.references(conn, sha256):
                continue
        if await vault.blobs.exists(sha256):
            await vault.blobs.delete(sha256)
            deleted += 1
    return deleted


async def delete_blob_objects(job: Erasure) -> None:
    """The user's files' bytes, unless another user's row still names the same content."""
    job.counts["blob_objects"] = await delete_unreferenced_objects(job.vault, job.blob_hashes)


async def finish_audit(job: Erasure) -> None:
    """The counts of the steps after the SQL transaction, added to the audit event."""
    async with job.vault.store.write() as conn:
        await conn.execute(update(audit_events).where(audit_events.c.id == job.audit_id).values(counts=job.counts))


# The whole erasure, in order. A backend holding user data outside SQL adds its step before
# `finish_audit`.
ERASURE_STEPS: list[Step] = [
    stop_running_generations,
    delete_rows_and_audit,
    discard_stream_buffers,
    forget_cache_entries,
    delete_blob_objects,
    finish_audit,
]


async def erase_user(vault: Vault, user_id: str, *, actor_user_id: str | None = None) -> ErasureReceipt:
    job = Erasure(vault=vault, user_id=user_id, actor_user_id=actor_user_id)
    for step in ERASURE_STEPS:
        await step(job)
    # The log names the audit event, not the user: logs outlive the erasure.
    log.info("erased a user (audit %s): %s", job.audit_id, job.counts)
    return ErasureReceipt(user_id=user_id, audit_id=job.audit_id, erased_at=job.at, counts=job.counts)
