"""The `blobs` table: who references which stored object, and from where.

A row is one reference (an upload in a chat message, an image of a generation); its bytes live in
the blob store under `sha256`, possibly shared with other rows. Reads check access here: a file is
visible to its owner, and to anyone when the chat it belongs to is shared by link or public.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import NotFound
from genvault.store.schema import blobs, chats

__all__ = ["delete_rows", "get_row", "insert_row", "list_for_generation", "references"]


async def insert_row(conn: AsyncConnection, **values: Any) -> dict[str, Any]:
    row = {"created_at": datetime.now(UTC), **values}
    await conn.execute(insert(blobs).values(**row))
    return row


async def get_row(conn: AsyncConnection, file_id: str, user_id: str | None) -> dict[str, Any]:
    """The row if `user_id` may read it (`None`: anyone's); otherwise `NotFound`, as if absent."""
    query = (
        select(blobs, chats.c.visibility.label("chat_visibility"))
        .select_from(blobs.outerjoin(chats, chats.c.id == blobs.c.chat_id))
        .where(blobs.c.id == file_id)
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no file {file_id!r}")
    shared = row["chat_visibility"] in ("link", "public")
    if user_id is not None and row["user_id"] != user_id and not shared:
        raise NotFound(f"no file {file_id!r}")
    return {k: v for k, v in row.items() if k != "chat_visibility"}


async def list_for_generation(conn: AsyncConnection, generation_id: str) -> list[dict[str, Any]]:
    query = select(blobs).where(blobs.c.generation_id == generation_id).order_by(blobs.c.part_position, blobs.c.id)
    return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def references(conn: AsyncConnection, sha256: str) -> int:
    """How many rows name this object; zero means the object may be deleted."""
    count = (await conn.execute(select(func.count()).select_from(blobs).where(blobs.c.sha256 == sha256))).scalar()
    return int(count or 0)


async def delete_rows(conn: AsyncConnection, file_ids: list[str]) -> list[str]:
    """Delete rows; returns the sha256s they named (check `references` before deleting objects)."""
    if not file_ids:
        return []
    shas = (await conn.execute(select(blobs.c.sha256).where(blobs.c.id.in_(file_ids)))).scalars().all()
    await conn.execute(delete(blobs).where(blobs.c.id.in_(file_ids)))
    return sorted(set(shas))
