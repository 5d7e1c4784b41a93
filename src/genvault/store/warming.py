"""A new PostgreSQL connection made ready for a chat turn's hot statements before a turn needs it.

A backend's first chat turn cost it 4.6–6.2 ms more CPU than the next ones, and the turn waited for
it: the first execution of the opening and of the finalize builds what the backend then keeps
(the tables' and indexes' catalog entries, the foreign keys' check plans, the triggers'
functions compiled), and asyncpg prepares each statement once per connection. A burst's first
turns, one per pooled connection, paid it (docs/benchmarks.md, pgburst round 2).

`ready(conn)` pays it ahead: it runs the turn's one-step opening and finalize (`openings`,
`finishes`: both finalize statements, with a dedup cache entry; the very statements and text a
turn sends, so asyncpg's statement cache keeps them)
for a throwaway user, chat, message and reply in a transaction it always rolls back, six times:
PostgreSQL plans each statement afresh for its first five executions on a connection. Nothing it
writes is ever committed or seen by another transaction; what stays is the backend's caches and
the connection's prepared statements. `DriverPool.fill` runs it on each connection it opens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from genvault.ids import new_id

__all__ = ["ready"]


class _Undo(Exception):
    """Raised inside `ready`'s transaction: asyncpg rolls it back."""


# PostgreSQL plans a prepared statement afresh for its first 5 executions (custom plans, 0.66 ms of
# bind each for the opening) before it settles on a cached generic plan (0.07 ms): counted in
# pg_prepared_statements (custom_plans 5, then generic_plans) — pgburst round 3.
_CUSTOM_PLANS = 5


async def ready(conn: Any) -> None:
    """Run a chat turn's opening and finalize on the asyncpg connection `conn` (outside any
    transaction), each time in a transaction that is rolled back whatever happens: once more
    than PostgreSQL's custom-plan phase, so a turn's first statements bind the generic plan."""
    for _ in range(_CUSTOM_PLANS + 1):
        await _ready_once(conn)


async def _ready_once(conn: Any) -> None:
    from genvault.store import finishes, openings

    now = datetime.now(UTC)
    user_id, chat_id, generation_id = new_id("warm"), new_id("chat"), new_id("gen")
    asked = {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": "-"}]}
    reply = {"id": new_id("msg"), "role": "assistant", "parts": [{"type": "text", "text": "-"}]}
    generation: dict[str, Any] = {
        "id": generation_id,
        "kind": "chat",
        "user_id": user_id,
        "chat_id": chat_id,
        "message_id": reply["id"],
        "model": "-",
        "provider": "-",
        "request": {},
        "created_at": now,
    }
    values: dict[str, Any] = {"status": "complete", "result_text": "-", "result_message": reply}
    values |= {"started_at": now, "first_token_at": now, "finished_at": now}
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (id, name, is_admin, created_at) VALUES ($1, $1, false, $2)", user_id, now
            )
            opening = openings.postgresql_params(chat_id, user_id, "-", asked, generation, None)
            await conn.fetchrow(openings._postgresql_sql(narrow=True), *opening)
            # With a dedup cache entry (a new key: inserted, rolled back). Then the variant that
            # purges expired entries (once a minute) for its statement; its purge time matches no
            # entry, and its `fin` nothing (the record is final now), so it writes nothing.
            entry = finishes.CacheEntry(new_id("warm"), generation_id, user_id, now, None)
            finish = finishes.postgresql_params(generation_id, values, chat_id, user_id, reply, entry)
            await conn.fetchval(finishes._postgresql_sql(purging=False, narrow=True), *finish)
            purge = finishes.CacheEntry(new_id("warm"), generation_id, user_id, now, datetime(2000, 1, 1, tzinfo=UTC))
            finish = finishes.postgresql_params(generation_id, values, chat_id, user_id, reply, purge)
            await conn.fetchval(finishes._postgresql_sql(purging=True, narrow=True), *finish)
            raise _Undo
    except _Undo:
        pass
