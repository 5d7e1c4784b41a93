"""Users: the local default user, and the accounts API keys belong to."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import NotFound
from genvault.store.db import dialect_insert
from genvault.store.schema import LOCAL_USER_ID, users

__all__ = ["LOCAL_USER_ID", "ensure_user", "get_user_name", "list_users"]


async def ensure_user(conn: AsyncConnection, user_id: str, name: str | None = None, *, is_admin: bool = False) -> None:
    """Create the user if missing (idempotent, also when several processes start at once: the
    insert does nothing if another one got there between our read and our write)."""
    exists = (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first()
    if exists is None:
        await conn.execute(
            dialect_insert(conn, users)
            .values(id=user_id, name=name or user_id, is_admin=is_admin, created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=[users.c.id])
        )


async def get_user_name(conn: AsyncConnection, user_id: str) -> str:
    name = (await conn.execute(select(users.c.name).where(users.c.id == user_id))).scalar()
    if name is None:
        raise NotFound(f"no user {user_id!r}")
    return str(name)


async def list_users(conn: AsyncConnection) -> list[dict[str, object]]:
    rows = (await conn.execute(select(users).order_by(users.c.created_at))).mappings().all()
    return [dict(row) for row in rows]
