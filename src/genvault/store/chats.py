"""Chats, their messages and parts: the normalized store for AI SDK v5 UIMessages.

Invariants:
- Every operation names the acting user and touches only that user's chats (a stranger's chat is
  `NotFound`, as if it did not exist).
- A message's `seq` comes from `UPDATE chats SET last_seq = last_seq + n … RETURNING` inside the
  append transaction: the chat row's lock orders concurrent appends, so seqs never collide,
  never reorder, and have no gaps.
- Messages go in as validated UIMessage JSON (`genvault.messages`) and come out as the identical
  JSON. Saving a message that is already stored unchanged writes nothing; saving a changed one
  replaces its parts in the same transaction.
- Functions take a connection; the caller's transaction makes a multi-step change atomic.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault._json import dump_json as dump_json_fast
from genvault.errors import Conflict, InvalidRequest, NotFound, StorageError
from genvault.records import Page
from genvault.store.cursors import decode_cursor, encode_cursor
from genvault.store.db import insert_for
from genvault.store.driver import PooledDriver
from genvault.store.parts import (
    PAGE_PART_COLUMNS,
    PART_BOOL,
    PART_JSON,
    dump_json,
    load_json,
    load_json_many,
    part_json_sql,
    part_recipe,
    part_record,
    part_to_row,
    pg_parts_insert_sql,
    pg_parts_narrow,
    row_to_part,
)
from genvault.store.schema import MISSING, JSONText, chats, generations, messages, parts
from genvault.store.sqlite_adapter import SqliteReader
from genvault.store.text import check_storable

__all__ = [
    "Chat",
    "MessagePage",
    "append_alone",
    "append_messages",
    "appended_seqs",
    "create_chat",
    "delete_chat",
    "delete_message",
    "ensure_chat",
    "get_chat",
    "get_message",
    "list_chats",
    "load_messages",
    "open_chat",
    "truncate_after",
    "update_chat",
    "upsert_message",
]

Visibility = Literal["private", "link", "public"]
MAX_PAGE = 1000


class Chat(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    title: str | None
    visibility: Visibility
    last_seq: int
    active_generation_id: str | None
    created_at: datetime
    updated_at: datetime
    # The caller's labels (`genvault.labels`); a turn's generation carries them too.
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def url(self) -> str:
        return f"/chat/{self.id}"


class MessagePage(BaseModel):
    """Messages in chat order (oldest first) and whether more exist on either side."""

    messages: list[dict[str, Any]]
    has_before: bool
    has_after: bool


def _now() -> datetime:
    return datetime.now(UTC)


# -- chats ---------------------------------------------------------------------------------------


async def create_chat(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    *,
    title: str | None = None,
    visibility: Visibility = "private",
    labels: Mapping[str, Any] | None = None,
) -> Chat:
    """`labels`: checked `tags` / `metadata` values (`genvault.labels.checked`)."""
    _check_chat_id(chat_id)
    chat = await _insert_chat(conn, chat_id, user_id, title=title, visibility=visibility, labels=labels)
    if chat is None:
        raise Conflict(f"chat id {chat_id!r} is already in use; choose a new id")
    return chat


def _check_chat_id(chat_id: str) -> None:
    if not chat_id or len(chat_id) > 200:
        raise InvalidRequest("chat id must be 1 to 200 characters")
    check_storable(chat_id, "the chat id")


def check_chat_fields(chat_id: str, title: str | None) -> None:
    """What creating a chat checks of its id and title (`InvalidRequest`), before any write."""
    _check_chat_id(chat_id)
    _check_title(title)


def _check_title(title: str | None) -> None:
    if title is not None:
        check_storable(title, "the chat title")


# The statements of every chat turn, built once (values as execution parameters; see the same
# note in `store/generations.py`).
_CHAT_BY_ID = select(chats).where(chats.c.id == bindparam("chat_id"))
# A turn's read of its chat locks the row until the turn's first transaction ends (PostgreSQL; a
# SQLite writer holds the database lock already): a second turn of the same chat waits, then
# reads the active generation the first one set, so "still generating" is checked and claimed
# in one step.
_CHAT_TO_CLAIM = _CHAT_BY_ID.with_for_update()
_SET_ACTIVE = update(chats).where(chats.c.id == bindparam("chat_id"))
# Frees the chat only if this turn still holds it: one statement, a no-op for a deleted chat.
_FREE = (
    update(chats)
    .where(chats.c.id == bindparam("chat_id"), chats.c.active_generation_id == bindparam("holder"))
    .values(active_generation_id=None)
)


@functools.cache
def _insert_chat_statement(dialect: str) -> Any:
    return insert_for(dialect, chats).on_conflict_do_nothing(index_elements=[chats.c.id]).returning(*chats.c)


async def _insert_chat(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    *,
    title: str | None,
    visibility: Visibility = "private",
    labels: Mapping[str, Any] | None = None,
) -> Chat | None:
    """Insert the chat; the row comes back from `RETURNING`, as a read after it would give it.
    None if the id is taken, also by a transaction that committed it while this one waited (a
    plain INSERT would fail on the primary key there, with a storage error instead of an answer)."""
    _check_title(title)
    now = _now()
    values = {
        "id": chat_id,
        "user_id": user_id,
        "title": title,
        "visibility": visibility,
        "last_seq": 0,
        "created_at": now,
        "updated_at": now,
        "tags": (labels or {}).get("tags"),
        "metadata": (labels or {}).get("metadata"),
    }
    row = (await conn.execute(_insert_chat_statement(conn.dialect.name), values)).mappings().first()
    return None if row is None else Chat.model_validate(dict(row))


async def _chat_row(conn: AsyncConnection, chat_id: str, *, lock: bool = False) -> RowMapping | None:
    statement = _CHAT_TO_CLAIM if lock else _CHAT_BY_ID
    return (await conn.execute(statement, {"chat_id": chat_id})).mappings().first()


async def ensure_chat(conn: AsyncConnection, chat_id: str, user_id: str, *, title: str | None = None) -> Chat:
    """The user's chat with this id, created if new. A stranger's id is a `Conflict`."""
    return (await open_chat(conn, chat_id, user_id, title=title))[0]


async def open_chat(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    *,
    title: str | None = None,
    labels: Mapping[str, Any] | None = None,
) -> tuple[Chat, bool]:
    """`ensure_chat`, and whether the chat was created just now (so it holds no messages yet;
    `labels` are its labels then). The chat row stays locked until the caller's transaction ends
    (`_CHAT_TO_CLAIM`)."""
    _check_chat_id(chat_id)
    row = await _chat_row(conn, chat_id, lock=True)
    if row is None:
        chat = await _insert_chat(conn, chat_id, user_id, title=title, labels=labels)
        if chat is not None:
            return chat, True
        # Another transaction created it after our read (two first turns of one new chat at
        # once): take it as the existing chat it now is.
        row = await _chat_row(conn, chat_id, lock=True)
        if row is None:  # and deleted again since: nothing of this request was kept
            raise Conflict(f"chat {chat_id!r} was created and deleted by other requests meanwhile; try again")
    if row["user_id"] != user_id:
        raise Conflict(f"chat id {chat_id!r} is already in use; choose a new id")
    return Chat.model_validate(dict(row)), False


async def get_chat(conn: AsyncConnection, chat_id: str, user_id: str | None, *, for_reading: bool = False) -> Chat:
    """The chat if `user_id` owns it — or, with `for_reading`, if it is shared by link or public.
    `user_id=None` skips the check (admin and internal use)."""
    row = await _chat_row(conn, chat_id)
    if row is None:
        raise NotFound(f"no chat {chat_id!r}")
    chat = Chat.model_validate(dict(row))
    shared = for_reading and chat.visibility in ("link", "public")
    if user_id is not None and chat.user_id != user_id and not shared:
        raise NotFound(f"no chat {chat_id!r}")
    return chat


async def update_chat(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    *,
    title: Any = MISSING,  # str, None (clear it), or MISSING (keep it)
    visibility: Visibility | None = None,
    labels: Mapping[str, Any] | None = None,  # checked `tags` / `metadata` to replace
) -> Chat:
    """Rename (`title`; None clears it), share (`visibility`) or relabel (`labels`) the chat; at
    least one of them."""
    if title is MISSING and visibility is None and not labels:
        raise InvalidRequest("nothing to change: give a title, a visibility, tags or metadata")
    if isinstance(title, str) and not title.strip():
        raise InvalidRequest("the title is blank; give some text, or null to clear it")
    if title is not MISSING and title is not None and not isinstance(title, str):
        raise InvalidRequest("the title must be a string or null")
    if visibility is not None and visibility not in ("private", "link", "public"):
        raise InvalidRequest(f"visibility must be private, link or public, got {visibility!r}")
    await get_chat(conn, chat_id, user_id)
    values: dict[str, Any] = {"updated_at": _now(), **(labels or {})}
    if title is not MISSING:
        _check_title(title)
        values["title"] = title
    if visibility is not None:
        values["visibility"] = visibility
    await conn.execute(update(chats).where(chats.c.id == chat_id).values(**values))
    return await get_chat(conn, chat_id, user_id)


async def set_active_generation(conn: AsyncConnection, chat_id: str, generation_id: str | None) -> None:
    await conn.execute(_SET_ACTIVE, {"chat_id": chat_id, "active_generation_id": generation_id})


async def free_chat(conn: AsyncConnection, chat_id: str, generation_id: str) -> None:
    """Clear the chat's active generation if it is still `generation_id` (a turn ending)."""
    await conn.execute(_FREE, {"chat_id": chat_id, "holder": generation_id})


async def delete_chat(conn: AsyncConnection, chat_id: str, user_id: str) -> None:
    """Delete the chat with its messages, parts and generations (cascade)."""
    await get_chat(conn, chat_id, user_id)
    # Explicit deletes rather than relying on ON DELETE CASCADE alone: SQLite enforces foreign
    # keys only when the connection asked for it, and a restore tool might not have.
    await conn.execute(delete(parts).where(parts.c.chat_id == chat_id))
    await conn.execute(delete(messages).where(messages.c.chat_id == chat_id))
    await conn.execute(delete(generations).where(generations.c.chat_id == chat_id))
    await conn.execute(delete(chats).where(chats.c.id == chat_id))


async def list_chats(
    conn: AsyncConnection,
    user_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    among: ColumnElement[bool] | None = None,
) -> Page[Chat]:
    """The user's chats, most recently updated first (`among`: only those meeting it, such as a
    search's matches): by `updated_at`, which a turn sets when it starts, not when its reply ends."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    query = select(chats).where(chats.c.user_id == user_id)
    if among is not None:
        query = query.where(among)
    if cursor is not None:
        updated_at, chat_id = decode_cursor(cursor)
        query = query.where(tuple_(chats.c.updated_at, chats.c.id) < tuple_(updated_at, chat_id))
    query = query.order_by(chats.c.updated_at.desc(), chats.c.id.desc()).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    items = [Chat.model_validate(dict(row)) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return Page[Chat](items=items, next_cursor=next_cursor)


# -- messages ------------------------------------------------------------------------------------


async def _insert_parts(conn: AsyncConnection, chat_id: str, user_id: str, batch: Sequence[dict[str, Any]]) -> None:
    """The parts of these messages, in one statement."""
    rows = [
        {**part_to_row(part), "chat_id": chat_id, "message_id": message["id"], "position": position, "user_id": user_id}
        for message in batch
        for position, part in enumerate(message["parts"])
    ]
    if rows:
        await conn.execute(insert(parts), rows)


def check_message_storable(message: dict[str, Any]) -> None:
    """`InvalidRequest` if a string in the message (keys included) cannot be stored."""
    check_storable(message, f"message {message['id']!r}")


def _check_append(new_messages: Sequence[dict[str, Any]]) -> None:
    for message in new_messages:
        check_message_storable(message)
    _check_unique_ids(new_messages)


def _check_unique_ids(new_messages: Sequence[dict[str, Any]]) -> None:
    ids = [m["id"] for m in new_messages]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("the same message id appears twice in one append")


def _message_values(message: dict[str, Any]) -> dict[str, Any]:
    return {"role": message["role"], "metadata": message.get("metadata", MISSING)}


async def append_messages(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    new_messages: Sequence[dict[str, Any]],
    *,
    generation_id: str | None = None,
) -> list[int]:
    """Append messages in order, atomically; returns their seqs. An id already in the chat is a
    `Conflict` (use `upsert_message` to save a message that may exist). The chat's `updated_at`
    moves to now, except for a reply's save (`generation_id` given): a chat sorts by the start
    of its latest turn, which set it already (`store/finishes.py`)."""
    if not new_messages:
        return []
    _check_append(new_messages)
    append = _append_postgresql if conn.dialect.name == "postgresql" else _append_sqlite
    first = await append(conn, chat_id, user_id, new_messages, generation_id)
    return list(range(first, first + len(new_messages)))


async def _append_sqlite(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    new_messages: Sequence[dict[str, Any]],
    generation_id: str | None,
) -> int:
    """The SQLite append inside the caller's transaction, on the aiosqlite connection itself:
    three statements (reserve the seqs, insert the messages, insert the parts), each one hop to
    the connection's thread, instead of SQLAlchemy's cursor, execute, fetch and close hops and
    its per-statement compilation (a turn was 14 hops, and most of its CPU). The values are the
    PostgreSQL append's (`_message_params`, `_part_records`), as rows; timestamps bound by the
    column type's own processor, as the Core path binds them. Returns the first seq."""
    (_, _, count, now, ids, roles, metadata, generation_ids) = _message_params(
        chat_id, user_id, new_messages, generation_id
    )
    records = _part_records(new_messages)
    stamp = _sqlite_stamp(conn.dialect)(now)
    driver: Any = (await conn.get_raw_connection()).driver_connection
    touch, touched = ("", ()) if generation_id is not None else (", updated_at = ?", (stamp,))
    try:
        row = (
            await driver.execute_fetchall(
                f"UPDATE chats SET last_seq = last_seq + ?{touch} WHERE id = ? AND user_id = ? "
                "RETURNING last_seq, (SELECT id FROM messages WHERE chat_id = ? "
                f"AND id IN ({', '.join('?' * count)}) LIMIT 1)",
                (count, *touched, chat_id, user_id, chat_id, *ids),
            )
        )[:1]
        if not row:
            raise NotFound(f"no chat {chat_id!r}")
        last_seq, taken = row[0]
        if taken is not None:
            raise Conflict(f"message {taken!r} is already in chat {chat_id!r}")
        first: int = int(last_seq) - count + 1
        await driver.executemany(
            "INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, generation_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (chat_id, message_id, first + i, user_id, role, meta, generation, stamp)
                for i, (message_id, role, meta, generation) in enumerate(
                    zip(ids, roles, metadata, generation_ids, strict=True)
                )
            ],
        )
        if records:
            await driver.executemany(
                f"INSERT INTO parts (chat_id, message_id, position, user_id, {', '.join(PAGE_PART_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (4 + len(PAGE_PART_COLUMNS)))})",
                [(chat_id, r["message_id"], r["position"], user_id, *map(r.get, PAGE_PART_COLUMNS)) for r in records],
            )
    except sqlite3.Error as exc:  # the caller's transaction rolls back
        raise StorageError(f"database write failed: {exc}") from exc
    return first


@functools.cache
def _sqlite_stamp(dialect: Any) -> Any:
    """How SQLAlchemy binds a `UTCDateTime` on SQLite (its stored text), as a function."""
    return messages.c.created_at.type.bind_processor(dialect)


_append_sql_cache: dict[tuple[bool, bool, bool], str] = {}


async def _append_postgresql(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    new_messages: Sequence[dict[str, Any]],
    generation_id: str | None,
) -> int:
    """`append_messages` on PostgreSQL, in one statement (`_append_sql`); returns the first seq.
    Sent as driver SQL with positional parameters (message arrays, the parts as one JSON text):
    nothing for SQLAlchemy to compile or process."""
    params = _append_params_pg(chat_id, user_id, new_messages, generation_id)
    statement = _append_statement(touch=generation_id is None, narrow=pg_parts_narrow(_parts_of(new_messages)))
    row: Any = (await conn.exec_driver_sql(statement, params)).first()
    return _first_seq(row, chat_id, len(new_messages))


async def append_alone(
    conn: PooledDriver,
    chat_id: str,
    user_id: str,
    new_messages: Sequence[dict[str, Any]],
    *,
    storable: bool = False,
) -> list[int]:
    """`append_messages` on its own, on PostgreSQL: the one statement, atomic by itself, in
    autocommit straight on asyncpg (`Store.driver`): a single round trip. Raises
    `store.driver.ConnectionLost` if the connection was or went dead. `storable`: the caller
    has checked these very messages with `plain_json` (so `check_storable` would pass)."""
    if not new_messages:
        return []
    if storable:
        _check_unique_ids(new_messages)
    else:
        _check_append(new_messages)
    import asyncpg

    params = _alone_params(chat_id, user_id, new_messages)
    sql = _ALONE_SQL[pg_parts_narrow(_parts_of(new_messages))]

    async def run(driver: Any) -> Any:
        try:
            return await driver.fetchrow(sql, *params)
        except asyncpg.UniqueViolationError as exc:
            # An id is taken: the messages or the parts insert (whichever PostgreSQL ran
            # first) hit its primary key, and the statement, seq reservation included, is
            # undone. (A parts row can only clash if its message is already in the chat.)
            if exc.constraint_name not in ("pk_messages", "pk_parts"):
                raise
            ids = [m["id"] for m in new_messages]
            taken = await driver.fetchval(f"SELECT {_TAKEN_ID.format(chat='$1', ids='$2')}", chat_id, ids)
            which = f"message {taken!r}" if taken is not None else "a message of this append"
            raise Conflict(f"{which} is already in chat {chat_id!r}") from exc

    row = await conn.run(run, what="write")
    if row is None:
        # The chat row was not bumped: no such chat of this user's (a taken id fails the
        # statement on a primary key instead, above).
        raise NotFound(f"no chat {chat_id!r}")
    first = int(row[0]) - len(new_messages) + 1
    return list(range(first, first + len(new_messages)))


async def appended_seqs(
    conn: AsyncConnection, chat_id: str, user_id: str, new_messages: Sequence[dict[str, Any]]
) -> list[int] | None:
    """The seqs of these messages if the chat already holds exactly them, as one append
    would have stored them (same ids, consecutive seqs in this order, same JSON, no generation),
    else None. How a retried append whose first try may have committed tells success apart from
    a real conflict."""
    ids = [m["id"] for m in new_messages]
    rows = (
        await conn.execute(
            select(messages.c.id, messages.c.seq, messages.c.generation_id)
            .join(chats, chats.c.id == messages.c.chat_id)
            .where(messages.c.chat_id == chat_id, messages.c.id.in_(ids), chats.c.user_id == user_id)
            .order_by(messages.c.seq)
        )
    ).all()
    seqs = [int(r.seq) for r in rows]
    if [r.id for r in rows] != ids or any(r.generation_id is not None for r in rows):
        return None
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        return None
    if await _load_message_rows(conn, chat_id, ids) != list(new_messages):
        return None
    return seqs


def _append_statement(*, check_ids: bool = True, touch: bool = True, narrow: bool = False) -> str:
    sql = _append_sql_cache.get((check_ids, touch, narrow))
    if sql is None:
        sql = _append_sql(check_ids=check_ids, touch=touch, narrow=narrow)
        _append_sql_cache[check_ids, touch, narrow] = sql
    return sql


def _parts_of(new_messages: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (part for m in new_messages for part in m["parts"])


def _message_params(
    chat_id: str, user_id: str, new_messages: Sequence[dict[str, Any]], generation_id: str | None
) -> tuple[Any, ...]:
    """The append's values for its messages: chat id, user id, count, now, then one array per
    message column."""
    return (
        chat_id,
        user_id,
        len(new_messages),
        _now(),
        [m["id"] for m in new_messages],
        [m["role"] for m in new_messages],
        [dump_json(m.get("metadata", MISSING)) for m in new_messages],
        [generation_id if m["role"] == "assistant" else None for m in new_messages],
    )


def _part_records(new_messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every part of the messages as its non-NULL columns by name (`part_record`), with its
    message id and position."""
    return [
        {"message_id": m["id"], "position": position, **part_record(part)}
        for m in new_messages
        for position, part in enumerate(m["parts"])
    ]


def _append_params_pg(
    chat_id: str, user_id: str, new_messages: Sequence[dict[str, Any]], generation_id: str | None
) -> tuple[Any, ...]:
    """The PostgreSQL append's parameters: the messages as arrays, the parts as one JSON array
    of records (`json_populate_recordset`): asyncpg encodes one string instead of checking and
    encoding some 200 array elements, most of them NULL, on every turn. The records hold only
    strings (JSON columns already as their text), integers and booleans, which orjson writes as
    `json.dumps` does in value (`_json.dump_json`: ~10x faster; an integer beyond 64 bits goes
    to `json.dumps`)."""
    parts_json = dump_json_fast(_part_records(new_messages))
    return (*_message_params(chat_id, user_id, new_messages, generation_id), parts_json)


def _first_seq(row: Any, chat_id: str, count: int) -> int:
    """The first seq from the append statement's result row, or what went wrong."""
    assert row is not None  # the final SELECT always returns one row
    first_after, taken, found = row
    if first_after is None:
        if not found:
            raise NotFound(f"no chat {chat_id!r}")
        raise Conflict(f"message {taken!r} is already in chat {chat_id!r}")
    return int(first_after) - count + 1


def _append_sql(*, check_ids: bool, touch: bool = True, narrow: bool = False) -> str:
    """The PostgreSQL append as one statement (so a turn is BEGIN, this, COMMIT: three round
    trips instead of five). In order: `bump` reserves the seqs on the chat row, locking it like
    `_append_sqlite` (no row: not the user's chat — or, with `check_ids`, an id is already in it);
    the messages are inserted from arrays (`unnest`) and their parts from one JSON array of
    records (`json_populate_recordset` over the `parts` row type: `_append_params_pg`), only if
    `bump` returned its row; the final SELECT reports the first seq, or what went wrong (its subqueries run only when
    `bump` returned nothing). The parts' foreign key to their messages is checked at the end of
    the statement, after both inserts. Parameters: $1 chat id, $2 user id, $3 message count,
    $4 now, $5–$8 message arrays, $9 the parts as JSON.

    Without `check_ids` a taken id fails the messages insert on the primary key instead: the
    whole statement is undone, the seqs too. That is for a statement of its own (autocommit),
    where nothing else is lost with it; the up-front check is an extra probe of the chat's
    messages, and without planner statistics (a new table, autovacuum off) PostgreSQL probes
    the `(chat_id, seq)` index and filters every row of the chat.

    Without `touch` the bump leaves `updated_at` (a reply's save: its turn's start set it).

    The owner is checked as `IS NOT DISTINCT FROM` (the same test: `user_id` is never NULL), which
    is no index condition: so the chat row is found by its primary key. Without statistics the
    planner costs `user_id = $2` like `id = $1`, and the generic plan a pooled connection keeps
    could look the chat up through `(user_id, updated_at)` and filter every chat of the user
    (`tests/test_pg_turn_plans.py`; the opening and the finalize do the same)."""
    id_check = (
        "\n      AND NOT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1::varchar AND id = ANY($5::varchar[]))"
        if check_ids
        else ""
    )
    return f"""
WITH bump AS (
    UPDATE chats SET last_seq = last_seq + $3::bigint{", updated_at = $4::timestamptz" if touch else ""}
    WHERE id = $1::varchar AND user_id IS NOT DISTINCT FROM $2::varchar{id_check}
    RETURNING last_seq
), new_messages AS (
    INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, generation_id, created_at)
    SELECT $1::varchar, m.id, bump.last_seq - $3::bigint + m.ord, $2::varchar, m.role, m.metadata,
           m.generation_id, $4::timestamptz
    FROM bump,
         unnest($5::varchar[], $6::varchar[], $7::text[], $8::varchar[]) WITH ORDINALITY
         AS m(id, role, metadata, generation_id, ord)
), new_parts AS (
    {pg_parts_insert_sql("$1::varchar", "$2::varchar", "bump", "$9::json", narrow=narrow)}
)
SELECT last_seq,
       CASE WHEN last_seq IS NULL THEN {_TAKEN_ID.format(chat="$1", ids="$5")} END,
       CASE WHEN last_seq IS NULL THEN EXISTS (
           SELECT 1 FROM chats WHERE id = $1::varchar AND user_id IS NOT DISTINCT FROM $2::varchar) END
FROM (SELECT (SELECT last_seq FROM bump) AS last_seq) AS result
"""


def _alone_params(chat_id: str, user_id: str, new_messages: Sequence[dict[str, Any]]) -> tuple[Any, ...]:
    """`_ALONE_SQL`'s parameters: chat id, user id, message count, now, then the messages and
    their parts as two JSON arrays of records (each message's id, role, metadata text and
    place `i`, 1-based; the parts as `_part_records`). Four message arrays cost asyncpg an
    abstract-base-class `isinstance` check per array and element (24 a turn, most of its
    binding); two strings orjson writes (`_json.dump_json`) cost next to nothing."""
    records = [
        {"id": m["id"], "role": m["role"], "metadata": dump_json(m.get("metadata", MISSING)), "i": i}
        for i, m in enumerate(new_messages, 1)
    ]
    return (
        chat_id,
        user_id,
        len(new_messages),
        _now(),
        dump_json_fast(records),
        dump_json_fast(_part_records(new_messages)),
    )


# `append_alone`'s statement, the one append in autocommit: `_append_sql(check_ids=False)`
# with the messages as JSON records too ($5; their parts $6), no generation, and a final SELECT
# of the bumped `last_seq` alone: no row when the chat is not the user's (the only way the bump
# finds nothing here, as a taken id fails the statement on a primary key). The other variant's
# reporting subqueries never ran on success, but PostgreSQL initialized their plan nodes (an
# index scan, a limit, function and sequential scans, four InitPlans) at every execution.
def _alone_sql(narrow: bool) -> str:
    return f"""
WITH bump AS (
    UPDATE chats SET last_seq = last_seq + $3::bigint, updated_at = $4::timestamptz
    WHERE id = $1::varchar AND user_id IS NOT DISTINCT FROM $2::varchar
    RETURNING last_seq
), new_messages AS (
    INSERT INTO messages (chat_id, id, seq, user_id, role, metadata, created_at)
    SELECT $1::varchar, m.id, bump.last_seq - $3::bigint + m.i, $2::varchar, m.role, m.metadata, $4::timestamptz
    FROM bump, json_to_recordset($5::json) AS m(id varchar, role varchar, metadata text, i bigint)
), new_parts AS (
    {pg_parts_insert_sql("$1::varchar", "$2::varchar", "bump", "$6::json", narrow=narrow)}
)
SELECT last_seq FROM bump
"""


# By `narrow` (`parts.pg_parts_narrow`).
_ALONE_SQL = {narrow: _alone_sql(narrow) for narrow in (False, True)}


# The first of the ids ({ids}, in order) already in the chat ({chat}), or NULL.
_TAKEN_ID = """(
           SELECT n.id FROM unnest({ids}::varchar[]) WITH ORDINALITY AS n(id, ord)
           WHERE EXISTS (SELECT 1 FROM messages WHERE chat_id = {chat}::varchar AND id = n.id)
           ORDER BY n.ord LIMIT 1)"""


async def upsert_message(
    conn: AsyncConnection,
    chat_id: str,
    user_id: str,
    message: dict[str, Any],
    *,
    generation_id: str | None = None,
) -> Literal["inserted", "unchanged", "updated"]:
    """Save a message by id: append it if new; if stored and identical, change nothing; if stored
    and different, replace its role, metadata and parts (its place in the chat stays)."""
    await get_chat(conn, chat_id, user_id)
    check_message_storable(message)
    stored = await _load_message_rows(conn, chat_id, [message["id"]])
    if not stored:
        await append_messages(conn, chat_id, user_id, [message], generation_id=generation_id)
        return "inserted"
    if stored[0] == message:
        return "unchanged"
    values = _message_values(message)
    if generation_id is not None:
        values["generation_id"] = generation_id
    await conn.execute(
        update(messages).where(messages.c.chat_id == chat_id, messages.c.id == message["id"]).values(**values)
    )
    await conn.execute(delete(parts).where(parts.c.chat_id == chat_id, parts.c.message_id == message["id"]))
    await _insert_parts(conn, chat_id, user_id, [message])
    if generation_id is None:  # else a reply's save: its turn's start moved the chat (`append_messages`)
        await conn.execute(update(chats).where(chats.c.id == chat_id).values(updated_at=_now()))
    return "updated"


async def _seq_of(conn: AsyncConnection, chat_id: str, message_id: str) -> int:
    seq = (
        await conn.execute(select(messages.c.seq).where(messages.c.chat_id == chat_id, messages.c.id == message_id))
    ).scalar()
    if seq is None:
        raise NotFound(f"no message {message_id!r} in chat {chat_id!r}")
    return int(seq)


async def _load_message_rows(conn: AsyncConnection, chat_id: str, message_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The UIMessages with these ids, in chat order: one query for messages, one for parts."""
    if not message_ids:
        return []
    message_rows = (
        await conn.execute(
            select(messages.c.id, messages.c.role, messages.c.metadata)
            .where(messages.c.chat_id == chat_id, messages.c.id.in_(list(message_ids)))
            .order_by(messages.c.seq)
        )
    ).all()
    return await _with_parts(conn, chat_id, message_rows)


async def _with_parts(conn: AsyncConnection, chat_id: str, message_rows: Sequence[Any]) -> list[dict[str, Any]]:
    """UIMessages from message rows (`id`, `role`, `metadata`, in chat order) and their parts."""
    if not message_rows:
        return []
    part_rows = (
        (
            await conn.execute(
                select(parts)
                .where(parts.c.chat_id == chat_id, parts.c.message_id.in_([row.id for row in message_rows]))
                .order_by(parts.c.message_id, parts.c.position)
            )
        )
        .mappings()
        .all()
    )
    by_message: dict[str, list[dict[str, Any]]] = {}
    for part_row in part_rows:
        by_message.setdefault(part_row["message_id"], []).append(row_to_part(part_row))
    result = []
    for row in message_rows:
        message: dict[str, Any] = {"id": row.id, "role": row.role}
        if row.metadata is not MISSING:
            message["metadata"] = row.metadata
        message["parts"] = by_message.get(row.id, [])
        result.append(message)
    return result


async def get_message(conn: AsyncConnection, chat_id: str, message_id: str) -> dict[str, Any]:
    found = await _load_message_rows(conn, chat_id, [message_id])
    if not found:
        raise NotFound(f"no message {message_id!r} in chat {chat_id!r}")
    return found[0]


_Anchor = Literal["latest", "before", "after"]
_page_statements: dict[tuple[str, _Anchor, bool, bool], Select[Any]] = {}


def _page_statement(dialect: str, anchor: _Anchor, check_owner: bool, for_reading: bool) -> Select[Any]:
    """The whole page read as one statement, built once per shape (bound parameters `chat_id`,
    `user_id`, `anchor`, `n`): the chat row (zero rows = no such chat, or not this user's),
    left-joined to the anchor message's seq, to the page window (`n` = limit + 1 message rows,
    to learn whether more exist) and to the window's parts, in chat order. Columns: anchor seq,
    message id, then on SQLite the message's JSON text up to its parts (`_message_head_sql`) and
    the part's JSON text (`part_json_sql`; NULL for a message without parts), decoded once per
    page; on PostgreSQL the role, the metadata text and the part columns (`PAGE_PART_COLUMNS`,
    JSON as text), built into messages by `_messages_from_columns`."""
    key = (dialect, anchor, check_owner, for_reading)
    cached = _page_statements.get(key)
    if cached is not None:
        return cached
    chat_id = bindparam("chat_id", type_=String)
    anchor_id = bindparam("anchor", type_=String)
    anchor_row = messages.alias("anchor")
    # SQLite: the message's JSON head; PostgreSQL: its role and metadata text (see `load_messages`).
    message_columns: list[Any] = (
        [literal_column(_message_head_sql(dialect), Text).label("head")]
        if dialect == "sqlite"
        else [messages.c.role, type_coerce(messages.c.metadata, Text).label("metadata")]
    )
    window = select(messages.c.id, messages.c.seq, *message_columns).where(messages.c.chat_id == chat_id)
    if anchor != "latest":
        # A missing anchor makes this NULL and the window empty; the anchor join reports it.
        seq_row = messages.alias("anchor_seq")
        anchor_seq = (
            select(seq_row.c.seq).where(seq_row.c.chat_id == chat_id, seq_row.c.id == anchor_id)
        ).scalar_subquery()
        if anchor == "after":
            window = window.where(messages.c.seq > anchor_seq).order_by(messages.c.seq.asc())
        else:
            window = window.where(messages.c.seq < anchor_seq).order_by(messages.c.seq.desc())
    else:
        window = window.order_by(messages.c.seq.desc())
    page = window.limit(bindparam("n", type_=Integer)).subquery("page")
    source: Any = chats
    if anchor != "latest":
        source = source.outerjoin(anchor_row, and_(anchor_row.c.chat_id == chats.c.id, anchor_row.c.id == anchor_id))
    page_parts: Any
    if dialect == "postgresql":
        # The part columns as raw values, JSON as text (decoded by `_messages_from_columns`, not per cell
        # by a type processor). Built as JSON by the server (`part_json_sql`) they cost its
        # execution more than they spared asyncpg and the client (docs/benchmarks.md).
        part_columns = [
            type_coerce(parts.c[c], Text) if c in _JSON_TEXT_COLUMNS else parts.c[c] for c in PAGE_PART_COLUMNS
        ]
        # A LATERAL subquery: one (chat_id, message_id) index probe per page message, whatever
        # the statistics say. (A plain join let the planner hash all of the chat's parts when
        # `parts` looked small — a read that grew with the chat.)
        page_parts = (
            select(parts.c.position, *part_columns)
            .where(parts.c.chat_id == chat_id, parts.c.message_id == page.c.id)
            .offset(0)  # keeps the planner from flattening it back into a plain join
            .lateral("page_parts")
        )
        source = source.outerjoin(page, true()).outerjoin(page_parts, true())
        selected: list[Any] = [page.c.role, page.c.metadata, *(page_parts.c[c] for c in PAGE_PART_COLUMNS)]
    else:
        # SQLite has no LATERAL; its planner probes the parts index per page row on its own.
        page_parts = parts
        source = source.outerjoin(page, true()).outerjoin(
            parts, and_(parts.c.chat_id == chat_id, parts.c.message_id == page.c.id)
        )
        selected = [page.c.head, literal_column(part_json_sql(dialect), Text)]
    where = chats.c.id == chat_id
    if check_owner:
        owned = chats.c.user_id == bindparam("user_id", type_=String)
        # Shared = link or public (the CHECK constraint allows no other values).
        where = and_(where, or_(owned, chats.c.visibility != "private") if for_reading else owned)
    statement = (
        select(
            anchor_row.c.seq if anchor != "latest" else null(),
            page.c.id,
            *selected,
        )
        .select_from(source)
        .where(where)
        .order_by(page.c.seq, page_parts.c.position)
    )
    _page_statements[key] = statement
    return statement


_JSON_TEXT_COLUMNS = {c.name for c in parts.c if isinstance(c.type, JSONText)}


def _message_head_sql(dialect: str) -> str:
    """SQL for a `messages` row's UIMessage JSON text up to its parts array's contents:
    `{"id":…,"role":…,"metadata":…,"parts":[` (no `metadata` key when the column is NULL; the
    column holds the JSON text as stored). Key order as `_with_parts` builds messages."""

    def quote(column: str) -> str:
        return f"json_quote({column})" if dialect == "sqlite" else f"to_json({column})::text"

    return (
        f"""'{{"id":' || {quote("messages.id")} || ',"role":' || {quote("messages.role")} || """
        """coalesce(',"metadata":' || messages.metadata, '') || ',"parts":['"""
    )


_page_sql: dict[tuple[str, _Anchor, bool, bool], tuple[str, list[str], dict[str, Any]]] = {}


def _compiled_page(
    key: tuple[str, _Anchor, bool, bool], statement: Select[Any], dialect: Any
) -> tuple[str, list[str], dict[str, Any]]:
    """The page statement as driver SQL, its parameter order and defaults (compiled once)."""
    compiled = _page_sql.get(key)
    if compiled is None:
        built = statement.compile(dialect=dialect)
        compiled = (str(built), list(built.positiontup or ()), dict(built.params))
        _page_sql[key] = compiled
    return compiled


async def _fetch_page(
    conn: AsyncConnection | PooledDriver | SqliteReader,
    key: tuple[str, _Anchor, bool, bool],
    statement: Select[Any],
    params: dict[str, Any],
) -> Sequence[Any]:
    """The page statement's rows, from the driver connection itself where there is one: on
    PostgreSQL asyncpg's `fetch` (`Store.driver`: its prepared-statement cache, one round trip,
    no SQLAlchemy Connection, cursor or result in between), on SQLite aiosqlite's
    `execute_fetchall` (one hop to the connection's thread instead of four through SQLAlchemy's
    adapter: cursor, execute, fetch, close). On a busy machine that bookkeeping cost more than
    the query. Its values need no type processing (they are JSON text)."""
    if isinstance(conn, PooledDriver):
        sql, order, defaults = _compiled_page(key, statement, _asyncpg_dialect())
        values = {**defaults, **params}
        args = [values[name] for name in order]
        rows: Sequence[Any] = await conn.run(lambda driver: driver.fetch(sql, *args), what="read")
        return rows
    if isinstance(conn, SqliteReader):  # the store's own reader connection: one hop, no checkout
        sql, order, defaults = _compiled_page(key, statement, conn.dialect)
        values = {**defaults, **params}
        return await conn.fetchall(sql, [values[name] for name in order])
    if conn.dialect.name != "sqlite":  # PostgreSQL inside a caller's transaction
        rows = (await conn.execute(statement, params)).all()
        return rows
    sql, order, defaults = _compiled_page(key, statement, conn.dialect)
    values = {**defaults, **params}
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        rows = await driver.execute_fetchall(sql, [values[name] for name in order])
    except sqlite3.Error as exc:
        raise StorageError(f"database read failed: {exc}") from exc
    return rows


_asyncpg: list[Any] = []


def _asyncpg_dialect() -> Any:
    """SQLAlchemy's asyncpg dialect, to compile the page statement to asyncpg's `$n` SQL."""
    if not _asyncpg:
        from sqlalchemy.dialects.postgresql.asyncpg import dialect

        _asyncpg.append(dialect())  # type: ignore[no-untyped-call]
    return _asyncpg[0]


def _messages_from_json(rows: Sequence[Any], limit: int, after: bool) -> tuple[bool, list[dict[str, Any]]]:
    """(more, page) from rows of (anchor, message id, message JSON head, part JSON text): each
    message's text joined from its head and its parts', then the page's decoded at once."""
    heads: list[str] = []
    bodies: list[list[str]] = []
    body: list[str] = []
    current = None
    for row in rows:
        message_id = row[1]
        if message_id is None:  # the chat row alone: no messages on this side of the anchor
            break
        if message_id != current:
            current = message_id
            heads.append(row[2])
            body = []
            bodies.append(body)
        if row[3] is not None:  # a message without parts has one row with a NULL part
            body.append(row[3])
    more = len(heads) > limit
    if more:  # the extra message is the one farthest from the anchor: the oldest, or with `after` the newest
        heads, bodies = (heads[:limit], bodies[:limit]) if after else (heads[-limit:], bodies[-limit:])
    if not heads:
        return more, []
    texts = [head + ",".join(body) + "]}" for head, body in zip(heads, bodies, strict=True)]
    return more, load_json("[" + ",".join(texts) + "]")


_PART_START = 4  # the page row: anchor seq, message id, role, metadata text, then the part columns
_page_recipes: dict[str, tuple[tuple[str, int, int], ...]] = {}


def _messages_from_columns(rows: Sequence[Any], limit: int, after: bool) -> tuple[bool, list[dict[str, Any]]]:
    """(more, page) from rows of (anchor, message id, role, metadata text, part columns).

    Each part is built inline from its type's recipe (`part_recipe`: key, row index, kind), no
    call per row (a call per part, or a dict comprehension, cost more on Python 3.11). A JSON
    cell (metadata, tool input and output, provider metadata…) gets its key in place, in
    `row_to_part`'s order, and its value once all the page's JSON texts are decoded in one parse
    (`load_json_many`: one call instead of ~50). (This loop was most of a PostgreSQL page read's client
    CPU: docs/benchmarks.md, issue 16's fifth round.)"""
    ordered: list[dict[str, Any]] = []
    page_parts: list[dict[str, Any]] = []
    slots: list[tuple[dict[str, Any], str]] = []  # where each JSON text's value goes
    texts: list[str] = []
    recipes = _page_recipes
    current = None
    for row in rows:
        message_id = row[1]
        if message_id is None:  # the chat row alone: no messages on this side of the anchor
            break
        if message_id != current:
            current = message_id
            message: dict[str, Any] = {"id": message_id, "role": row[2]}
            if row[3] is not None:
                message["metadata"] = None
                slots.append((message, "metadata"))
                texts.append(row[3])
            page_parts = []
            message["parts"] = page_parts
            ordered.append(message)
        part_type = row[_PART_START]
        if part_type is None:  # a message without parts has one row of NULL part columns
            continue
        recipe = recipes.get(part_type)
        if recipe is None:
            recipe = part_recipe(part_type, _PART_START)
            if len(recipes) < 1000:  # tool-<name> types are open-ended; keep the cache bounded
                recipes[part_type] = recipe
        part: dict[str, Any] = {"type": part_type}
        for key, index, kind in recipe:
            value = row[index]
            if value is not None:
                part[key] = value  # a JSON cell's text for now (the key keeps its place); its value below
                if kind == PART_JSON:
                    slots.append((part, key))
                    texts.append(value)
                elif kind == PART_BOOL:
                    part[key] = bool(value)
        page_parts.append(part)
    for (holder, key), value in zip(slots, load_json_many(texts), strict=True):
        holder[key] = value
    more = len(ordered) > limit
    # The extra row is the one farthest from the anchor: the oldest, or with `after` the newest.
    return more, (ordered[:limit] if after else ordered[-limit:]) if more else ordered


async def load_messages(
    conn: AsyncConnection | PooledDriver | SqliteReader,
    chat_id: str,
    *,
    limit: int = 50,
    before: str | None = None,
    after: str | None = None,
    owner: str | None = None,
    check_owner: bool = False,
    for_reading: bool = False,
) -> MessagePage:
    """A page of messages, oldest first: the latest `limit`, or the `limit` just before or just
    after a message id. Reads only the page's rows (the `(chat_id, seq)` index), in one statement.
    With `check_owner`, the chat must be `owner`'s — or, with `for_reading`, shared by link or
    public — else `NotFound` (the same rule as `get_chat`, checked in the same statement).
    `conn` may be a PostgreSQL `PooledDriver` (`Store.driver`), the fast path."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if before is not None and after is not None:
        raise InvalidRequest("give before or after, not both")
    anchor: _Anchor = "after" if after is not None else "before" if before is not None else "latest"
    dialect = "postgresql" if isinstance(conn, PooledDriver) else conn.dialect.name
    statement = _page_statement(dialect, anchor, check_owner, for_reading)
    params = {"chat_id": chat_id, "n": limit + 1}
    if check_owner:
        params["user_id"] = owner
    if anchor != "latest":
        params["anchor"] = after if after is not None else before
    rows = await _fetch_page(conn, (dialect, anchor, check_owner, for_reading), statement, params)
    if not rows:
        raise NotFound(f"no chat {chat_id!r}")
    if anchor != "latest" and rows[0][0] is None:
        raise NotFound(f"no message {params['anchor']!r} in chat {chat_id!r}")
    if dialect == "postgresql":
        more, page = _messages_from_columns(rows, limit, after is not None)
    else:
        more, page = _messages_from_json(rows, limit, after is not None)
    # The anchor message itself lies on the other side of the page. (model_construct: the dicts
    # were built right here; validating them again would only copy them.)
    if after is not None:
        return MessagePage.model_construct(messages=page, has_before=True, has_after=more)
    return MessagePage.model_construct(messages=page, has_before=more, has_after=before is not None)


async def load_all_messages(conn: AsyncConnection, chat_id: str) -> list[dict[str, Any]]:
    """Every message of the chat, oldest first (the history a model call needs)."""
    ids = (
        (await conn.execute(select(messages.c.id).where(messages.c.chat_id == chat_id).order_by(messages.c.seq)))
        .scalars()
        .all()
    )
    return await _load_message_rows(conn, chat_id, ids)


async def truncate_after(
    conn: AsyncConnection, chat_id: str, user_id: str, message_id: str, *, inclusive: bool = False
) -> int:
    """Delete every message after `message_id` (and it too, with `inclusive`); returns how many.
    Used by edit (replace a user message) and regenerate (drop the reply)."""
    await get_chat(conn, chat_id, user_id)
    seq = await _seq_of(conn, chat_id, message_id)
    cut = and_(messages.c.chat_id == chat_id, messages.c.seq >= seq if inclusive else messages.c.seq > seq)
    doomed = (await conn.execute(select(messages.c.id).where(cut))).scalars().all()
    if doomed:
        await conn.execute(delete(parts).where(parts.c.chat_id == chat_id, parts.c.message_id.in_(doomed)))
        await conn.execute(delete(messages).where(cut))
        await conn.execute(update(chats).where(chats.c.id == chat_id).values(updated_at=_now()))
    return len(doomed)


async def delete_message(conn: AsyncConnection, chat_id: str, user_id: str, message_id: str) -> None:
    """Delete one message and its parts; the others keep their seqs (gaps are fine after a delete)."""
    await get_chat(conn, chat_id, user_id)
    await _seq_of(conn, chat_id, message_id)
    await conn.execute(delete(parts).where(parts.c.chat_id == chat_id, parts.c.message_id == message_id))
    await conn.execute(delete(messages).where(messages.c.chat_id == chat_id, messages.c.id == message_id))
    await conn.execute(update(chats).where(chats.c.id == chat_id).values(updated_at=_now()))
