"""Applying SQLite's queue of message-part changes to the FTS5 index (revision 0009).

The triggers on `parts` queue each change (`+` a row now to index; `-` a row that was indexed,
with the values it was indexed with) instead of writing the index in the writer's transaction.
`flush` applies the queue in one transaction: for every row named, remove what the index holds
(the values of its first `-`, when its first change was a removal: the row was indexed before the
queue began) and index what the table holds now. Order within the queue no longer matters after
that: a row inserted and deleted before a flush is simply not indexed; one edited twice is indexed
once, as it is now.

Every search flushes first (so it sees every committed write), and the Vault flushes in the
background and after an erasure (so a deleted text does not wait in the queue).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["flush", "has_pending"]

_INDEX_ROWS = text(
    "INSERT INTO search_parts (rowid, body, owner) SELECT id, body, owner FROM search_parts_source "
    "WHERE id IN (SELECT value FROM json_each(:ids))"
)


async def has_pending(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "sqlite":
        return False
    return (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM search_parts_pending)"))).scalar() == 1


async def flush(conn: AsyncConnection) -> int:
    """Apply the queue inside the caller's write transaction; returns how many rows it named."""
    if conn.dialect.name != "sqlite":
        return 0
    rows = (await conn.execute(text("SELECT seq, rid, op, body, owner FROM search_parts_pending ORDER BY seq"))).all()
    if not rows:
        return 0
    first: dict[int, tuple[str, Any, Any]] = {}
    for _seq, rid, op, body, owner in rows:
        first.setdefault(rid, (op, body, owner))
    removals = [{"rid": rid, "body": body, "owner": owner} for rid, (op, body, owner) in first.items() if op == "-"]
    if removals:
        await conn.execute(
            text("INSERT INTO search_parts (search_parts, rowid, body, owner) VALUES ('delete', :rid, :body, :owner)"),
            removals,
        )
    rids = list(first)
    # One statement text whatever the number of rows (the ids as one JSON array): a statement
    # per count would be compiled and cached anew (SQLAlchemy's cache, sqlite3's) each time a
    # flush names a new number of rows, and those long-lived objects, made while hundreds of
    # replies stream, keep the allocator's arenas of that moment from being given back.
    await conn.execute(_INDEX_ROWS, {"ids": json.dumps(rids)})
    await conn.execute(text("DELETE FROM search_parts_pending WHERE seq <= :last"), {"last": rows[-1][0]})
    return len(rids)
