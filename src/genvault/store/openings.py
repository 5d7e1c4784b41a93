"""A new chat's first turn opened in one step: the chat row, the user's message with its parts
and the pending generation written together, nothing read back.

This is the common opening of a chat turn (`useChat` mints a chat id and sends its first
message). Everything the general opening (`chat_turns.prepare_turn` in a `Store.write()`
transaction) checks is decided by the one fact that the chat id was free: a chat created by this
statement belongs to this user, holds no message (so the message id is not taken, and the
history is the message), and runs no reply. When the id is taken (an existing chat, a
stranger's, or a concurrent first turn of the same new chat), nothing is written and the caller
takes the general path, which locks the chat and checks each of those.

- PostgreSQL: one statement in autocommit on the pooled asyncpg connection (`Store.driver`), a
  CTE whose inserts all hang on `INSERT … ON CONFLICT DO NOTHING RETURNING` of the chat: one
  round trip instead of eight (ping, BEGIN, chat read, chat insert, append, active-generation
  set, generation insert, COMMIT). A concurrent insert of the same id waits for the other
  transaction and then inserts nothing; the foreign keys are checked at the end of the
  statement, after every insert.
- SQLite: the same writes in one `BEGIN IMMEDIATE` transaction run in one hop to aiosqlite's
  thread (one function there does BEGIN, the inserts and COMMIT), instead of a hop and a pass
  through SQLAlchemy per statement.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import Any

from genvault.cache.dedup import CacheProbe
from genvault.errors import StorageError
from genvault.store import Store
from genvault.store.driver import ConnectionLost
from genvault.store.parts import PAGE_PART_COLUMNS, dump_json, part_record
from genvault.store.schema import MISSING, generations

__all__ = ["open_new_chat_turn"]

# The pending generation's columns, in the order of the statements' parameters.
_GENERATION_COLUMNS = (
    "id",
    "kind",
    "user_id",
    "chat_id",
    "message_id",
    "model",
    "provider",
    "request",
    "created_at",
    "lease_owner",
    "lease_expires_at",
    "idempotency_key",
    "cache_key",
    # The caller's labels (JSON or NULL); a new chat's are the same, so its row takes them too.
    "tags",
    "metadata",
)
_JSON_COLUMNS = ("request", "tags", "metadata")


def _parts_records(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"message_id": message["id"], "position": position, **part_record(part)}
        for position, part in enumerate(message["parts"])
    ]


# The dedup cache's step 1 (`cache.dedup.CacheProbe`): the entry's generation, if usable.
_PROBE = """(
    SELECT e.generation_id FROM cache_entries e JOIN generations g ON g.id = e.generation_id
    WHERE e.key = {key} AND e.expires_at > {now} AND g.status = 'complete' AND g.finished_at >= {oldest}
      AND ({user} IS NULL OR g.user_id = {user})
    LIMIT 1)"""


@functools.cache
def _postgresql_sql() -> str:
    """Parameters: $1 chat id, $2 user id, $3 title, $4 now, $5 message id, $6 message metadata
    (JSON text), $7 the parts as one JSON array of records (as the append sends them), then the
    pending generation's columns from $8 (`_GENERATION_COLUMNS`, its id first), then the cache
    probe's key, now, oldest and user (`_PROBE`; a NULL key finds nothing)."""
    columns = PAGE_PART_COLUMNS
    gen = {name: f"${8 + i}" for i, name in enumerate(_GENERATION_COLUMNS)}
    n = 8 + len(_GENERATION_COLUMNS)
    probe = _PROBE.format(
        key=f"${n}::varchar", now=f"${n + 1}::timestamptz", oldest=f"${n + 2}::timestamptz", user=f"${n + 3}::varchar"
    )
    return f"""
WITH new_chat AS (
    INSERT INTO chats (id, user_id, title, visibility, last_seq, active_generation_id, created_at, updated_at,
                       tags, metadata)
    VALUES ($1::varchar, $2::varchar, $3::varchar, 'private', 1, {gen["id"]}::varchar, $4::timestamptz,
            $4::timestamptz, {gen["tags"]}::jsonb, {gen["metadata"]}::jsonb)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), new_message AS (
    INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, generation_id, created_at)
    SELECT new_chat.id, $5::varchar, 1, $2::varchar, 'user', $6::text, NULL, $4::timestamptz FROM new_chat
), new_parts AS (
    INSERT INTO parts (chat_id, message_id, position, user_id, {", ".join(columns)})
    SELECT new_chat.id, p.message_id, p.position, $2::varchar, {", ".join("p." + c for c in columns)}
    FROM new_chat, json_populate_recordset(NULL::parts, $7::json) AS p
), new_generation AS (
    INSERT INTO generations (status, {", ".join(_GENERATION_COLUMNS)})
    SELECT 'pending', {gen["id"]}::varchar, {gen["kind"]}::varchar, {gen["user_id"]}::varchar,
           {gen["chat_id"]}::varchar, {gen["message_id"]}::varchar, {gen["model"]}::varchar, {gen["provider"]}::varchar,
           {gen["request"]}::jsonb, {gen["created_at"]}::timestamptz, {gen["lease_owner"]}::varchar,
           {gen["lease_expires_at"]}::timestamptz, {gen["idempotency_key"]}::varchar, {gen["cache_key"]}::varchar,
           {gen["tags"]}::jsonb, {gen["metadata"]}::jsonb
    FROM new_chat
)
SELECT EXISTS (SELECT 1 FROM new_chat), {probe}
"""


async def open_new_chat_turn(
    store: Store,
    *,
    chat_id: str,
    user_id: str,
    title: str | None,
    message: dict[str, Any],
    generation: dict[str, Any],
    probe: CacheProbe | None = None,
) -> bool:
    """Create chat `chat_id` for `user_id` holding `message` (a user message, checked storable)
    with the pending `generation` (its row's values) as the chat's active one, in one step, and
    run the dedup cache's `probe` in it. False, with nothing written, when the chat id is
    already taken."""
    if store.dialect == "postgresql":
        opened, hit, probed = await _open_postgresql(store, chat_id, user_id, title, message, generation, probe)
    else:
        opened, hit, probed = await _open_sqlite(store, chat_id, user_id, title, message, generation, probe)
    if probed and probe is not None:
        probe.hit, probe.ran = hit, True
    return opened


def _pg_value(generation: dict[str, Any], name: str) -> Any:
    value = generation.get(name)
    if name in _JSON_COLUMNS and value is not None:  # JSON text for `::jsonb`; None stays NULL
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _probe_params(probe: CacheProbe | None) -> tuple[Any, ...]:
    if probe is None:
        return (None, None, None, None)
    return (probe.key, probe.now, probe.oldest, probe.user_id)


async def _open_postgresql(
    store: Store,
    chat_id: str,
    user_id: str,
    title: str | None,
    message: dict[str, Any],
    generation: dict[str, Any],
    probe: CacheProbe | None,
) -> tuple[bool, str | None, bool]:
    """Whether the chat was created, the cache probe's hit, and whether the probe's answer came
    back (not when the statement's connection was lost on the way)."""
    now = generation["created_at"]
    params = (
        chat_id,
        user_id,
        title,
        now,
        message["id"],
        dump_json(message.get("metadata", MISSING)),
        json.dumps(_parts_records(message), separators=(",", ":"), ensure_ascii=False),
        *(_pg_value(generation, name) for name in _GENERATION_COLUMNS),
        *_probe_params(probe),
    )
    sql = _postgresql_sql()

    def result(row: Any) -> tuple[bool, str | None, bool]:
        return bool(row[0]), row[1], bool(row[0])

    try:
        async with store.driver(ping=False) as driver:
            return result(await driver.run(lambda conn: conn.fetchrow(sql, *params), what="write"))
    except ConnectionLost as lost:
        maybe_ran = lost.sent
    # Once more on a pinged connection. If the first try may have run (and, in autocommit,
    # committed), its generation id, minted for this turn, tells: found means it did.
    async with store.driver() as driver:
        if maybe_ran:
            found = await driver.run(
                lambda conn: conn.fetchval("SELECT EXISTS (SELECT 1 FROM generations WHERE id = $1)", generation["id"]),
                what="read",
            )
            if found:  # the cache lookup it ran is lost with its answer: `Dedup.decide` looks again
                return True, None, False
        return result(await driver.run(lambda conn: conn.fetchrow(sql, *params), what="write"))


@functools.cache
def _sqlite_binders(dialect: Any) -> tuple[Any, Any]:
    """How SQLAlchemy binds a timestamp and a JSON value on SQLite, as functions."""
    return (
        generations.c.created_at.type.bind_processor(dialect),
        generations.c.request.type.bind_processor(dialect),
    )


async def _open_sqlite(
    store: Store,
    chat_id: str,
    user_id: str,
    title: str | None,
    message: dict[str, Any],
    generation: dict[str, Any],
    probe: CacheProbe | None,
) -> tuple[bool, str | None, bool]:
    stamp, json_value = _sqlite_binders(store.engine.dialect)
    now = stamp(generation["created_at"])
    records = _parts_records(message)
    part_sql = (
        f"INSERT INTO parts (chat_id, message_id, position, user_id, {', '.join(PAGE_PART_COLUMNS)}) "
        f"VALUES ({', '.join('?' * (4 + len(PAGE_PART_COLUMNS)))})"
    )
    part_rows = [
        (chat_id, r["message_id"], r["position"], user_id, *(r.get(c) for c in PAGE_PART_COLUMNS)) for r in records
    ]
    generation_row = tuple(
        (None if generation.get(name) is None else json_value(generation[name]))
        if name in _JSON_COLUMNS
        else stamp(generation[name])
        if name in ("created_at", "lease_expires_at")
        else generation.get(name)
        for name in _GENERATION_COLUMNS
    )
    metadata = dump_json(message.get("metadata", MISSING))
    probe_sql = "SELECT " + _PROBE.format(key="?", now="?", oldest="?", user="?")  # the user twice
    probe_params = (
        None if probe is None else (probe.key, stamp(probe.now), stamp(probe.oldest), probe.user_id, probe.user_id)
    )

    def run(db: sqlite3.Connection) -> tuple[bool, str | None, bool]:
        # On aiosqlite's thread, in one hop. The connection is in autocommit as SQLAlchemy's
        # pool hands it out between transactions, so BEGIN IMMEDIATE starts ours.
        db.execute("BEGIN IMMEDIATE")
        try:
            created = db.execute(
                "INSERT INTO chats (id, user_id, title, visibility, last_seq, active_generation_id, created_at, "
                "updated_at, tags, metadata) VALUES (?, ?, ?, 'private', 1, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (chat_id, user_id, title, generation["id"], now, now, *generation_row[-2:]),
            ).fetchall()
            if not created:
                db.execute("ROLLBACK")
                return False, None, False
            db.execute(
                "INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, generation_id, created_at) "
                "VALUES (?, ?, 1, ?, 'user', ?, NULL, ?)",
                (chat_id, message["id"], user_id, metadata, now),
            )
            if part_rows:
                db.executemany(part_sql, part_rows)
            db.execute(
                f"INSERT INTO generations (status, {', '.join(_GENERATION_COLUMNS)}) "
                f"VALUES ('pending', {', '.join('?' * len(_GENERATION_COLUMNS))})",
                generation_row,
            )
            hit = db.execute(probe_sql, probe_params).fetchone()[0] if probe_params is not None else None
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True, hit, probe_params is not None

    try:
        async with store.engine.connect() as conn:
            raw: Any = await conn.get_raw_connection()
            driver = raw.driver_connection
            # Not beside a statement of SQLAlchemy's adapter on this connection.
            async with raw.dbapi_connection._execute_mutex:
                result: tuple[bool, str | None, bool] = await driver._execute(run, driver._conn)
                return result
    except sqlite3.Error as exc:
        raise StorageError(f"database write failed: {exc}") from exc
