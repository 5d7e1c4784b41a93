"""Reads and writes of generation records.

Functions take an open connection so the caller decides the transaction: the engine finalizes a
chat reply's message and its generation in one. Every state change is guarded by the current
status, so a record leaves `pending`/`streaming` exactly once: a second finalize, a late
checkpoint after a cancel, or a sweeper racing the owner all change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, bindparam, case, func, insert, or_, select, true, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest, NotFound
from genvault.records import Generation, Page, Usage, UsageRow
from genvault.store.cursors import decode_cursor, encode_cursor
from genvault.store.schema import LIMIT_REFUSED, feedback, generations, messages

__all__ = [
    "ACTIVE",
    "ACTIVE_ROWS",
    "checkpoint",
    "complete_cancelled",
    "final_record",
    "finalize",
    "find_by_idempotency_key",
    "get",
    "insert_pending",
    "interrupt",
    "last_chat_model",
    "list_page",
    "pending_record",
    "status_of",
    "sweep_expired",
    "usage_report",
]

ACTIVE = ("pending", "streaming")
# The condition "still running" for a query that looks for such records among all the others,
# periodically (the sweeper): the status, and `finished_at IS NULL` (true of every active record:
# each change that ends one sets it), the predicate of the partial index that holds only them
# (`ix_generations_active`, revision 0029), so the query reads that index and not the table.
# The tools that check or repair a whole database (`ops.verify`, a restore's sweep) test the
# status alone: they read every row anyway, and must find a record left in an impossible state.
ACTIVE_ROWS: ColumnElement[bool] = and_(generations.c.status.in_(ACTIVE), generations.c.finished_at.is_(None))
_USAGE_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
)

# The finalize's values that are not `Generation` fields as they stand: `usage` is built of them.
_USAGE_VALUES = frozenset({*_USAGE_COLUMNS, "usage_estimated"})


def to_record(row: RowMapping) -> Generation:
    data = dict(row)
    data["usage"] = Usage(
        **{name: data.pop(name) for name in _USAGE_COLUMNS}, estimated=bool(data.pop("usage_estimated", False))
    )
    for name in ("lease_owner", "lease_expires_at"):
        data.pop(name, None)
    return Generation.model_validate(data)


# The statements of every generation's life, built once: the values come as execution parameters
# (an INSERT's or an UPDATE's columns are the parameters' keys), so SQLAlchemy neither builds nor
# re-derives a cache key for each call, only looks up the compiled form. This was a quarter of a
# chat turn's SQLAlchemy time (docs/benchmarks.md).
_INSERT = insert(generations).returning(*generations.c)
_BY_ID = select(generations).where(generations.c.id == bindparam("generation_id"))
_BY_ID_AND_USER = _BY_ID.where(generations.c.user_id == bindparam("owner"))
_STATUS = select(generations.c.status).where(generations.c.id == bindparam("generation_id"))
# Every state change is guarded by the current status (see the module's docstring).
_UPDATE_ACTIVE = update(generations).where(
    generations.c.id == bindparam("generation_id"), generations.c.status.in_(ACTIVE)
)


async def insert_pending(conn: AsyncConnection, values: dict[str, Any]) -> Generation | None:
    """Insert a `pending` row. Returns None when the idempotency key is already taken."""
    # The row comes back from the insert itself (RETURNING: SQLite ≥ 3.35, PostgreSQL).
    row = {"status": "pending", **values}
    if values.get("idempotency_key") is None:
        # No key, no conflict to recover from: no savepoint around the insert (an error aborts
        # the caller's transaction either way).
        return to_record((await conn.execute(_INSERT, row)).mappings().one())
    try:
        async with conn.begin_nested():
            inserted = (await conn.execute(_INSERT, row)).mappings().one()
    except IntegrityError as exc:
        if LIMIT_REFUSED in str(exc.orig):  # SQLite's trigger refusal is a constraint error too
            raise
        return None
    return to_record(inserted)


# The validators themselves: `model_validate`'s Python wrapper (its keyword handling) skipped.
_VALIDATE_GENERATION = Generation.__pydantic_validator__.validate_python
_VALIDATE_USAGE = Usage.__pydantic_validator__.validate_python


def pending_record(values: dict[str, Any]) -> Generation:
    """The record a `pending` row inserted with `values` reads back as (every other column at its
    default), without reading it."""
    # The lease's columns (and the reservation) are not fields: validation leaves them out, as a
    # comprehension dropping them did first (~15,000 instructions a turn, docs/benchmarks.md
    # "liteloop").
    record: Generation = _VALIDATE_GENERATION({"status": "pending", **values})
    return record


def final_record(pending: Generation, values: dict[str, Any]) -> Generation:
    """The record `pending` becomes when `finalize` writes `values`, without reading it (its
    `checkpoint_at` stays as it was when inserted)."""
    get = values.get
    usage = _VALIDATE_USAGE(
        {
            "input_tokens": get("input_tokens"),
            "output_tokens": get("output_tokens"),
            "cached_input_tokens": get("cached_input_tokens"),
            "cache_write_tokens": get("cache_write_tokens"),
            "reasoning_tokens": get("reasoning_tokens"),
            "total_tokens": get("total_tokens"),
            "estimated": bool(get("usage_estimated", False)),
        }
    )
    # `values` without the usage's columns (a copy, and the few of them deleted: cheaper than a
    # comprehension over all the values); every other key is a field, so its place in the
    # record's `__dict__` is the field's whatever order the update is in.
    update = dict(values)
    for name in _USAGE_VALUES.intersection(values):
        del update[name]
    update["usage"] = usage
    return pending.model_copy(update=update)


async def find_by_idempotency_key(conn: AsyncConnection, user_id: str, key: str) -> Generation | None:
    row = (
        (
            await conn.execute(
                select(generations).where(generations.c.user_id == user_id, generations.c.idempotency_key == key)
            )
        )
        .mappings()
        .first()
    )
    return to_record(row) if row else None


async def get(conn: AsyncConnection, generation_id: str, *, user_id: str | None = None) -> Generation:
    """The record, or `NotFound` (also when it belongs to another user than `user_id`)."""
    if user_id is None:
        result = await conn.execute(_BY_ID, {"generation_id": generation_id})
    else:
        result = await conn.execute(_BY_ID_AND_USER, {"generation_id": generation_id, "owner": user_id})
    row = result.mappings().first()
    if row is None:
        raise NotFound(f"no generation {generation_id!r}")
    return to_record(row)


async def status_of(conn: AsyncConnection, generation_id: str) -> str | None:
    """The record's status; None when there is no such record."""
    return (await conn.execute(_STATUS, {"generation_id": generation_id})).scalar()


async def _update_active(conn: AsyncConnection, generation_id: str, values: dict[str, Any]) -> bool:
    """Set `values` on the record if it is still active; False (and no change) if it is not."""
    result = await conn.execute(_UPDATE_ACTIVE, {"generation_id": generation_id, **values})
    return result.rowcount == 1


async def checkpoint(
    conn: AsyncConnection,
    generation_id: str,
    *,
    at: datetime,
    lease_expires_at: datetime,
    result_text: str | None = None,
    result_message: dict[str, Any] | None = None,
) -> bool:
    """Save partial output and renew the lease. False when the record is no longer active
    (cancelled elsewhere, or swept): the owner should stop generating."""
    values: dict[str, Any] = {"checkpoint_at": at, "lease_expires_at": lease_expires_at}
    if result_text is not None:
        values["result_text"] = result_text
    if result_message is not None:
        values["result_message"] = result_message
    return await _update_active(conn, generation_id, values)


async def finalize(conn: AsyncConnection, generation_id: str, values: dict[str, Any]) -> bool:
    """Move an active record to its final status with `values`. False (and no change) when it
    was already final: finalizing twice is a no-op."""
    return await _update_active(conn, generation_id, {**values, "lease_owner": None, "lease_expires_at": None})


# What the process that ran a generation adds to a record another process cancelled.
_CANCELLED_DETAILS = (
    "result_text",
    "result_message",
    "finish_reason",
    *_USAGE_COLUMNS,
    "usage_estimated",
    "cost_nano_usd",
    "unit_prices",
    "price_source",
    "started_at",
    "first_token_at",
)


async def complete_cancelled(conn: AsyncConnection, generation_id: str, values: dict[str, Any]) -> None:
    """Give a record cancelled from another process the output, usage and cost its own process
    had (that process writes them when it stops). Only a `cancelled` record changes."""
    details = {key: values[key] for key in _CANCELLED_DETAILS if key in values}
    await conn.execute(
        update(generations)
        .where(generations.c.id == generation_id, generations.c.status == "cancelled")
        .values(**details)
    )


async def sweep_expired(conn: AsyncConnection, *, now: datetime, dead_owners: Sequence[str] = ()) -> list[Generation]:
    """Mark `interrupted` every active record whose lease expired or whose owner is known dead.
    Partial output (the last checkpoint) stays. Returns the records it changed."""
    expired = or_(generations.c.lease_expires_at < now, generations.c.lease_expires_at.is_(None))
    condition: ColumnElement[bool] = expired
    if dead_owners:
        condition = or_(expired, generations.c.lease_owner.in_(list(dead_owners)))
    ids = (
        (await conn.execute(select(generations.c.id).where(generations.c.status.in_(ACTIVE), condition)))
        .scalars()
        .all()
    )
    return await interrupt(conn, ids, now=now)


async def interrupt(conn: AsyncConnection, generation_ids: Sequence[str], *, now: datetime) -> list[Generation]:
    """Mark these generations `interrupted` (those still active; their process is gone), keeping
    their last checkpoint. Returns the records it changed."""
    changed = []
    for generation_id in generation_ids:
        done = await finalize(
            conn,
            generation_id,
            {
                "status": "interrupted",
                "finished_at": now,
                "error": "the process running this generation stopped before it finished",
            },
        )
        if done:
            changed.append(await get(conn, generation_id))
    return changed


async def list_page(
    conn: AsyncConnection,
    *,
    user_id: str | None = None,
    model: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    chat_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    among: ColumnElement[bool] | None = None,
) -> Page[Generation]:
    """Newest first, `limit` per page, continuing after `cursor` (`among`: only the records
    meeting it, such as a search's matches)."""
    if limit < 1 or limit > 1000:
        raise InvalidRequest(f"limit must be between 1 and 1000, got {limit}")
    query = select(generations)
    if among is not None:
        query = query.where(among)
    filters = {"user_id": user_id, "model": model, "status": status, "kind": kind, "chat_id": chat_id}
    for name, value in filters.items():
        if value is not None:
            query = query.where(generations.c[name] == value)
    if since is not None:
        query = query.where(generations.c.created_at >= since)
    if until is not None:
        query = query.where(generations.c.created_at < until)
    if cursor is not None:
        created_at, generation_id = decode_cursor(cursor)
        query = query.where(tuple_(generations.c.created_at, generations.c.id) < tuple_(created_at, generation_id))
    query = query.order_by(generations.c.created_at.desc(), generations.c.id.desc()).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    items = [to_record(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return Page[Generation](items=items, next_cursor=next_cursor)


async def usage_report(
    conn: AsyncConnection,
    *,
    group_by: Literal["model", "user", "day", "key", "tag"] = "model",
    user_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[UsageRow]:
    """Token and cost totals per model, user, UTC day, API key (`none`: requests without a
    key) or tag (a generation counts under each of its tags; untagged ones are left out), largest
    cost first (days: newest first)."""
    source: Any = generations
    key: ColumnElement[Any]
    if group_by == "tag":
        from genvault.labels import tag_elements  # the labels module builds on this one

        elements = tag_elements(conn.dialect.name)
        key = elements.c.value
        source = generations.join(elements, true())
    elif group_by == "model":
        key = generations.c.model
    elif group_by == "user":
        key = generations.c.user_id
    elif group_by == "key":
        key = func.coalesce(generations.c.api_key_id, "none")
    elif group_by == "day":
        key = (
            func.date(generations.c.created_at)
            if conn.dialect.name == "sqlite"
            else func.to_char(func.timezone("UTC", generations.c.created_at), "YYYY-MM-DD")
        )
    else:
        raise InvalidRequest(f"group_by must be model, user, day, key or tag, got {group_by!r}")
    key = key.label("key")
    ratings = _ratings_per_generation()
    source = source.outerjoin(ratings, ratings.c.generation_id == generations.c.id)
    conditions = []
    if user_id is not None:
        conditions.append(generations.c.user_id == user_id)
    if since is not None:
        conditions.append(generations.c.created_at >= since)
    if until is not None:
        conditions.append(generations.c.created_at < until)
    sums = [func.coalesce(func.sum(generations.c[name]), 0).label(name) for name in _USAGE_COLUMNS]
    cost = func.coalesce(func.sum(generations.c.cost_nano_usd), 0).label("cost_nano_usd")
    # A cache hit costs nothing, but a hit of an unpriced model is no more priced than its source:
    # counted as unpriced, so a group of only such generations never reads as free.
    unknown = or_(
        generations.c.cost_nano_usd.is_(None),
        # `price_source` stays "cache" after the source is erased (and `cached_from` set NULL).
        and_(generations.c.price_source == "cache", generations.c.saved_nano_usd.is_(None)),
    )
    unpriced = func.sum(case((unknown, 1), else_=0)).label("unpriced")
    hits = func.sum(case((generations.c.cached_from.is_not(None), 1), else_=0)).label("cache_hits")
    saved = func.coalesce(func.sum(generations.c.saved_nano_usd), 0).label("saved_nano_usd")
    is_estimate = generations.c.usage_estimated.is_(True)
    estimated = func.sum(case((is_estimate, 1), else_=0)).label("estimated")
    estimated_cost = func.coalesce(func.sum(case((is_estimate, generations.c.cost_nano_usd), else_=None)), 0).label(
        "estimated_cost"
    )
    thumbs = [func.coalesce(func.sum(ratings.c[name]), 0).label(name) for name in ("thumbs_up", "thumbs_down")]
    query = (
        select(
            key,
            func.count().label("generations"),
            *sums,
            cost,
            unpriced,
            hits,
            saved,
            estimated,
            estimated_cost,
            *thumbs,
        )
        .select_from(source)
        .group_by(key)
    )
    if conditions:
        query = query.where(and_(*conditions))
    query = query.order_by(key.desc() if group_by == "day" else cost.desc(), key)
    rows = (await conn.execute(query)).mappings().all()
    return [
        UsageRow(
            key=str(row["key"]),
            generations=int(row["generations"]),
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cached_input_tokens=int(row["cached_input_tokens"]),
            reasoning_tokens=int(row["reasoning_tokens"]),
            total_tokens=int(row["total_tokens"]),
            cost_nano_usd=int(row["cost_nano_usd"]),
            unpriced_generations=int(row["unpriced"] or 0),
            cache_hits=int(row["cache_hits"] or 0),
            saved_nano_usd=int(row["saved_nano_usd"]),
            estimated_generations=int(row["estimated"] or 0),
            estimated_cost_nano_usd=int(row["estimated_cost"]),
            thumbs_up=int(row["thumbs_up"]),
            thumbs_down=int(row["thumbs_down"]),
        )
        for row in rows
    ]


def _ratings_per_generation() -> Any:
    """Thumbs up and down per generation: ratings of the generation itself and of the assistant
    message it wrote (at most one row per generation, so joining it multiplies nothing)."""
    of_generations = select(feedback.c.generation_id, feedback.c.rating).where(feedback.c.generation_id.is_not(None))
    of_messages = (
        select(messages.c.generation_id, feedback.c.rating)
        .select_from(feedback)
        .join(messages, and_(messages.c.chat_id == feedback.c.chat_id, messages.c.id == feedback.c.message_id))
        .where(messages.c.generation_id.is_not(None))
    )
    every = of_generations.union_all(of_messages).subquery()
    return (
        select(
            every.c.generation_id,
            func.sum(case((every.c.rating == 1, 1), else_=0)).label("thumbs_up"),
            func.sum(case((every.c.rating == -1, 1), else_=0)).label("thumbs_down"),
        )
        .group_by(every.c.generation_id)
        .subquery()
    )


async def last_chat_model(conn: AsyncConnection, chat_id: str) -> str | None:
    """The model of the chat's latest turn, whatever its status (a reply that failed was still
    asked of that model): what the chat page's model picker starts on. None before a turn."""
    query = (
        select(generations.c.model)
        .where(generations.c.chat_id == chat_id, generations.c.kind == "chat")
        .order_by(generations.c.created_at.desc(), generations.c.id.desc())
        .limit(1)
    )
    model: str | None = (await conn.execute(query)).scalar_one_or_none()
    return model
