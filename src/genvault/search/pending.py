"""Applying SQLite's queue of message-part and chat-title changes to the FTS5 indexes (revisions
0009 and 0028).

The triggers on `parts` queue each change (`+` a row now to index; `-` a row that was indexed,
with the values it was indexed with) instead of writing the index in the writer's transaction;
those on `chats` do the same with `c+` and `c-` (a chat's rowid is not a part's: each index
takes its own).
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
import sqlite3
from typing import Any

__all__ = ["flush"]

# Each queued kind: its ops (added, removed) and its FTS5 index (with its content view).
_KINDS = (("+", "-", "search_parts"), ("c+", "c-", "search_chats"))
_KIND_OF = {op: index for added, removed, index in _KINDS for op in (added, removed)}

# One statement text per index whatever the number of rows (the ids as one JSON array): a
# statement per count would be compiled and cached anew each time a flush names a new number of
# rows, and those long-lived objects, made while hundreds of replies stream, keep the allocator's
# arenas of that moment from being given back.
_INDEX_ROWS = {
    index: f"INSERT INTO {index} (rowid, body, owner) SELECT id, body, owner FROM {index}_source "
    "WHERE id IN (SELECT value FROM json_each(?))"
    for _, _, index in _KINDS
}
_UNINDEX_ROWS = {
    index: f"INSERT INTO {index} ({index}, rowid, body, owner) VALUES ('delete', ?, ?, ?)" for _, _, index in _KINDS
}


def flush(conn: sqlite3.Connection) -> int:
    """Apply the queue inside the caller's write transaction, on the writer connection's thread
    (`sqlite_groups.write_in_group`: the read, the index writes and the queue's delete in one hop
    and the group's commit); returns how many rows it named."""
    rows = conn.execute("SELECT seq, rid, op, body, owner FROM search_parts_pending ORDER BY seq").fetchall()
    if not rows:
        return 0
    first: dict[tuple[str, int], tuple[str, Any, Any]] = {}
    for _seq, rid, op, body, owner in rows:
        first.setdefault((_KIND_OF[op], rid), (op, body, owner))
    named = 0
    for added, _removed, index in _KINDS:
        mine = {rid: change for (kind, rid), change in first.items() if kind == index}
        if not mine:
            continue
        removals = [(rid, body, owner) for rid, (op, body, owner) in mine.items() if op != added]
        if removals:
            conn.executemany(_UNINDEX_ROWS[index], removals)
        conn.execute(_INDEX_ROWS[index], (json.dumps(list(mine)),))
        named += len(mine)
    conn.execute("DELETE FROM search_parts_pending WHERE seq <= ?", (rows[-1][0],))
    return named
