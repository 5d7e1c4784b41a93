"""Browser sessions in SQL: made at sign-in, found by id, ended by sign-out or key revocation.

Only `token_hash` (sha256 of the cookie's random token) is stored; the caller compares it in
constant time. A session made with an API key is valid only while that key is (not revoked, not
expired): `find_session` checks the key in the same read.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.store.schema import api_keys, sessions, user_passwords, users

__all__ = [
    "SessionRow",
    "find_password_hash",
    "find_session",
    "insert_session",
    "list_sessions",
    "revoke_sessions",
    "set_password_hash",
    "user_exists",
]


class SessionRow(NamedTuple):
    id: str
    user_id: str
    key_id: str | None
    token_hash: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    # The signing-in key's limits, which the session acts under (None without a key).
    key_expires_at: datetime | None
    key_models: list[str] | None


_COLUMNS = (
    sessions.c.id,
    sessions.c.user_id,
    sessions.c.key_id,
    sessions.c.token_hash,
    sessions.c.created_at,
    sessions.c.expires_at,
    sessions.c.revoked_at,
    api_keys.c.expires_at.label("key_expires_at"),
    api_keys.c.models.label("key_models"),
)


def _row(row: object) -> SessionRow:
    return SessionRow(*row)  # type: ignore[misc]


async def insert_session(
    conn: AsyncConnection,
    *,
    session_id: str,
    user_id: str,
    key_id: str | None,
    token_hash: str,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(sessions).values(
            id=session_id,
            user_id=user_id,
            key_id=key_id,
            token_hash=token_hash,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


async def find_session(conn: AsyncConnection, session_id: str, now: datetime) -> SessionRow | None:
    """The session if it is live: not revoked, not expired, and its key (if any) neither."""
    query = (
        select(*_COLUMNS)
        .select_from(sessions.outerjoin(api_keys, api_keys.c.id == sessions.c.key_id))
        .where(
            sessions.c.id == session_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
            or_(
                sessions.c.key_id.is_(None),
                and_(
                    api_keys.c.revoked_at.is_(None), or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now)
                ),
            ),
        )
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def list_sessions(conn: AsyncConnection, *, user_id: str | None, live_at: datetime | None) -> list[SessionRow]:
    """Newest first; `user_id=None`: everyone's; `live_at`: only those not revoked or expired then."""
    query = select(*_COLUMNS).select_from(sessions.outerjoin(api_keys, api_keys.c.id == sessions.c.key_id))
    if user_id is not None:
        query = query.where(sessions.c.user_id == user_id)
    if live_at is not None:
        query = query.where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > live_at)
    rows = (await conn.execute(query.order_by(sessions.c.created_at.desc(), sessions.c.id.desc()))).all()
    return [_row(r) for r in rows]


async def revoke_sessions(
    conn: AsyncConnection,
    at: datetime,
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    key_id: str | None = None,
) -> int:
    """End the matching live sessions (all conditions given must hold); returns how many."""
    conditions: list[ColumnElement[bool]] = [sessions.c.revoked_at.is_(None)]
    if session_id is not None:
        conditions.append(sessions.c.id == session_id)
    if user_id is not None:
        conditions.append(sessions.c.user_id == user_id)
    if key_id is not None:
        conditions.append(sessions.c.key_id == key_id)
    if len(conditions) == 1:
        raise ValueError("revoke_sessions needs a session, a user or a key")
    result = await conn.execute(update(sessions).where(*conditions).values(revoked_at=at))
    return int(result.rowcount or 0)


async def set_password_hash(conn: AsyncConnection, user_id: str, password_hash: str, at: datetime) -> None:
    """Replace the user's page password hash (delete + insert: the same on SQLite and PostgreSQL)."""
    await conn.execute(delete(user_passwords).where(user_passwords.c.user_id == user_id))
    await conn.execute(insert(user_passwords).values(user_id=user_id, password_hash=password_hash, updated_at=at))


async def find_password_hash(conn: AsyncConnection, user_id: str) -> str | None:
    row = (
        await conn.execute(select(user_passwords.c.password_hash).where(user_passwords.c.user_id == user_id))
    ).first()
    return None if row is None else str(row.password_hash)


async def user_exists(conn: AsyncConnection, user_id: str) -> bool:
    return (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is not None
