"""API keys: shown once at creation, kept only as a hash.

A key is `<key id>.<32 random bytes, base64url>`. The secret has 256 bits of entropy, so a plain
SHA-256 (no slow KDF) is enough to make a stolen table useless, and lets a request's key be
looked up by its hash in one indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest, NotFound
from genvault.ids import new_id
from genvault.store.schema import api_keys, users
from genvault.store.sessions import revoke_sessions

__all__ = ["KeyRow", "create_key", "find_key", "hash_key", "list_keys", "revoke_key", "user_for_key"]


def hash_key(plaintext: str) -> str:
    return "sha256:" + hashlib.sha256(plaintext.encode()).hexdigest()


async def create_key(
    conn: AsyncConnection,
    user_id: str,
    name: str,
    *,
    expires_at: datetime | None = None,
    models: list[str] | None = None,
) -> tuple[str, str]:
    """Returns (key id, the full key). The full key is not stored and cannot be shown again.
    `expires_at`: the key stops working then (401). `models`: the only `provider/model` names it
    may call (403 for others); None: every model."""
    exists = (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first()
    if exists is None:
        raise NotFound(f"no user {user_id!r}; create it first with `genvault users add`")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequest("the expiry time needs a time zone (UTC)")
    if models is not None:
        bad = [m for m in models if "/" not in m or not m.strip() or len(m) > 200]
        if bad:
            raise InvalidRequest(f"models must be provider/model names like openai/gpt-4o-mini, got {bad[0]!r}")
    key_id = new_id("key")
    plaintext = f"{key_id}.{secrets.token_urlsafe(32)}"
    await conn.execute(
        insert(api_keys).values(
            id=key_id,
            user_id=user_id,
            name=name,
            secret_hash=hash_key(plaintext),
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            models=models,
        )
    )
    return key_id, plaintext


class KeyRow(NamedTuple):
    id: str
    user_id: str
    expires_at: datetime | None
    models: list[str] | None


_FIND = select(api_keys.c.id, api_keys.c.user_id, api_keys.c.expires_at, api_keys.c.models).where(
    api_keys.c.secret_hash == bindparam("secret_hash"), api_keys.c.revoked_at.is_(None)
)


async def find_key(conn: AsyncConnection, plaintext: str) -> KeyRow | None:
    """A valid, unrevoked key (expired or not: the caller says which); None otherwise."""
    row = (await conn.execute(_FIND, {"secret_hash": hash_key(plaintext)})).first()
    return None if row is None else KeyRow(str(row.id), str(row.user_id), row.expires_at, row.models)


async def user_for_key(conn: AsyncConnection, plaintext: str) -> str | None:
    """The user a valid, unrevoked key belongs to; None otherwise."""
    row = (
        await conn.execute(
            select(api_keys.c.user_id).where(
                api_keys.c.secret_hash == hash_key(plaintext), api_keys.c.revoked_at.is_(None)
            )
        )
    ).first()
    return None if row is None else str(row.user_id)


async def list_keys(conn: AsyncConnection, user_id: str | None = None) -> list[dict[str, Any]]:
    query = select(
        api_keys.c.id,
        api_keys.c.user_id,
        api_keys.c.name,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
        api_keys.c.expires_at,
        api_keys.c.models,
    )
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    return [dict(r) for r in (await conn.execute(query.order_by(api_keys.c.created_at))).mappings()]


async def revoke_key(conn: AsyncConnection, key_id: str) -> None:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if result.rowcount == 0:
        raise NotFound(f"no active key {key_id!r}")
    # The pages' sessions signed in with this key end with it (they would fail the key check
    # anyway; this makes it visible in the session list).
    await revoke_sessions(conn, datetime.now(UTC), key_id=key_id)
