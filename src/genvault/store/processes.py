"""Process heartbeats and what they decide: which generations lost their process.

Liveness is one row per process (`processes`), renewed by its heartbeat, not a lease per
generation: a process holding a thousand slow streams writes one row every few seconds. A
generation's `lease_owner` names the process running it. A sweeper declares a process dead once
its row expired (`dead_at`), in the same transaction that marks that process's active generations
`interrupted`; the dead process's next heartbeat finds its row declared and stops its runs. A
process never declares itself dead, so a process never interrupts its own live generations.

Generations whose owner has no row (written before heartbeats existed, or restored from a
backup) fall back to their own `lease_expires_at`, as before.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, insert, not_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault._json import dump_json
from genvault.records import Generation
from genvault.store import generations as gen_store
from genvault.store.driver import PooledDriver
from genvault.store.sqlite_groups import write_in_group
from genvault.store.sqlite_rows import stamp_text

if TYPE_CHECKING:
    from genvault.store import Store
from genvault.store.schema import GENERATION_STATUSES, generations, processes

__all__ = [
    "checkpoint_many",
    "checkpoint_many_sqlite",
    "declare_dead",
    "gone_owner",
    "heartbeat",
    "mark_streaming_alone",
    "mark_streaming_sqlite",
    "no_longer_active",
    "register",
    "retire",
    "sweep",
]

# Rows of processes dead this long (their generations long since swept) are deleted.
_FORGET_AFTER = timedelta(days=1)

_HEARTBEAT = (
    update(processes)
    .where(processes.c.id == bindparam("me"), processes.c.dead_at.is_(None))
    .values(heartbeat_at=bindparam("now"), expires_at=bindparam("expires_at"))
)


async def register(conn: AsyncConnection, *, owner: str, host: str, pid: int, now: datetime, lease: timedelta) -> None:
    await conn.execute(
        insert(processes).values(id=owner, host=host, pid=pid, started_at=now, heartbeat_at=now, expires_at=now + lease)
    )


async def heartbeat(conn: AsyncConnection, *, owner: str, now: datetime, lease: timedelta) -> bool:
    """Renew this process's row. False when another process declared it dead (or it has no row):
    its generations were (or are being) marked `interrupted`, and it must stop running them."""
    result = await conn.execute(_HEARTBEAT, {"me": owner, "now": now, "expires_at": now + lease})
    return result.rowcount == 1


async def retire(conn: AsyncConnection, *, owner: str, now: datetime) -> None:
    """A clean exit: the row is declared dead by its own process, after its runs ended."""
    await conn.execute(
        update(processes).where(processes.c.id == owner, processes.c.dead_at.is_(None)).values(dead_at=now)
    )


async def declare_dead(conn: AsyncConnection, *, now: datetime, me: str | None, also: Sequence[str] = ()) -> list[str]:
    """Declare dead every process whose heartbeat expired (never `me`), and the `also` ones (known
    gone by other means: a pid that no longer exists on this host). Returns the ids declared."""
    late = or_(processes.c.expires_at < now, processes.c.id.in_(list(also))) if also else processes.c.expires_at < now
    where = [processes.c.dead_at.is_(None), late]
    if me is not None:
        where.append(processes.c.id != me)
    ids = list((await conn.execute(select(processes.c.id).where(*where))).scalars().all())
    if ids:
        await conn.execute(update(processes).where(processes.c.id.in_(ids)).values(dead_at=now))
    await conn.execute(delete(processes).where(processes.c.dead_at < now - _FORGET_AFTER))
    return ids


def gone_owner(now: datetime, *, expired_counts: bool, dead_owners: Sequence[str] = ()) -> ColumnElement[bool]:
    """The condition on `generations` for "its process is gone": its owner's row is declared dead
    (or, with `expired_counts`, merely expired: what `verify` reports), or it has no row and its
    own lease expired, or the owner is one of `dead_owners`."""
    dead: ColumnElement[bool] = processes.c.dead_at.is_not(None)
    if expired_counts:
        dead = or_(dead, processes.c.expires_at < now)
    owner_dead = generations.c.lease_owner.in_(select(processes.c.id).where(dead))
    no_row = not_(generations.c.lease_owner.in_(select(processes.c.id)))
    lease_expired = or_(generations.c.lease_expires_at.is_(None), generations.c.lease_expires_at < now)
    condition = or_(
        generations.c.lease_owner.is_(None),
        owner_dead,
        and_(no_row, lease_expired),
    )
    if dead_owners:
        condition = or_(condition, generations.c.lease_owner.in_(list(dead_owners)))
    return condition


async def sweep(
    conn: AsyncConnection, *, now: datetime, me: str | None, dead_owners: Sequence[str] = ()
) -> list[Generation]:
    """Declare expired processes dead and mark their active generations `interrupted` (never
    `me`'s), in the caller's transaction. Returns the records it changed."""
    await declare_dead(conn, now=now, me=me, also=dead_owners)
    where: list[ColumnElement[bool]] = [
        gen_store.ACTIVE_ROWS,
        gone_owner(now, expired_counts=False, dead_owners=dead_owners),
    ]
    if me is not None:
        where.append(or_(generations.c.lease_owner.is_(None), generations.c.lease_owner != me))
    ids = (await conn.execute(select(generations.c.id).where(*where))).scalars().all()
    return await gen_store.interrupt(conn, ids, now=now)


async def no_longer_active(conn: AsyncConnection, generation_ids: Sequence[str]) -> list[str]:
    """Those of `generation_ids` that are final now (cancelled or swept by another process)."""
    if not generation_ids:
        return []
    query = select(generations.c.id).where(
        generations.c.id.in_(list(generation_ids)), generations.c.status.not_in(gen_store.ACTIVE)
    )
    return list((await conn.execute(query)).scalars().all())


# One statement for every dirty generation of a process: the checkpoints go as one JSON array of
# rows (SQLite: one array per field; `genvault.liveness.written`: what grew since the last
# checkpoint, appended at the length already written) and the database unpacks it, so the cost
# per flush is one round trip and one statement however many streams are running, and a
# stream's text is sent once, not once per interval. `substr(…, 1, o) || t` rather than
# `… || t`: running it twice changes nothing more.
# SQLite's rows carry the message as its JSON text (`written.next_checkpoint(..., as_text=True)`),
# PostgreSQL's as JSON (its column is `jsonb`: `jsonb_set` on the stored value, no text to splice).
# Guarded by the status like every state change; RETURNING names the ones still active (the rest
# were cancelled or swept).
_ACTIVE_SQL = ", ".join(f"'{s}'" for s in gen_store.ACTIVE)
# PostgreSQL's batch updates of `generations` (the first-token mark, the checkpoint) find each row
# by primary key, one probe per entry of the batch, under any plan PostgreSQL may keep: a pooled
# connection keeps the generic plan it made after a prepared statement's first executions,
# perhaps on a new database with empty tables and no statistics (autovacuum off: never any). The
# plain form (`g.id = m.id AND g.status IN (…)` over `unnest`) got a bitmap scan of the status
# index there (which holds an entry for every version of a row ever active until a vacuum
# removes it: growing with every turn on a server without autovacuum) or, with the status test
# made unindexable, a hash join over a sequential scan of the table, kept as the table grew.
# What makes the probe the cheapest plan even on an empty table (tests/test_pg_turn_plans.py):
# the join test `g.id = ANY(ARRAY[(<ids array>)[s.i]])` over `generate_subscripts` (no hash or
# merge join can use it; an index scan can, evaluating it once an entry, where a scan evaluates
# it for every row and entry), and the status test as `NOT IN` the final statuses (no index
# condition, costed as keeping most rows; the same test as `IN (ACTIVE)` under the status check
# constraint) on `g.status || ''`, an expression, not the column: no statistics apply to it, so
# it is costed as keeping most rows after an ANALYZE too. On the column, the statistics of a
# grown database (nearly every generation finished) put the active ones at a row or so, and the
# generic plan scanned the whole table for them on every mark and checkpoint.
_STILL_ACTIVE_PG = "(g.status || '') NOT IN ({})".format(
    ", ".join(f"'{s}'" for s in GENERATION_STATUSES if s not in gen_store.ACTIVE)
)
# SQLite: one JSON array per field, the generations' ids the rows (`json_each`), each field read
# by the entry's index (`json_extract(:o, '$[n]')`: SQLite's JSON cache parses a bound array once
# per statement). With a payload of row objects every `json_extract(v.value, …)` parsed its row
# again (six a row): the arrays take 17 % fewer instructions a row.
_ENTRY = "'$[' || v.key || ']'"
_CHECKPOINT_SQLITE = (
    "UPDATE generations SET "
    f"result_text = substr(COALESCE(result_text, ''), 1, json_extract(:o, {_ENTRY})) || json_extract(:t, {_ENTRY}), "
    # The message as text, the same way (`x` characters kept, `r` the text after them; none: the
    # column stays): a copy, where `json_set` over the part's `json_extract` parsed the whole
    # message twice and wrote it out again, every row and interval (about half the statement's
    # instructions).
    "result_message = COALESCE(substr(COALESCE(result_message, ''), 1, "
    f"json_extract(:x, {_ENTRY})) || json_extract(:r, {_ENTRY}), result_message), "
    "checkpoint_at = :at "
    "FROM json_each(:ids) AS v "
    # `+status`: no index on the status, so SQLite loops over the payload and finds each row by
    # its primary key. With the status index it looped over every active row and, for each,
    # over the whole payload: quadratic in the running streams (21 ms a flush of 100, 1.5 now).
    f"WHERE generations.id = v.value AND +generations.status IN ({_ACTIVE_SQL}) "
    "RETURNING generations.id"
)
# PostgreSQL: each row of the payload finds its generation by primary key, whatever the planner
# knows (see `_STILL_ACTIVE_PG`).
_CHECKPOINT_PG = (
    "WITH p AS MATERIALIZED (SELECT CAST(:payload AS jsonb) AS j) "
    "UPDATE generations AS g SET result_text = substr(COALESCE(g.result_text, ''), 1, v.o) || v.t, "
    "result_message = CASE WHEN v.m IS NOT NULL THEN v.m "
    "WHEN v.k IS NOT NULL THEN jsonb_set(g.result_message, ARRAY['parts', v.k::text, 'text'], "
    "to_jsonb(substr(g.result_message #>> ARRAY['parts', v.k::text, 'text'], 1, v.q) || v.p)) "
    "ELSE g.result_message END, "
    "checkpoint_at = :at "
    "FROM p, generate_subscripts(CAST(:ids AS text[]), 1) AS s(n), "
    "jsonb_to_record(p.j -> (s.n - 1)) AS v(i text, o int, t text, m jsonb, k int, q int, p text) "
    f"WHERE g.id = ANY(ARRAY[(CAST(:ids AS text[]))[s.n]]) AND {_STILL_ACTIVE_PG} RETURNING g.id"
)
_CHECKPOINT_SQL = {
    "postgresql": text(_CHECKPOINT_PG),
    "sqlite": text(_CHECKPOINT_SQLITE),
}
for _dialect, _statement in list(_CHECKPOINT_SQL.items()):
    _CHECKPOINT_SQL[_dialect] = _statement.bindparams(bindparam("at", type_=generations.c.checkpoint_at.type))


async def checkpoint_many(conn: AsyncConnection, rows: Sequence[dict[str, Any]], *, at: datetime) -> set[str]:
    """Save the partial output of many generations at once, each row what grew since its last
    checkpoint (`genvault.liveness.written.next_checkpoint`). Returns the ids that were still
    active (and so written)."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {"payload": dump_json(rows), "ids": [row["i"] for row in rows], "at": at}
    else:
        params = {**_sqlite_fields(rows), "at": at}
    result = await conn.execute(_CHECKPOINT_SQL[conn.dialect.name], params)
    return set(result.scalars().all())


def _sqlite_fields(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The rows as `_CHECKPOINT_SQLITE`'s arrays, one per field (null where a row has none)."""
    fields = {"ids": dump_json([row["i"] for row in rows])}
    for key in ("o", "t", "x", "r"):
        fields[key] = dump_json([row.get(key) for row in rows])
    return fields


async def checkpoint_many_sqlite(store: Store, rows: Sequence[dict[str, Any]], *, at: datetime) -> set[str]:
    """`checkpoint_many` on SQLite, in one hop to the store's writer connection, in a transaction
    of the writes queued there meanwhile (`sqlite_groups.write_in_group`): no SQLAlchemy
    execution around it, and not a hop to the connection's thread for each of BEGIN, the
    statement, its rows and COMMIT."""
    if not rows:
        return set()
    params = {**_sqlite_fields(rows), "at": _sqlite_stamp(store.engine.dialect)(at)}

    def run(db: sqlite3.Connection) -> set[str]:
        return {row[0] for row in db.execute(_CHECKPOINT_SQLITE, params).fetchall()}

    return await write_in_group(store, run)


# The move to `streaming` at a generation's first token, for many at once. Guarded by the status:
# one that ended meanwhile (a short reply finalized first, a cancel) is left as it is. PostgreSQL:
# on asyncpg itself (`Store.driver`), one prepared statement over arrays, one round trip, no
# SQLAlchemy execution around it; SQLite: one hop (`sqlite_groups.write_in_group`).
#
# PostgreSQL commits it without waiting for its WAL flush (`synchronous_commit` off for this
# statement's own transaction, by `set_config(…, true)` in the statement: one round trip still).
# The mark is no promise to anyone: lost in a crash, the record stays `pending` and the sweeper
# ends it `interrupted` as it would a `streaming` one, and the finalize's commit, which is
# synchronous, flushes the WAL up to itself, the mark's commit included. Waiting for the flush
# held the batch's rows locked meanwhile, so a finalize of one of them waited for another
# turn's flush as well as its own (a flush took several ms on the shared server under load).
#
# Each generation found by primary key (`_STILL_ACTIVE_PG`): the arrays by subscript.
_MARK_STREAMING_PG = (
    "WITH no_flush_wait AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE generations AS g SET status = 'streaming', started_at = ($2::timestamptz[])[s.i], "
    "first_token_at = ($3::timestamptz[])[s.i], lease_owner = $4, lease_expires_at = $5 "
    "FROM no_flush_wait, generate_subscripts($1::text[], 1) AS s(i) "
    f"WHERE g.id = ANY(ARRAY[($1::text[])[s.i]]) AND {_STILL_ACTIVE_PG}"
)


async def mark_streaming_alone(
    driver: PooledDriver, marks: Sequence[tuple[str, datetime, datetime]], *, owner: str, lease_until: datetime
) -> None:
    """Move each (id, started_at, first_token_at) still active to `streaming`, owned by `owner`:
    PostgreSQL, on the driver connection, one statement in autocommit (guarded by the status,
    so running it twice changes nothing more)."""
    if not marks:
        return
    ids, started, first = ([m[k] for m in marks] for k in range(3))
    await driver.run(
        lambda conn: conn.execute(_MARK_STREAMING_PG, ids, started, first, owner, lease_until), what="write"
    )


async def mark_streaming_sqlite(
    store: Store, marks: Sequence[tuple[str, datetime, datetime]], *, owner: str, lease_until: datetime
) -> None:
    """`mark_streaming_alone` on SQLite, in one hop to the store's writer connection, in a
    transaction of the writes queued there meanwhile (`sqlite_groups.write_in_group`)."""
    if not marks:
        return
    stamp = stamp_text(store.engine.dialect)  # as text: no adapter call per bind (`sqlite_rows`)
    until = stamp(lease_until)
    rows = [(stamp(started), stamp(first), owner, until, i) for i, started, first in marks]

    def run(db: sqlite3.Connection) -> None:
        db.executemany(_MARK_STREAMING_SQLITE, rows)

    await write_in_group(store, run)


_MARK_STREAMING_SQLITE = (
    "UPDATE generations SET status = 'streaming', started_at = ?, first_token_at = ?, lease_owner = ?, "
    f"lease_expires_at = ? WHERE id = ? AND status IN ({_ACTIVE_SQL})"
)


@functools.cache
def _sqlite_stamp(dialect: Any) -> Any:
    """How SQLAlchemy binds a timestamp on SQLite, as a function."""
    return generations.c.started_at.type.bind_processor(dialect)
