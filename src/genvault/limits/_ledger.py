"""The budget ledger in SQL (`limit_usage`): reserve, settle, rebuild.

The reservation is one conditional upsert over every limited subject of the request (the user,
and the key when it has limits of its own): it adds the worst-case cost to each row only where
the day's, the month's and the total's use plus it stay within that subject's limits and the
running count stays under its concurrency limit. On PostgreSQL the upsert locks each row and
re-checks the condition on its latest version, so two processes cannot both take the last room;
SQLite runs one writer at a time. It runs in the transaction that inserts the pending record:
a refusal rolls that back, so nothing of the request is written, and a crash can never leave a
reservation without the record that holds it (the sweeper releases that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, case, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.store.db import insert_for
from genvault.store.schema import generations, limit_usage

__all__ = ["NO_CAP", "UsageRow", "read_rows", "rebuild", "reserve", "settle"]

# "No limit" inside the statement: larger than any sum of nano-USD that fits in a BIGINT column.
NO_CAP = 2**62
u = limit_usage


@dataclass(frozen=True, slots=True)
class UsageRow:
    subject: str
    day: str
    day_nano_usd: int
    month: str
    month_nano_usd: int
    total_nano_usd: int
    running: int
    reserved_nano_usd: int

    def used_day(self, day: str) -> int:
        return self.day_nano_usd if self.day == day else 0

    def used_month(self, month: str) -> int:
        return self.month_nano_usd if self.month == month else 0


_statements: dict[int, Any] = {}


def _reserve_statement(subjects: int) -> Any:
    """Written out as SQL, the same on both databases (an upsert over several VALUES rows is not
    cacheable as a Core statement, and compiling it took longer than running it); built once per
    number of subjects. The caps come as parameters, per subject, `NO_CAP` for none."""
    cached = _statements.get(subjects)
    if cached is not None:
        return cached
    rows = ", ".join(
        f"(:p_s{i}, :p_user, :p_day, :p_nano, :p_month, :p_nano, :p_nano, 1, :p_nano)" for i in range(subjects)
    )

    def cap(name: str) -> str:
        whens = " ".join(f"WHEN :p_s{i} THEN :p_s{i}_{name}" for i in range(subjects))
        return f"(CASE limit_usage.subject {whens} ELSE {NO_CAP} END)"

    day_used = "(CASE WHEN limit_usage.day = excluded.day THEN limit_usage.day_nano_usd ELSE 0 END)"
    month_used = "(CASE WHEN limit_usage.month = excluded.month THEN limit_usage.month_nano_usd ELSE 0 END)"
    sql = (
        "INSERT INTO limit_usage (subject, user_id, day, day_nano_usd, month, month_nano_usd, total_nano_usd, "
        f"running, reserved_nano_usd) VALUES {rows} "
        "ON CONFLICT (subject) DO UPDATE SET "
        f"day = excluded.day, day_nano_usd = {day_used} + excluded.day_nano_usd, "
        f"month = excluded.month, month_nano_usd = {month_used} + excluded.month_nano_usd, "
        "total_nano_usd = limit_usage.total_nano_usd + excluded.total_nano_usd, "
        "running = limit_usage.running + 1, "
        "reserved_nano_usd = limit_usage.reserved_nano_usd + excluded.reserved_nano_usd "
        f"WHERE {day_used} + excluded.day_nano_usd <= {cap('daily')} "
        f"AND {month_used} + excluded.month_nano_usd <= {cap('monthly')} "
        f"AND limit_usage.total_nano_usd + excluded.total_nano_usd <= {cap('total')} "
        f"AND limit_usage.running + 1 <= {cap('concurrent')} "
        "RETURNING subject"
    )
    params: list[Any] = [bindparam(name, type_=String) for name in ("p_user", "p_day", "p_month")]
    params.append(bindparam("p_nano", type_=BigInteger))
    for i in range(subjects):
        params.append(bindparam(f"p_s{i}", type_=String))
        params.extend(bindparam(f"p_s{i}_{n}", type_=BigInteger) for n in ("daily", "monthly", "total", "concurrent"))
    statement = text(sql).bindparams(*params)
    _statements[subjects] = statement
    return statement


async def reserve(
    conn: AsyncConnection,
    *,
    user_id: str,
    subjects: list[tuple[str, dict[str, int]]],
    nano: int,
    day: str,
    month: str,
) -> set[str]:
    """Reserve `nano` (and one running slot) on every subject whose limits allow it; returns the
    subjects that took it. Fewer than asked: the caller must roll the transaction back.

    `subjects` pairs each subject with its caps (`daily`, `monthly`, `total`, `concurrent`, in
    nano-USD and counts, `NO_CAP` for none). A subject without a row gets one, starting from
    this reservation: the caller checks that the reservation alone fits its limits."""
    params: dict[str, Any] = {"p_user": user_id, "p_day": day, "p_month": month, "p_nano": nano}
    for i, (subject, caps) in enumerate(subjects):
        params[f"p_s{i}"] = subject
        for name in ("daily", "monthly", "total", "concurrent"):
            params[f"p_s{i}_{name}"] = caps[name]
    result = await conn.execute(_reserve_statement(len(subjects)), params)
    return {row[0] for row in result}


_settle_statements: dict[int, Any] = {}


def _settle_statement(subjects: int) -> Any:
    """SQL text built once per number of subjects (an expanding IN is rendered on every call)."""
    cached = _settle_statements.get(subjects)
    if cached is not None:
        return cached
    names = ", ".join(f":p_s{i}" for i in range(subjects))
    sql = (
        "UPDATE limit_usage SET "
        "day_nano_usd = CASE WHEN day = :p_day THEN day_nano_usd + :p_delta ELSE day_nano_usd END, "
        "month_nano_usd = CASE WHEN month = :p_month THEN month_nano_usd + :p_delta ELSE month_nano_usd END, "
        "total_nano_usd = total_nano_usd + :p_delta, "
        "running = CASE WHEN running > 0 THEN running - 1 ELSE 0 END, "
        "reserved_nano_usd = CASE WHEN reserved_nano_usd > :p_nano THEN reserved_nano_usd - :p_nano ELSE 0 END "
        f"WHERE subject IN ({names})"
    )
    params: list[Any] = [bindparam(name, type_=String) for name in ("p_day", "p_month")]
    params.extend(bindparam(name, type_=BigInteger) for name in ("p_delta", "p_nano"))
    params.extend(bindparam(f"p_s{i}", type_=String) for i in range(subjects))
    statement = text(sql).bindparams(*params)
    _settle_statements[subjects] = statement
    return statement


async def settle(conn: AsyncConnection, *, subjects: list[str], nano: int, actual: int, day: str, month: str) -> None:
    """Replace a reservation of `nano` made on `day`/`month` by the `actual` cost, and free its
    running slot. A window that has moved on since keeps its new count."""
    if not subjects:
        return
    params: dict[str, Any] = {"p_nano": nano, "p_delta": actual - nano, "p_day": day, "p_month": month}
    params.update({f"p_s{i}": subject for i, subject in enumerate(subjects)})
    await conn.execute(_settle_statement(len(subjects)), params)


async def read_rows(conn: AsyncConnection, subjects: list[str]) -> dict[str, UsageRow]:
    rows = (await conn.execute(select(u).where(u.c.subject.in_(subjects)))).mappings()
    return {row["subject"]: UsageRow(**{k: row[k] for k in UsageRow.__slots__}) for row in rows}


async def rebuild(
    conn: AsyncConnection,
    *,
    subject: str,
    user_id: str,
    condition: Any,
    day: str,
    month: str,
    day_start: datetime,
    month_start: datetime,
) -> None:
    """Set a subject's row from the generations themselves (when its limits are set): what the
    final ones cost, plus what the running ones that reserved against it hold."""
    final = generations.c.status.not_in(("pending", "streaming"))
    cost = func.coalesce(generations.c.cost_nano_usd, 0)
    sums = (
        await conn.execute(
            select(
                func.coalesce(func.sum(case((generations.c.created_at >= day_start, cost), else_=0)), 0),
                func.coalesce(func.sum(case((generations.c.created_at >= month_start, cost), else_=0)), 0),
                func.coalesce(func.sum(cost), 0),
            ).where(condition, final)
        )
    ).one()
    day_nano, month_nano, total_nano = (int(v) for v in sums)
    running = reserved = 0
    held = await conn.execute(
        select(generations.c.reservation).where(
            condition, generations.c.status.in_(("pending", "streaming")), generations.c.reservation.is_not(None)
        )
    )
    for (reservation,) in held:
        if not isinstance(reservation, dict) or subject not in reservation.get("subjects", ()):
            continue
        nano = int(reservation.get("nano", 0))
        running += 1
        reserved += nano
        total_nano += nano
        if reservation.get("month") == month:
            month_nano += nano
        if reservation.get("day") == day:
            day_nano += nano
    values = {
        "user_id": user_id,
        "day": day,
        "day_nano_usd": day_nano,
        "month": month,
        "month_nano_usd": month_nano,
        "total_nano_usd": total_nano,
        "running": running,
        "reserved_nano_usd": reserved,
    }
    insert = insert_for(conn.dialect.name, u).values(subject=subject, **values)
    await conn.execute(insert.on_conflict_do_update(index_elements=[u.c.subject], set_=values))
