"""The SQL cache (the embedded default): the `cache_entries` table with an expiry per row.

Rows point at generations with ON DELETE CASCADE, so erasing a generation erases its entries.
Without Redis, single-flight is per process (`claim` always lets the caller lead): a database
has no cheap atomic "set if absent with expiry", and ordering by row age across processes can
make two waiting requests follow each other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.store import Store
from genvault.store.db import dialect_insert
from genvault.store.schema import cache_entries

__all__ = ["SqlCache"]


def _now() -> datetime:
    return datetime.now(UTC)


class SqlCache:
    # A database has no cheap "set if absent with expiry": `claim` lets every caller lead, and
    # single-flight is per process (see `Dedup.decide`).
    claims_across_processes = False

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, key: str) -> str | None:
        async with self.store.read() as conn:
            found = (
                await conn.execute(
                    select(cache_entries.c.generation_id).where(
                        cache_entries.c.key == key, cache_entries.c.expires_at > _now()
                    )
                )
            ).scalar()
        return str(found) if found is not None else None

    async def put(self, key: str, generation_id: str, user_id: str, ttl_seconds: float) -> None:
        async with self.store.write() as conn:
            await self.put_in(conn, key, generation_id, user_id, ttl_seconds)

    async def put_in(
        self, conn: AsyncConnection, key: str, generation_id: str, user_id: str, ttl_seconds: float
    ) -> None:
        """`put` inside the caller's transaction (a generation's finalize: see `Dedup.remember_in`)."""
        now = _now()
        values = {
            "generation_id": generation_id,
            "user_id": user_id,
            "expires_at": now + timedelta(seconds=ttl_seconds),
        }
        # Expired rows go on the way (the index on expires_at keeps this cheap).
        await conn.execute(delete(cache_entries).where(cache_entries.c.expires_at <= now))
        # One upsert, not UPDATE-then-INSERT: two processes (no cross-process claims here) may
        # finish the same key at once, and inside a generation's finalize transaction a lost
        # race must not fail the finalize.
        upsert = dialect_insert(conn, cache_entries)
        await conn.execute(
            upsert.values(key=key, **values).on_conflict_do_update(index_elements=[cache_entries.c.key], set_=values)
        )

    async def delete(self, key: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(delete(cache_entries).where(cache_entries.c.key == key))

    async def forget_user(self, user_id: str) -> int:
        async with self.store.write() as conn:
            result = await conn.execute(delete(cache_entries).where(cache_entries.c.user_id == user_id))
        return int(result.rowcount)

    async def claim(self, key: str, generation_id: str, lease_seconds: float) -> str | None:
        return None

    async def renew(self, key: str, generation_id: str, lease_seconds: float) -> None:
        return None  # the generation's own lease is the claim

    async def release(self, key: str, generation_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
