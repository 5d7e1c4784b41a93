"""The SQL cache (the embedded default): the `cache_entries` table with an expiry per row.

Rows point at generations with ON DELETE CASCADE, so erasing a generation erases its entries.
Without Redis, single-flight is per process (`claim` always lets the caller lead): a database
has no cheap atomic "set if absent with expiry", and ordering by row age across processes can
make two waiting requests follow each other.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.store import Store
from genvault.store.db import insert_for
from genvault.store.finishes import CacheEntry
from genvault.store.schema import cache_entries, owned_by

__all__ = ["SqlCache"]


def _now() -> datetime:
    return datetime.now(UTC)


# Every new generation looks its key up, every cached one is written: built once (values as
# execution parameters; see `store/generations.py`).
_LOOKUP = select(cache_entries.c.generation_id).where(
    cache_entries.c.key == bindparam("lookup_key"), cache_entries.c.expires_at > bindparam("now")
)
_PURGE_EVERY = timedelta(minutes=1)
_DROP_EXPIRED = delete(cache_entries).where(cache_entries.c.expires_at <= bindparam("now"))


@functools.cache
def _upsert(dialect: str) -> Any:
    """Insert the entry, or point the key's entry at the new values. One upsert, not
    UPDATE-then-INSERT: two processes (no cross-process claims here) may finish the same key at
    once, and inside a generation's finalize transaction a lost race must not fail the finalize."""
    insert_ = insert_for(dialect, cache_entries)
    new = insert_.excluded
    return insert_.on_conflict_do_update(
        index_elements=[cache_entries.c.key],
        set_={"generation_id": new.generation_id, "user_id": new.user_id, "expires_at": new.expires_at},
    )


class SqlCache:
    # A database has no cheap "set if absent with expiry": `claim` lets every caller lead, and
    # single-flight is per process (see `Dedup.decide`).
    claims_across_processes = False

    def __init__(self, store: Store) -> None:
        self.store = store
        self._next_purge: datetime | None = None

    async def get(self, key: str) -> str | None:
        async with self.store.read() as conn:
            found = (await conn.execute(_LOOKUP, {"lookup_key": key, "now": _now()})).scalar()
        return str(found) if found is not None else None

    async def put(self, key: str, generation_id: str, user_id: str, ttl_seconds: float) -> None:
        async with self.store.write() as conn:
            await self.put_in(conn, key, generation_id, user_id, ttl_seconds)

    def entry(self, key: str, generation_id: str, user_id: str, ttl_seconds: float) -> CacheEntry:
        """What `put_in` writes, as values for a statement that writes it along with a finalize
        (`store.finishes`), the purge of expired entries included when one is due."""
        now = _now()
        purge_at = None
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge, purge_at = now + _PURGE_EVERY, now
        return CacheEntry(key, generation_id, user_id, now + timedelta(seconds=ttl_seconds), purge_at)

    async def put_in(
        self, conn: AsyncConnection, key: str, generation_id: str, user_id: str, ttl_seconds: float
    ) -> None:
        """`put` inside the caller's transaction (a generation's finalize: see `Dedup.remember_in`)."""
        now = _now()
        # Expired rows go on the way, at most once a minute (the index on expires_at keeps it
        # cheap; a lookup never sees them anyway): not one more statement in every finalize.
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + _PURGE_EVERY
            await conn.execute(_DROP_EXPIRED, {"now": now})
        entry = {
            "key": key,
            "generation_id": generation_id,
            "user_id": user_id,
            "expires_at": now + timedelta(seconds=ttl_seconds),
        }
        await conn.execute(_upsert(conn.dialect.name), entry)

    async def delete(self, key: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(delete(cache_entries).where(cache_entries.c.key == key))

    async def forget_user(self, user_id: str) -> int:
        async with self.store.write() as conn:
            result = await conn.execute(delete(cache_entries).where(owned_by(cache_entries, user_id)))
        return int(result.rowcount)

    async def claim(self, key: str, generation_id: str, lease_seconds: float) -> str | None:
        return None

    async def renew(self, key: str, generation_id: str, lease_seconds: float) -> None:
        return None  # the generation's own lease is the claim

    async def release(self, key: str, generation_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
