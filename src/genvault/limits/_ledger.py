"""The budget ledger in SQL (`limit_usage`): read, rebuild. Reserving and settling are the
database's own (revision 0015's triggers on `generations`).

The reservation is taken by the insert of the pending record that holds it: a trigger runs one
conditional upsert per limited subject (the user, and the key when it has limits of its own),
adding the worst-case cost only where the day's, the month's and the total's use plus it stay
within that subject's caps and the running count stays under its concurrency cap; otherwise the
insert fails and nothing of the request is written. On PostgreSQL the upsert locks each row and
re-checks the condition on its latest version, so two processes cannot both take the last room;
on SQLite the insert holds the one write lock (across processes too). A record never exists
without its hold, nor a hold without its record, and the update that ends the record (whoever
writes it: finalize, a cancel from any process, the sweeper) gives back what it did not spend.

Why not a Redis script when Redis is configured: the database is the ledger of record, and the
reservation has to commit or roll back with the pending record. Held in Redis, it would be a
second copy to keep in step with the first: a process dying between the script and the insert
would leak a hold no record accounts for (the sweeper finds records, not Redis keys), a refused
or rolled-back insert would need a compensating call, and every turn would pay a round trip to
Redis on top of the insert. The conditional upsert is already atomic across processes on the
shared PostgreSQL database, whether or not Redis is there; Redis serves the rate windows
(`_rates`), which have no record to be consistent with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.store.db import insert_for
from genvault.store.schema import generations, limit_usage

__all__ = ["NO_CAP", "UsageRow", "read_rows", "rebuild"]

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
