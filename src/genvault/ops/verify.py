"""`verify`: checks a live deployment's data against the invariants the rest of genvault keeps.

Read-only and safe to run while the server runs (it reads one consistent snapshot). It checks:
- every message has its parts complete: positions 0..n-1 with no gap, and at least one part
  for user and system messages (the AI SDK requires it);
- no generation is stuck `pending`/`streaming` whose process stopped heartbeating (its process died and no
  sweeper has run since);
- every blob a row references exists in the blob store with the right sha256 (with a blob store).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.blobs import BlobNotFound, BlobStore
from genvault.store import Store
from genvault.store import generations as gen_store
from genvault.store.processes import gone_owner
from genvault.store.schema import blobs, generations, messages, parts

__all__ = ["VerifyReport", "verify", "verify_conn"]

SHOWN = 50  # problems listed per check; the count is always complete


class VerifyReport(BaseModel):
    checked: dict[str, int]
    problems: list[str]
    problem_count: int

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


async def verify_conn(
    conn: AsyncConnection, *, blob_store: BlobStore | None = None, now: datetime | None = None
) -> VerifyReport:
    now = now or datetime.now(UTC)
    problems: list[str] = []
    count = 0
    checked = {
        "messages": int((await conn.execute(select(func.count()).select_from(messages))).scalar() or 0),
        "generations": int((await conn.execute(select(func.count()).select_from(generations))).scalar() or 0),
    }

    n_parts = func.count(parts.c.position)
    last = func.coalesce(func.max(parts.c.position), -1)
    gaps = (
        select(messages.c.chat_id, messages.c.id, messages.c.role, n_parts.label("n"), last.label("last"))
        .select_from(
            messages.outerjoin(parts, and_(parts.c.chat_id == messages.c.chat_id, parts.c.message_id == messages.c.id))
        )
        .group_by(messages.c.chat_id, messages.c.id, messages.c.role)
        .having(or_(n_parts != last + 1, and_(n_parts == 0, messages.c.role != "assistant")))
        .order_by(messages.c.chat_id, messages.c.id)
    )
    for row in (await conn.execute(gaps)).all():
        count += 1
        if count <= SHOWN:
            what = "has no parts" if row.n == 0 else f"has {row.n} parts but positions up to {row.last}"
            problems.append(f"message {row.id!r} in chat {row.chat_id!r} {what}")

    stuck = (
        select(generations.c.id, generations.c.status)
        .where(
            generations.c.status.in_(gen_store.ACTIVE),
            gone_owner(now, expired_counts=True),
        )
        .order_by(generations.c.id)
    )
    shown_before = count
    for row in (await conn.execute(stuck)).all():
        count += 1
        if count - shown_before <= SHOWN:
            problems.append(
                f"generation {row.id} is stuck {row.status}: its process stopped heartbeating and no "
                "sweeper has marked it interrupted (start the server or any genvault command to sweep)"
            )
    if blob_store is not None:
        shown_before = count
        referenced = (
            await conn.execute(
                select(blobs.c.sha256, func.max(blobs.c.size)).group_by(blobs.c.sha256).order_by(blobs.c.sha256)
            )
        ).all()
        checked["blob_objects"] = len(referenced)
        for sha256, size in referenced:
            problem = await _check_object(blob_store, sha256, int(size))
            if problem is not None:
                count += 1
                if count - shown_before <= SHOWN:
                    problems.append(problem)
    return VerifyReport(checked=checked, problems=problems, problem_count=count)


async def _check_object(store: BlobStore, sha256: str, size: int) -> str | None:
    try:
        data = await store.get(sha256)
    except BlobNotFound:
        return f"blob {sha256} is referenced but missing from the blob store"
    if hashlib.sha256(data).hexdigest() != sha256:
        return f"blob {sha256} does not match its sha256 (the stored bytes are damaged)"
    if len(data) != size:
        return f"blob {sha256} is {len(data)} bytes, but its rows say {size}"
    return None


async def verify(store: Store, *, blobs: BlobStore | None = None, now: datetime | None = None) -> VerifyReport:
    from genvault.ops.archive import snapshot

    async with snapshot(store) as conn:
        return await verify_conn(conn, blob_store=blobs, now=now)
