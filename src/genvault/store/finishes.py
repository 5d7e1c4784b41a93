"""A chat turn's finalize in one step: the generation's final state, the assistant message with
its parts, the chat freed, and the dedup cache's entry, written together.

The chat's `updated_at` is left as the turn's opening set it (a new chat's insert, an existing
chat's claim): a chat sorts in the list by the start of its latest turn, as chat apps move a chat
up when its user sends. So the chat row's update changes `last_seq` and `active_generation_id`
only, no column of any `chats` index (`ix_chats_user_id_updated_at`, the primary key, the title's
search expression), and PostgreSQL can write it as a HOT update: no index entry, the title's
vector not computed again (revision 0031 keeps room on the table's pages for it). SQLite skips
rewriting the list index's entry likewise. The general path (`Engine._finalize`'s transaction:
a record ended elsewhere, a continued message) saves the reply with its generation id, which
leaves `updated_at` too (`chats.append_messages`, `chats.upsert_message`).

This is the common ending of a chat turn (a reply under a new message id, nothing ended it
elsewhere; a budget's reservation is settled by the generations update's own trigger).
Everything hangs on the guarded move of the generation out of `pending`/`streaming`: when the
record is final already (an earlier try of this finalize that committed, a cancel from another
process, the sweeper) or the message id is taken, nothing is written and the caller takes the
general path (`Engine._finalize`'s transaction with the turn's hook), which sorts each of those
out, as before.

- PostgreSQL: one statement in autocommit on the pooled asyncpg connection (`Store.driver`), a
  CTE whose writes all hang on `UPDATE generations … RETURNING` of the active record: one round
  trip instead of seven (ping, BEGIN, generation, reply append, chat freed, cache entry,
  COMMIT). A taken message id fails the messages insert on its primary key and undoes the whole
  statement. Prepared once per connection by asyncpg's statement cache.
- SQLite: the same writes in one hop to aiosqlite's thread, under the store's write lock like any
  write, in a `BEGIN IMMEDIATE` transaction shared with the other writes queued meanwhile
  (`sqlite_groups.write_in_group`: group commit, each write under a savepoint of its own).

A generation of no chat (a `/v1` gateway call, `Vault.complete`) ends the same way with only its
record and the cache entry to write (`finish_generation`).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from genvault._json import dump_json as dump_json_fast
from genvault._json import dump_json_column
from genvault.errors import InvalidRequest
from genvault.store import Store
from genvault.store.chats import check_message_storable
from genvault.store.driver import ConnectionLost
from genvault.store.parts import PAGE_PART_COLUMNS, dump_json, part_record, pg_parts_insert_sql, pg_parts_narrow
from genvault.store.schema import MISSING
from genvault.store.sqlite_groups import UndoWrites, write_in_group
from genvault.store.sqlite_rows import insert_sql, present, present_in, stamp_text

__all__ = ["CacheEntry", "finish_chat_turn", "finish_generation"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """The SQL cache's entry for a finished leader (`SqlCache.entry`), written with its finalize;
    `purge_at`: also drop the entries expired by then (at most once a minute), this one aside."""

    key: str
    generation_id: str
    user_id: str
    expires_at: datetime
    purge_at: datetime | None


# The final record's columns this statement sets, in the order of its parameters (from $2).
# COALESCE for those a finalize gives only sometimes (a copy's source, an estimate's flag): an
# absent value keeps the row's. A JSON value is bound as text and cast in the statement
# (`text::jsonb`): asyncpg binds a text parameter in C, where a `jsonb` one goes through the Python
# encoder SQLAlchemy's dialect gives every connection; PostgreSQL parses the same text either way.
_FINAL_COLUMNS = (
    ("status", "varchar", False),
    ("error", "text", False),
    ("result_text", "text", False),
    ("result_message", "text::jsonb", False),
    ("finish_reason", "varchar", False),
    ("input_tokens", "int", False),
    ("output_tokens", "int", False),
    ("cached_input_tokens", "int", False),
    ("cache_write_tokens", "int", False),
    ("reasoning_tokens", "int", False),
    ("total_tokens", "int", False),
    ("cost_nano_usd", "bigint", False),
    ("unit_prices", "text::jsonb", False),
    ("price_source", "varchar", False),
    ("started_at", "timestamptz", False),
    ("first_token_at", "timestamptz", False),
    ("finished_at", "timestamptz", False),
    ("cached_from", "varchar", True),
    ("saved_nano_usd", "bigint", True),
    ("usage_estimated", "boolean", True),
)
_JSON_COLUMNS = ("result_message", "unit_prices")
_ALLOWED = {name for name, _, _ in _FINAL_COLUMNS}


def _writes_all(values: dict[str, Any]) -> bool:
    """Whether this statement writes every value given. A final column it does not know yet (added
    to `Engine._finalize` later) sends the finalize to the general path, which writes any column,
    rather than dropping the value."""
    unknown = set(values) - _ALLOWED
    if unknown:
        log.warning("finish_chat_turn does not write %s: the finalize takes its transaction", sorted(unknown))
    return not unknown


def _sets() -> list[str]:
    sets = []
    for i, (name, cast, keep) in enumerate(_FINAL_COLUMNS):
        value = f"${i + 2}::{cast}"
        sets.append(f"{name} = COALESCE({value}, {name})" if keep else f"{name} = {value}")
    return sets


# The one-step finalize's first step, shared by a chat turn's and a lone generation's: the guarded
# UPDATE of the record ($1 its id, $2… the final columns) that every later write hangs on.
_FIN = f"""WITH fin AS (
    UPDATE generations SET {", ".join(_sets())}, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = $1::varchar AND status IN ('pending', 'streaming')
    RETURNING id
)"""


def _cache_entry(key: str, entry_user: str, expires: str, purge: str | None) -> str:
    """The one-step finalize's last steps (parameters named by their `$n`): the purge of expired
    cache entries (given `purge`, when it is not NULL) and the record's own entry (when `key` is
    not NULL), both only if `fin` wrote; then the statement's answer, whether it did.

    Without `purge` the statement has no purge step at all: a purge runs at most once a minute,
    and a step that deletes nothing still costs PostgreSQL its executor's setup (a `DELETE` node
    and its scan) in every finalize, so the other finalizes send the statement without it, one
    parameter shorter (both prepared once per connection)."""
    purged = (
        f""", purged AS (
    DELETE FROM cache_entries
    WHERE {purge}::timestamptz IS NOT NULL AND expires_at <= {purge}::timestamptz
      AND key IS DISTINCT FROM {key}::varchar AND EXISTS (SELECT 1 FROM fin)
)"""
        if purge is not None
        else ""
    )
    return f"""{purged}, entry AS (
    INSERT INTO cache_entries (key, generation_id, user_id, expires_at)
    SELECT {key}::varchar, fin.id, {entry_user}::varchar, {expires}::timestamptz FROM fin
    WHERE {key}::varchar IS NOT NULL
    ON CONFLICT (key) DO UPDATE SET generation_id = excluded.generation_id, user_id = excluded.user_id,
                                    expires_at = excluded.expires_at
)
SELECT EXISTS (SELECT 1 FROM fin)
"""


@functools.cache
def _postgresql_sql(purging: bool = True, narrow: bool = False) -> str:
    """`narrow`: the message's parts are all text, reasoning or step-start parts
    (`parts.pg_parts_narrow`, `parts.pg_parts_insert_sql`).

    Parameters: $1 generation id, $2… the final columns (`_FINAL_COLUMNS`), then chat id,
    user id, message id, message metadata (JSON text), the parts (one JSON array of records, as
    the append sends them), then the cache entry's key (NULL: none), user, expiry and, if
    `purging`, the purge time (NULL: no purge; see `_cache_entry`). The chat's owner is compared
    with `IS NOT DISTINCT FROM` (no index condition), so the chat is found by its primary key
    whatever the statistics (see `chats._append_sql`)."""
    n = len(_FINAL_COLUMNS) + 2
    chat, user, message, meta, parts_json = (f"${n + i}" for i in range(5))
    key, entry_user, expires, purge = (f"${n + 5 + i}" for i in range(4))
    now = f"${2 + [c[0] for c in _FINAL_COLUMNS].index('finished_at')}::timestamptz"
    return f"""
{_FIN}, bump AS (
    UPDATE chats SET last_seq = last_seq + 1,
           active_generation_id = CASE WHEN active_generation_id = $1::varchar THEN NULL
                                       ELSE active_generation_id END
    WHERE id = {chat}::varchar AND user_id IS NOT DISTINCT FROM {user}::varchar AND EXISTS (SELECT 1 FROM fin)
    RETURNING last_seq
), new_message AS (
    INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, generation_id, created_at)
    SELECT {chat}::varchar, {message}::varchar, bump.last_seq, {user}::varchar, 'assistant', {meta}::text,
           $1::varchar, {now}
    FROM bump
), new_parts AS (
    {pg_parts_insert_sql(f"{chat}::varchar", f"{user}::varchar", "bump", f"{parts_json}::text::json", narrow=narrow)}
){_cache_entry(key, entry_user, expires, purge if purging else None)}"""


def _parts_json(message: dict[str, Any]) -> str:
    records = [
        {"message_id": message["id"], "position": position, **part_record(part)}
        for position, part in enumerate(message["parts"])
    ]
    return dump_json_fast(records)  # strings, integers and booleans, as the append's records


async def finish_chat_turn(
    store: Store,
    *,
    generation_id: str,
    values: dict[str, Any],
    chat_id: str,
    user_id: str,
    message: dict[str, Any],
    entry: CacheEntry | None,
) -> bool:
    """Finalize the active generation `generation_id` with `values` (`Engine._finalize`'s),
    append `message` (the reply, under an id minted for this turn) to the user's chat, free the
    chat if the generation holds it, and write the cache `entry`, in one step. False, with
    nothing written, when the record is final already, the message cannot be appended (its id
    is taken), or the message cannot be stored as it is: the general path decides those."""
    if not _writes_all(values):
        return False
    try:
        check_message_storable(message)
    except InvalidRequest:
        return False
    if store.dialect == "postgresql":
        return await _finish_postgresql(store, generation_id, values, chat_id, user_id, message, entry)
    return await _finish_sqlite(store, generation_id, values, chat_id, user_id, message, entry)


def postgresql_params(
    generation_id: str,
    values: dict[str, Any],
    chat_id: str,
    user_id: str,
    message: dict[str, Any],
    entry: CacheEntry | None,
) -> tuple[Any, ...]:
    """The one-step finalize's parameters on PostgreSQL (`_postgresql_sql`)."""
    return (
        generation_id,
        *_final_params(values),
        chat_id,
        user_id,
        message["id"],
        dump_json(message.get("metadata", MISSING)),
        _parts_json(message),
        *_entry_params(entry),
    )


async def _finish_postgresql(
    store: Store,
    generation_id: str,
    values: dict[str, Any],
    chat_id: str,
    user_id: str,
    message: dict[str, Any],
    entry: CacheEntry | None,
) -> bool:
    import asyncpg

    params = postgresql_params(generation_id, values, chat_id, user_id, message, entry)
    sql = _postgresql_sql(entry is not None and entry.purge_at is not None, pg_parts_narrow(message["parts"]))

    async def run(conn: Any) -> bool:
        try:
            return bool(await conn.fetchval(sql, *params))
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name not in ("pk_messages", "pk_parts"):
                raise
            return False  # the reply's id is taken: undone, the general path says what to do

    try:
        async with store.driver(ping=False) as driver:
            return await driver.run(run, what="write")
    except ConnectionLost:
        # It may have committed: the general path finds the record final then, and keeps it.
        # Or not: the general path writes it. Either way once more there, not here.
        return False


_SQLITE_TIMES = ("started_at", "first_token_at", "finished_at")


_FINAL_NAMES = tuple(name for name, _, _ in _FINAL_COLUMNS)


@functools.cache
def _sqlite_binders_by_column(dialect: Any) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """The final columns bound otherwise than as they are on SQLite, by position: the JSON
    values (`dump_json_column`), and the timestamps as their stored text (`sqlite_rows.stamp_text`)."""
    stamp = stamp_text(dialect)
    # The JSON values as `dump_json_column` writes them: the value SQLAlchemy's `JSON` bind
    # (`json.dumps`) writes, in fewer instructions (docs/benchmarks.md, "finloop").
    return tuple(
        (index, dump_json_column if name in _JSON_COLUMNS else stamp)
        for index, name in enumerate(_FINAL_NAMES)
        if name in _JSON_COLUMNS or name in _SQLITE_TIMES
    )


@functools.lru_cache(maxsize=64)
def _sqlite_final_sql(nulls: tuple[bool, ...]) -> str:
    """The guarded UPDATE of the record to its final state, for the final values of which those
    flagged in `nulls` are None: those are written as `NULL` (no parameter; `sqlite_rows`), or,
    for a column kept when no value is given (the COALESCE of `_FINAL_COLUMNS`), left out.
    Whether it wrote is its row count (sqlite3_changes: no trigger's rows), not a RETURNING,
    whose program and row fetch cost ~26 k instructions a statement (docs/benchmarks.md, litewriter)."""
    sets = []
    for (name, _, keep), null in zip(_FINAL_COLUMNS, nulls, strict=True):
        if not null:
            sets.append(f"{name} = ?")
        elif not keep:
            sets.append(f"{name} = NULL")
    return (
        f"UPDATE generations SET {', '.join(sets)}, lease_owner = NULL, lease_expires_at = NULL "
        "WHERE id = ? AND status IN ('pending', 'streaming')"
    )


# The chat's seq bumped and the chat freed; `updated_at` left as the turn's opening set it.
_SQLITE_CHAT_SQL = (
    "UPDATE chats SET last_seq = last_seq + 1, active_generation_id = "
    "CASE WHEN active_generation_id = ? THEN NULL ELSE active_generation_id END "
    "WHERE id = ? AND user_id = ?"
)

_ASSISTANT_MESSAGE = (("seq", "(SELECT last_seq FROM chats WHERE id = ?)"), ("role", "'assistant'"))


async def _finish_sqlite(
    store: Store,
    generation_id: str,
    values: dict[str, Any],
    chat_id: str,
    user_id: str,
    message: dict[str, Any],
    entry: CacheEntry | None,
) -> bool:
    stamp = stamp_text(store.sa_dialect)
    bound = _sqlite_bound(store, values)
    final_sql, final_params = _sqlite_final_statement(generation_id, bound)
    now = bound[_FINISHED_AT]  # the finalize's instant, as the record's `finished_at` holds it
    part_rows = []
    for position, part in enumerate(message["parts"]):
        names, row = present_in(part_record(part), _PART_COLUMNS)
        part_rows.append(
            (
                insert_sql("parts", ("chat_id", "message_id", "position", "user_id", *names)),
                (chat_id, message["id"], position, user_id, *row),
            )
        )
    metadata = dump_json(message.get("metadata", MISSING))
    message_names, message_values = present(
        (
            ("chat_id", chat_id),
            ("id", message["id"]),
            ("user_id", user_id),
            ("metadata", metadata),
            ("generation_id", generation_id),
            ("created_at", now),
        )
    )
    # Its seq, the chat's `last_seq` just bumped, read by the insert itself (its first parameter).
    message_sql = insert_sql("messages", message_names, _ASSISTANT_MESSAGE)
    message_row = (chat_id, *message_values)

    def run(db: sqlite3.Connection) -> bool:
        # On aiosqlite's thread, inside the transaction of a group of writes (`write_in_group`).
        try:
            if not db.execute(final_sql, final_params).rowcount:
                return False  # nothing written
            bumped = db.execute(_SQLITE_CHAT_SQL, (generation_id, chat_id, user_id)).rowcount
            if bumped:  # else the chat was deleted while the reply ran: the record alone
                db.execute(message_sql, message_row)
                for part_sql, part_row in part_rows:
                    db.execute(part_sql, part_row)
            if entry is not None:
                _sqlite_entry(db, entry, generation_id, stamp)
        except sqlite3.IntegrityError:
            raise UndoWrites(False) from None  # the reply's id is taken: the general path says what to do
        return True

    return await write_in_group(store, run)


_PART_COLUMNS = frozenset(PAGE_PART_COLUMNS)
_FINISHED_AT = [name for name, _, _ in _FINAL_COLUMNS].index("finished_at")


@functools.cache
def _generation_sql(purging: bool = True) -> str:
    """Parameters: $1 generation id, $2… the final columns (`_FINAL_COLUMNS`), then the cache
    entry's key (NULL: none), user, expiry and, if `purging`, the purge time (NULL: no purge)."""
    n = len(_FINAL_COLUMNS) + 2
    key, entry_user, expires, purge = (f"${n + i}" for i in range(4))
    return f"""
{_FIN}{_cache_entry(key, entry_user, expires, purge if purging else None)}"""


def _entry_params(entry: CacheEntry | None) -> tuple[Any, ...]:
    """The cache entry's parameters: key, user, expiry, and the purge time when there is one
    (the statement without a purge step takes one parameter less)."""
    if entry is None:
        return (None, None, None)
    if entry.purge_at is None:
        return (entry.key, entry.user_id, entry.expires_at)
    return (entry.key, entry.user_id, entry.expires_at, entry.purge_at)


async def finish_generation(
    store: Store, *, generation_id: str, values: dict[str, Any], entry: CacheEntry | None
) -> bool:
    """Finalize the active generation `generation_id` (of no chat) with `values`
    (`Engine._finalize`'s) and write the cache `entry`, in one step. False, with nothing
    written, when the record is final already: the general path decides then."""
    if not _writes_all(values):
        return False
    if store.dialect == "postgresql":
        params = (
            generation_id,
            *_final_params(values),
            *_entry_params(entry),
        )
        sql = _generation_sql(purging=entry is not None and entry.purge_at is not None)

        async def run(conn: Any) -> bool:
            return bool(await conn.fetchval(sql, *params))

        try:
            async with store.driver(ping=False) as driver:
                return await driver.run(run, what="write")
        except ConnectionLost:
            return False  # committed or not, the general path finds out (see `_finish_postgresql`)
    final_sql, final_params = _sqlite_final(store, generation_id, values)
    stamp = stamp_text(store.sa_dialect)

    def write(db: sqlite3.Connection) -> bool:
        # In a group's transaction (`write_in_group`).
        if not db.execute(final_sql, final_params).rowcount:
            return False  # nothing written
        if entry is not None:
            _sqlite_entry(db, entry, generation_id, stamp)
        return True

    return await write_in_group(store, write)


_FINAL_NAMES = tuple(name for name, _, _ in _FINAL_COLUMNS)
_JSON_POSITIONS = tuple(_FINAL_NAMES.index(name) for name in _JSON_COLUMNS)


def _final_params(values: dict[str, Any]) -> list[Any]:
    """The final columns' parameters, in `_FINAL_COLUMNS`' order: a JSON column's text (None as
    JSON `null`), else the value. The JSON through orjson (`_json.dump_json`), as the checkpoint
    writer writes the same `result_message` while the reply streams: ~15x cheaper than
    `json.dumps` for a short reply's message (docs/benchmarks.md, "pgloop"); PostgreSQL reads
    the same `jsonb` value from either text."""
    params = list(map(values.get, _FINAL_NAMES))
    for i in _JSON_POSITIONS:
        params[i] = dump_json_fast(params[i])
    return params


def _sqlite_final(store: Store, generation_id: str, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The guarded UPDATE of the record to its final state, and its parameters, for SQLite."""
    return _sqlite_final_statement(generation_id, _sqlite_bound(store, values))


def _sqlite_bound(store: Store, values: dict[str, Any]) -> list[Any]:
    """The final columns' values as SQLite binds them, in `_FINAL_COLUMNS`' order."""
    get = values.get
    bound = [get(name) for name in _FINAL_NAMES]
    for index, bind in _sqlite_binders_by_column(store.sa_dialect):
        bound[index] = bind(bound[index])
    return bound


def _sqlite_final_statement(generation_id: str, bound: list[Any]) -> tuple[str, tuple[Any, ...]]:
    sql = _sqlite_final_sql(tuple([value is None for value in bound]))
    return sql, (*[value for value in bound if value is not None], generation_id)


def _sqlite_entry(db: sqlite3.Connection, entry: CacheEntry, generation_id: str, stamp: Any) -> None:
    """The SQL cache's entry (and, at most once a minute, the purge of expired ones)."""
    if entry.purge_at is not None:
        db.execute("DELETE FROM cache_entries WHERE expires_at <= ? AND key != ?", (stamp(entry.purge_at), entry.key))
    db.execute(
        "INSERT INTO cache_entries (key, generation_id, user_id, expires_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET generation_id = excluded.generation_id, "
        "user_id = excluded.user_id, expires_at = excluded.expires_at",
        (entry.key, generation_id, entry.user_id, stamp(entry.expires_at)),
    )
