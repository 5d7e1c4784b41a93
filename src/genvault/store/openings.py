"""A chat turn opened in one step: the user's message with its parts and the pending generation
written together with the chat's claim (a new chat's row, or an existing chat's seq bump and
active generation), nothing read back but an existing chat's history.

This is the common opening of a chat turn: `useChat` mints a chat id and sends its first
message, then each next message. Everything the general opening (`chat_turns.prepare_turn` in a
`Store.write()` transaction) checks is decided by two facts the statement establishes itself:
either the chat id was free (a chat created here belongs to this user, holds no message, runs no
reply, and its history is the message), or the chat is this user's, runs no reply
(`active_generation_id IS NULL`) and does not hold the message's id (not an edit). Anything else
(a stranger's chat, a running or stale reply, an edit, a concurrent turn of the same chat)
writes nothing, and the caller takes the general path, which locks the chat and checks each.

- PostgreSQL: one statement in autocommit on the pooled asyncpg connection (`Store.driver`), a
  CTE whose inserts all hang on the chat's `INSERT … ON CONFLICT DO NOTHING` or its claiming
  `UPDATE` (`_postgresql_sql`): one round trip instead of eight for a new chat (ping, BEGIN,
  chat read, chat insert, append, active-generation set, generation insert, COMMIT) and instead
  of twelve or more for an existing one (the same with the message probe and the history read);
  an existing chat's history is then one page read (`read_history`). The foreign keys are
  checked at the end of the statement, after every insert.
- SQLite: the same writes in one hop to aiosqlite's thread, instead of a hop and a pass through
  SQLAlchemy per statement, in a `BEGIN IMMEDIATE` transaction shared with the other writes
  queued meanwhile (`sqlite_groups.write_in_group`: group commit, each write under a savepoint).

A generation of no chat (a `/v1` gateway call, `Vault.complete`) opens the same way with only
its pending row to write (`open_generation`): one statement with the dedup cache's lookup on
PostgreSQL, one hop on SQLite, instead of a SQLAlchemy transaction (ping, BEGIN, INSERT, COMMIT)
and a lookup of its own.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sqlite3
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

from genvault._json import dump_json as dump_json_fast
from genvault._json import dump_jsonb
from genvault.cache.dedup import CacheProbe
from genvault.store import Store
from genvault.store.chats import MAX_PAGE, load_messages
from genvault.store.driver import ConnectionLost
from genvault.store.parts import PAGE_PART_COLUMNS, dump_json, part_record, pg_parts_insert_sql, pg_parts_narrow
from genvault.store.schema import MISSING, generations
from genvault.store.sqlite_groups import UndoWrites, write_in_group
from genvault.store.sqlite_rows import insert_sql, present, present_in, stamp_text

__all__ = ["Opened", "Opening", "open_chat_turn", "open_generation", "read_history", "with_message"]

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
    "api_key_id",
    "reservation",  # a budget's hold: the insert's trigger takes it or fails (genvault.limits)
    # The caller's labels (JSON or NULL); a new chat's are the same, so its row takes them too.
    "tags",
    "metadata",
)
# The chat turn's opening binds them but `created_at`, the turn's instant, bound once ($4).
_OPENING_GENERATION_COLUMNS = tuple(name for name in _GENERATION_COLUMNS if name != "created_at")


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
def _postgresql_sql(narrow: bool = False) -> str:
    """`narrow`: the message's parts are all text, reasoning or step-start parts
    (`parts.pg_parts_narrow`, `parts.pg_parts_insert_sql`).

    Parameters: $1 chat id, $2 user id, $3 title, $4 now, $5 message id, $6 message metadata
    (JSON text), $7 the parts as one JSON array of records (as the append sends them), then the
    pending generation's columns from $8 (`_OPENING_GENERATION_COLUMNS`, its id first), then the cache
    probe's key, now, oldest and user (`_PROBE`; a NULL key finds nothing). The generation's
    `created_at` is $4 (not a parameter of its own), and JSON is bound as text and cast in the
    statement (`text::jsonb`, `text::json`): asyncpg binds text in C, where a `json`/`jsonb`
    parameter goes through the Python encoder SQLAlchemy's dialect gives every connection;
    PostgreSQL parses the same text either way.

    `new_chat` inserts the chat unless its id is taken; `claim` takes a chat of this user that
    exists (in the statement's snapshot, so never the one `new_chat` inserts) if it runs no
    reply and does not hold the message id yet, bumping its `last_seq` and setting the
    generation as its active one. At most one of them returns a row (`target`: the chat and the
    message's seq); the message, its parts and the generation hang on it. A concurrent turn of
    the same chat waits on the chat row and then finds its active generation set (PostgreSQL
    re-checks the row's new version), so it claims nothing and takes the general path. A chat
    with labels of its own is not claimed either: the general path merges them into the turn's
    (`labels.merged`). The owner is compared with `IS NOT DISTINCT FROM` (no index condition), so
    the chat is found by its primary key whatever the statistics (see `chats._append_sql`)."""
    # The generation's `created_at` is the turn's instant, $4: not bound a second time.
    gen = {name: f"${8 + i}" for i, name in enumerate(_OPENING_GENERATION_COLUMNS)}
    gen["created_at"] = "$4"
    n = 8 + len(_OPENING_GENERATION_COLUMNS)
    probe = _PROBE.format(
        key=f"${n}::varchar", now=f"${n + 1}::timestamptz", oldest=f"${n + 2}::timestamptz", user=f"${n + 3}::varchar"
    )
    # The request records how long the history was: the chat's messages before this one, + 1.
    # Counted only for a claimed chat (a one-time filter: a new chat has none), so a new chat's
    # opening reads no message whatever plan the count has: under statistics that put every
    # message in one chat (`chat_id = $1` costed as the whole table) its generic plan is a scan
    # of `messages`, which a pooled connection keeps as the table grows.
    request = (
        f"jsonb_set({gen['request']}::text::jsonb, '{{messages_before}}', to_jsonb((SELECT count(*) FROM messages "
        "WHERE chat_id = $1::varchar AND EXISTS (SELECT 1 FROM claim)) + 1))"
    )
    return f"""
WITH new_chat AS (
    INSERT INTO chats (id, user_id, title, visibility, last_seq, active_generation_id, created_at, updated_at,
                       tags, metadata)
    VALUES ($1::varchar, $2::varchar, $3::varchar, 'private', 1, {gen["id"]}::varchar, $4::timestamptz,
            $4::timestamptz, {gen["tags"]}::text::jsonb, {gen["metadata"]}::text::jsonb)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, last_seq
), claim AS (
    UPDATE chats SET last_seq = last_seq + 1, updated_at = $4::timestamptz, active_generation_id = {gen["id"]}::varchar
    WHERE id = $1::varchar AND user_id IS NOT DISTINCT FROM $2::varchar AND active_generation_id IS NULL
      AND tags IS NULL AND metadata IS NULL
      AND NOT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1::varchar AND id = $5::varchar)
    RETURNING id, last_seq
), target AS (
    SELECT id, last_seq FROM new_chat UNION ALL SELECT id, last_seq FROM claim
), new_message AS (
    INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, generation_id, created_at)
    SELECT target.id, $5::varchar, target.last_seq, $2::varchar, 'user', $6::text, NULL, $4::timestamptz FROM target
), new_parts AS (
    {pg_parts_insert_sql("target.id", "$2::varchar", "target", "$7::text::json", narrow=narrow)}
), new_generation AS (
    INSERT INTO generations (status, {", ".join(_GENERATION_COLUMNS)})
    SELECT 'pending', {gen["id"]}::varchar, {gen["kind"]}::varchar, {gen["user_id"]}::varchar,
           {gen["chat_id"]}::varchar, {gen["message_id"]}::varchar, {gen["model"]}::varchar, {gen["provider"]}::varchar,
           {request}, {gen["created_at"]}::timestamptz, {gen["lease_owner"]}::varchar,
           {gen["lease_expires_at"]}::timestamptz, {gen["idempotency_key"]}::varchar, {gen["cache_key"]}::varchar,
           {gen["api_key_id"]}::varchar, {gen["reservation"]}::text::jsonb, {gen["tags"]}::text::jsonb,
           {gen["metadata"]}::text::jsonb
    FROM target
)
SELECT EXISTS (SELECT 1 FROM new_chat), EXISTS (SELECT 1 FROM claim), {probe}
"""


# How a one-step opening went: a new chat, a turn of an existing one, or None: nothing written,
# the general path decides.
Opened = Literal["new", "existing"] | None


@dataclass
class Opening:
    how: Opened
    # The history before the message, when read along with an "existing" opening (PostgreSQL,
    # on the same connection); else None, and `read_history` reads it.
    earlier: list[dict[str, Any]] | None = None


async def open_chat_turn(
    store: Store,
    *,
    chat_id: str,
    user_id: str,
    title: str | None,
    message: dict[str, Any],
    generation: dict[str, Any],
    probe: CacheProbe | None = None,
) -> Opening:
    """Append `message` (a user message, checked storable) to chat `chat_id` with the pending
    `generation` (its row's values) as the chat's active one, in one step, and run the dedup
    cache's `probe` in it: creating the chat for `user_id` (titled `title`) if the id is free
    ("new"), else in the user's chat if it runs no reply and does not hold the message's id
    ("existing"). None, with nothing written, otherwise (a stranger's chat, a running reply, an
    edit of a stored message, a concurrent turn): the general path sorts those out."""
    opening = Opening(None)
    args = (store, chat_id, user_id, title, message, generation, probe)
    if store.dialect == "postgresql":
        opened, hit, probed = await _open_postgresql(*args, opening)
    else:
        opened, hit, probed = await _open_sqlite(*args)
    if probed and probe is not None:
        probe.hit, probe.ran = hit, True
    opening.how = opened
    return opening


async def read_history(store: Store, chat_id: str, message: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat as the model sees it after an "existing" opening: every message before
    `message` (read in pages of the page read's one statement), then `message` itself, which
    the store keeps exactly (a copy: the caller keeps `message`)."""

    def read(conn: Any) -> Awaitable[list[dict[str, Any]]]:
        return _messages_before(conn, chat_id, message["id"])

    if store.dialect == "postgresql":
        earlier = await store.driver_retrying(read)
    else:
        earlier = await _sqlite_history(store, chat_id, message["id"])
    return with_message(earlier, message)


async def _sqlite_history(store: Store, chat_id: str, message_id: str) -> list[dict[str, Any]]:
    """SQLite: the messages before `message_id`. A history of one page (up to `MAX_PAGE`
    messages: nearly every chat) is one statement, a snapshot of its own, read on one of the
    store's reader connections (`Store.sqlite_reader`: one hop, no SQLAlchemy checkout, BEGIN
    and reset, as the page read's); a longer one is read again whole, a page at a time in one
    read transaction of SQLAlchemy's, as before (one snapshot for all its pages)."""
    async with store.sqlite_reader() as reader:
        page = await load_messages(reader, chat_id, limit=MAX_PAGE, before=message_id)
    if not page.has_before or not page.messages:
        return page.messages
    async with store.read() as conn:
        return await _messages_before(conn, chat_id, message_id)


def with_message(earlier: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    """The history: the messages before `message`, then a copy of it (the caller keeps it)."""
    return [*earlier, copy_json(message)]


_ATOMS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value, equal to `copy.deepcopy`'s, without its memo and per-object
    dispatch (a turn's user message is copied once or twice a turn). Plain dicts and lists are
    copied, str, numbers, booleans and None kept; anything else goes to `copy.deepcopy`. Unlike
    `deepcopy` a sub-object that appears twice is copied twice (JSON has no shared objects)."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list:
        return [copy_json(item) for item in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


async def _messages_before(conn: Any, chat_id: str, message_id: str) -> list[dict[str, Any]]:
    """Every message of the chat before `message_id`, oldest first, a page read at a time."""
    pages: list[list[dict[str, Any]]] = []
    anchor = message_id
    while True:
        page = await load_messages(conn, chat_id, limit=MAX_PAGE, before=anchor)
        pages.append(page.messages)
        if not page.has_before or not page.messages:
            break
        anchor = page.messages[0]["id"]
    return [m for older_first in reversed(pages) for m in older_first]


_JSON_COLUMNS = ("request", "reservation", "tags", "metadata")
_JSON_POSITIONS = tuple(_GENERATION_COLUMNS.index(name) for name in _JSON_COLUMNS)
_OPENING_JSON_POSITIONS = tuple(_OPENING_GENERATION_COLUMNS.index(name) for name in _JSON_COLUMNS)


def _generation_params(
    generation: dict[str, Any],
    columns: tuple[str, ...] = _GENERATION_COLUMNS,
    json_positions: tuple[int, ...] = _JSON_POSITIONS,
) -> list[Any]:
    """The pending generation's parameters for asyncpg, in `columns`' order: a JSON column's
    text (`_json.dump_jsonb`; None stays SQL NULL, not JSON null), else the value. (One C `map`
    and four look-ups, not a generator calling a function for each of 17 columns.)"""
    params = list(map(generation.get, columns))
    for i in json_positions:
        if params[i] is not None:
            params[i] = dump_jsonb(params[i])
    return params


def _probe_params(probe: CacheProbe | None) -> tuple[Any, ...]:
    if probe is None:
        return (None, None, None, None)
    return (probe.key, probe.now, probe.oldest, probe.user_id)


def postgresql_params(
    chat_id: str,
    user_id: str,
    title: str | None,
    message: dict[str, Any],
    generation: dict[str, Any],
    probe: CacheProbe | None,
) -> tuple[Any, ...]:
    """The one-step opening's parameters on PostgreSQL (`_postgresql_sql`)."""
    return (
        chat_id,
        user_id,
        title,
        generation["created_at"],
        message["id"],
        dump_json(message.get("metadata", MISSING)),
        # Strings, integers and booleans only, as the append's (`chats._append_params_pg`).
        dump_json_fast(_parts_records(message)),
        *_generation_params(generation, _OPENING_GENERATION_COLUMNS, _OPENING_JSON_POSITIONS),
        *_probe_params(probe),
    )


async def _open_postgresql(
    store: Store,
    chat_id: str,
    user_id: str,
    title: str | None,
    message: dict[str, Any],
    generation: dict[str, Any],
    probe: CacheProbe | None,
    opening: Opening,
) -> tuple[Opened, str | None, bool]:
    """How it opened, the cache probe's hit, and whether the probe's answer came back (not when
    the statement's connection was lost on the way); an "existing" opening's history goes into
    `opening.earlier`."""
    import asyncpg

    params = postgresql_params(chat_id, user_id, title, message, generation, probe)
    sql = _postgresql_sql(pg_parts_narrow(message["parts"]))

    def result(row: Any) -> tuple[Opened, str | None, bool]:
        opened: Opened = "new" if row[0] else "existing" if row[1] else None
        return opened, row[2], opened is not None

    async def run(conn: Any) -> tuple[Opened, str | None, bool]:
        try:
            return result(await conn.fetchrow(sql, *params))
        except asyncpg.UniqueViolationError as exc:
            # A concurrent turn stored the same message id meanwhile: undone, the general path decides.
            if exc.constraint_name not in ("pk_messages", "pk_parts"):
                raise
            return None, None, False

    try:
        async with store.driver(ping=False) as driver:
            opened = await driver.run(run, what="write")
            if opened[0] == "existing":
                # The history on the same connection: no second checkout. (Lost now: the opening
                # stands, and the caller reads the history itself.)
                with contextlib.suppress(ConnectionLost):
                    opening.earlier = await _messages_before(driver, chat_id, message["id"])
            return opened
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
                # "existing" reads the history, which is right for a new chat too (just this message).
                return "existing", None, False
        return await driver.run(run, what="write")


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
) -> tuple[Opened, str | None, bool]:
    # No parameter for a NULL, each timestamp formatted once (`sqlite_rows`).
    _, json_value = _sqlite_binders(store.sa_dialect)
    stamp = stamp_text(store.sa_dialect)
    now = stamp(generation["created_at"])
    part_rows = _sqlite_part_rows(chat_id, user_id, message)

    def generation_row(messages_before: int) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        # `present` of each column's bound value (`_SQLITE_GENERATION_BINDS`), in one loop.
        get = generation.get
        names: list[str] = []
        values: list[Any] = []
        for name, bind in _SQLITE_GENERATION_BINDS:
            if bind == _BIND_REQUEST:
                value = json_value({**generation[name], "messages_before": messages_before})
            elif bind == _BIND_STAMP:
                # The chat's and the message's instant is the generation's own: formatted once.
                value = now if name == "created_at" else stamp(generation[name])
            else:
                value = get(name)
                if value is not None and bind == _BIND_JSON:
                    value = json_value(value)
            if value is not None:
                names.append(name)
                values.append(value)
        return tuple(names), tuple(values)

    # A new chat's labels are its first turn's (`chat_turns.one_step_opening`).
    chat_names, chat_values = present(
        (
            ("id", chat_id),
            ("user_id", user_id),
            ("title", title),
            ("active_generation_id", generation["id"]),
            ("created_at", now),
            ("updated_at", now),
            *((n, None if generation.get(n) is None else json_value(generation[n])) for n in ("tags", "metadata")),
        )
    )
    # Whether it inserted: the statement's row count (sqlite3_changes, which counts no trigger's
    # rows), not a RETURNING: its program and row fetch cost ~26 k instructions (docs/benchmarks.md).
    chat_sql = insert_sql("chats", chat_names, _CHAT_CONSTANTS, " ON CONFLICT (id) DO NOTHING")
    metadata = dump_json(message.get("metadata", MISSING))
    probe_sql = _sqlite_probe_sql()
    probe_params = (
        None if probe is None else (probe.key, stamp(probe.now), stamp(probe.oldest), probe.user_id, probe.user_id)
    )

    def run(db: sqlite3.Connection) -> tuple[Opened, str | None, bool]:
        # On aiosqlite's thread, inside the transaction of a group of writes (`write_in_group`).
        opened: Opened = "new"
        seq, before = 1, 0
        created = db.execute(chat_sql, chat_values).rowcount
        if not created:
            # The user's chat, running no reply, without this message id (see `_postgresql_sql`;
            # here the write lock orders the turns).
            claimed = db.execute(
                "UPDATE chats SET last_seq = last_seq + 1, updated_at = ?, active_generation_id = ? "
                "WHERE id = ? AND user_id = ? AND active_generation_id IS NULL AND tags IS NULL "
                "AND metadata IS NULL AND NOT EXISTS (SELECT 1 FROM messages WHERE chat_id = ? AND id = ?) "
                "RETURNING last_seq",
                (now, generation["id"], chat_id, user_id, chat_id, message["id"]),
            ).fetchall()
            if not claimed:
                raise UndoWrites((None, None, False))
            opened, seq = "existing", claimed[0][0]
            before = db.execute("SELECT count(*) FROM messages WHERE chat_id = ?", (chat_id,)).fetchone()[0]
        if metadata is None:
            db.execute(_USER_MESSAGE_SQL, (chat_id, message["id"], seq, user_id, now))
        else:
            db.execute(_USER_MESSAGE_WITH_METADATA_SQL, (chat_id, message["id"], seq, user_id, metadata, now))
        for part_sql, row in part_rows:
            db.execute(part_sql, row)
        names, values = generation_row(before + 1)
        db.execute(insert_sql("generations", names, _PENDING), values)
        hit = db.execute(probe_sql, probe_params).fetchone()[0] if probe_params is not None else None
        return opened, hit, probe_params is not None

    return await write_in_group(store, run)


@functools.cache
def _sqlite_probe_sql() -> str:
    """The dedup cache's lookup on SQLite (`_PROBE`), its parameters the key, now, oldest and
    the user twice; built once, not at every turn."""
    return "SELECT " + _PROBE.format(key="?", now="?", oldest="?", user="?")


# How `_open_sqlite` binds each pending generation column: as it is, as JSON text, as a
# timestamp's text, or (the request) as JSON with the history's length added.
_BIND_AS_IS, _BIND_JSON, _BIND_STAMP, _BIND_REQUEST = range(4)
_SQLITE_GENERATION_BINDS = tuple(
    (
        name,
        _BIND_REQUEST
        if name == "request"
        else _BIND_JSON
        if name in _JSON_COLUMNS
        else _BIND_STAMP
        if name in ("created_at", "lease_expires_at")
        else _BIND_AS_IS,
    )
    for name in _GENERATION_COLUMNS
)
_CHAT_CONSTANTS = (("visibility", "'private'"), ("last_seq", "1"))
_PENDING = (("status", "'pending'"),)
_USER_MESSAGE_SQL = "INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) VALUES (?, ?, ?, ?, 'user', ?)"
_USER_MESSAGE_WITH_METADATA_SQL = (
    "INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, created_at) VALUES (?, ?, ?, ?, 'user', ?, ?)"
)
_PART_COLUMNS = frozenset(PAGE_PART_COLUMNS)


def _sqlite_part_rows(chat_id: str, user_id: str, message: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """Each part's INSERT (naming only its non-NULL columns, `sqlite_rows`) and parameters: the
    row `part_record` gives, as the SQLite appends write it."""
    rows = []
    for position, part in enumerate(message["parts"]):
        names, values = present_in(part_record(part), _PART_COLUMNS)
        sql = insert_sql("parts", ("chat_id", "message_id", "position", "user_id", *names))
        rows.append((sql, (chat_id, message["id"], position, user_id, *values)))
    return rows


@functools.cache
def _generation_sql() -> str:
    """Parameters: the pending generation's columns (`_GENERATION_COLUMNS`), then the cache
    probe's key, now, oldest and user (`_PROBE`; a NULL key finds nothing). The probe reads the
    statement's snapshot, before the insert: it looks for another generation's entry."""
    casts = {
        "request": "text::jsonb",  # JSON as text: see `_postgresql_sql`
        "reservation": "text::jsonb",
        "tags": "text::jsonb",
        "metadata": "text::jsonb",
        "created_at": "timestamptz",
        "lease_expires_at": "timestamptz",
    }
    values = ", ".join(f"${i + 1}::{casts.get(name, 'varchar')}" for i, name in enumerate(_GENERATION_COLUMNS))
    n = len(_GENERATION_COLUMNS) + 1
    probe = _PROBE.format(
        key=f"${n}::varchar", now=f"${n + 1}::timestamptz", oldest=f"${n + 2}::timestamptz", user=f"${n + 3}::varchar"
    )
    return f"""
WITH new_generation AS (
    INSERT INTO generations (status, {", ".join(_GENERATION_COLUMNS)}) VALUES ('pending', {values})
)
SELECT {probe}
"""


async def open_generation(store: Store, generation: dict[str, Any], probe: CacheProbe | None = None) -> None:
    """Insert the `pending` row of a generation that belongs to no chat (`generation`: its
    values, with no idempotency key: a key's conflict is the general path's to sort out) and
    run the dedup cache's `probe` with it, in one step. A budget's refusal (the insert's
    trigger) raises, with nothing written."""
    if generation.get("idempotency_key") is not None or generation.get("chat_id") is not None:
        raise ValueError("open_generation writes a generation of no chat, without an idempotency key")
    if store.dialect == "postgresql":
        hit, probed = await _open_generation_postgresql(store, generation, probe)
    else:
        hit, probed = await _open_generation_sqlite(store, generation, probe)
    if probed and probe is not None:
        probe.hit, probe.ran = hit, True


async def _open_generation_postgresql(
    store: Store, generation: dict[str, Any], probe: CacheProbe | None
) -> tuple[str | None, bool]:
    params = (*_generation_params(generation), *_probe_params(probe))
    sql = _generation_sql()

    async def run(conn: Any) -> tuple[str | None, bool]:
        return await conn.fetchval(sql, *params), True

    try:
        async with store.driver(ping=False) as driver:
            return await driver.run(run, what="write")
    except ConnectionLost as lost:
        maybe_ran = lost.sent
    # Once more on a pinged connection; if the first try may have committed, its id (minted for
    # this call) tells whether it did.
    async with store.driver() as driver:
        if maybe_ran:
            found = await driver.run(
                lambda conn: conn.fetchval("SELECT EXISTS (SELECT 1 FROM generations WHERE id = $1)", generation["id"]),
                what="read",
            )
            if found:  # the lookup's answer is lost with it: `Dedup.decide` looks again
                return None, False
        return await driver.run(run, what="write")


async def _open_generation_sqlite(
    store: Store, generation: dict[str, Any], probe: CacheProbe | None
) -> tuple[str | None, bool]:
    stamp, json_value = _sqlite_binders(store.sa_dialect)
    row = tuple(
        (None if generation.get(name) is None else json_value(generation[name]))
        if name in _JSON_COLUMNS
        else stamp(generation[name])
        if name in ("created_at", "lease_expires_at")
        else generation.get(name)
        for name in _GENERATION_COLUMNS
    )
    insert_sql = (
        f"INSERT INTO generations (status, {', '.join(_GENERATION_COLUMNS)}) "
        f"VALUES ('pending', {', '.join('?' * len(_GENERATION_COLUMNS))})"
    )
    probe_sql = _sqlite_probe_sql()
    probe_params = (
        None if probe is None else (probe.key, stamp(probe.now), stamp(probe.oldest), probe.user_id, probe.user_id)
    )

    def run(db: sqlite3.Connection) -> tuple[str | None, bool]:
        # On aiosqlite's thread, in a group's transaction (`write_in_group`); the lookup after
        # the insert (and its budget trigger) reads another generation's entry.
        db.execute(insert_sql, row)
        if probe_params is None:
            return None, False
        return db.execute(probe_sql, probe_params).fetchone()[0], True

    return await write_in_group(store, run)
