"""Browser sign-in sessions: what the pages use under `api_key` auth in place of a Bearer key.

Invariants:
- A session is made only from a valid API key (unknown, revoked or expired: `Unauthorized`) and
  acts as that key (its user, its expiry, its models), never as more.
- The cookie is `<session id>.<token>.<signature>`: a random 256-bit token and an HMAC-SHA256 of
  both with the server's session secret. Only `sha256(token)` is stored, compared in constant
  time; a cookie with a bad signature is refused before any database read.
- The CSRF token is derived from the session token (HMAC keyed by it), so only a page rendered
  for this session can know it; it needs no storage and changes with every sign-in.
- A session ends at its expiry, on sign-out, when its key is revoked or expires, and when its user
  is erased (the rows carry `user_id`); `resolve` checks all of these on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from genvault.errors import NotFound, Unauthorized
from genvault.ids import new_id
from genvault.settings import Settings
from genvault.store import Store
from genvault.store import sessions as session_store
from genvault.store.keys import find_key, hash_key
from genvault.store.sessions import SessionRow
from genvault.validation import check_id

__all__ = ["SessionInfo", "Sessions", "SignedIn", "csrf_token_for"]

log = logging.getLogger(__name__)


class SessionInfo(BaseModel):
    """A session as listed: never its token."""

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    key_id: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class SignedIn(BaseModel):
    """A new session: `cookie` goes to the browser once and is not kept."""

    model_config = ConfigDict(frozen=True)

    session: SessionInfo
    cookie: str
    csrf_token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def csrf_token_for(cookie: str) -> str:
    """The CSRF token of the session whose cookie this is (see the module docstring)."""
    token = cookie.split(".")[1] if cookie.count(".") == 2 else cookie
    return _b64(hmac.new(token.encode(), b"genvault csrf v1", hashlib.sha256).digest())


def _info(row: SessionRow) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        key_id=row.key_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class Sessions:
    def __init__(self, store: Store, settings: Settings, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.lifetime = timedelta(days=settings.session_days)
        self.clock = clock or (lambda: datetime.now(UTC))
        if settings.session_secret is not None:
            self._secret = settings.session_secret.get_secret_value().encode()
        else:
            self._secret = secrets.token_bytes(32)
            if settings.auth == "api_key":
                log.warning(
                    "GENVAULT_SESSION_SECRET is not set: page sign-ins last until this process stops "
                    "and work only on it; set the same secret on every process"
                )

    def _sign(self, session_id: str, token: str) -> str:
        return _b64(hmac.new(self._secret, f"{session_id}.{token}".encode(), hashlib.sha256).digest())

    async def sign_in_with_key(self, api_key: str) -> SignedIn:
        """A new session for the key's user, acting as that key."""
        api_key = api_key.strip()
        if not api_key or len(api_key) > 200:
            raise Unauthorized("enter an API key (from `genvault keys create`)")
        now = self.clock()
        async with self.store.write() as conn:
            key = await find_key(conn, api_key)
            if key is None:
                raise Unauthorized("this API key is not valid (unknown or revoked)")
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthorized(f"this API key expired at {key.expires_at.isoformat()}")
            session_id, token = new_id("ses"), secrets.token_urlsafe(32)
            expires_at = now + self.lifetime
            if key.expires_at is not None:
                expires_at = min(expires_at, key.expires_at)
            await session_store.insert_session(
                conn,
                session_id=session_id,
                user_id=key.user_id,
                key_id=key.id,
                token_hash=hash_key(token),
                created_at=now,
                expires_at=expires_at,
            )
        cookie = f"{session_id}.{token}.{self._sign(session_id, token)}"
        info = SessionInfo(
            id=session_id, user_id=key.user_id, key_id=key.id, created_at=now, expires_at=expires_at, revoked_at=None
        )
        return SignedIn(session=info, cookie=cookie, csrf_token=csrf_token_for(cookie))

    async def resolve(self, cookie: str) -> SessionRow | None:
        """The live session this cookie belongs to; None for a forged, ended or unknown one."""
        parts = cookie.split(".")
        if len(parts) != 3 or len(cookie) > 300:
            return None
        session_id, token, signature = parts
        if not hmac.compare_digest(signature.encode(), self._sign(session_id, token).encode()):
            return None
        async with self.store.read() as conn:
            row = await session_store.find_session(conn, session_id, self.clock())
        if row is None or not hmac.compare_digest(row.token_hash.encode(), hash_key(token).encode()):
            return None
        return row

    async def list(self, *, user_id: str | None, live_only: bool = True) -> list[SessionInfo]:
        async with self.store.read() as conn:
            rows = await session_store.list_sessions(conn, user_id=user_id, live_at=self.clock() if live_only else None)
        return [_info(r) for r in rows]

    async def revoke(self, session_id: str, *, user_id: str | None) -> None:
        """End one session (sign-out); `user_id`: only theirs (None: anyone's). NotFound for a
        session that is not live, or someone else's."""
        check_id(session_id, "session id")
        async with self.store.write() as conn:
            ended = await session_store.revoke_sessions(conn, self.clock(), session_id=session_id, user_id=user_id)
        if not ended:
            raise NotFound(f"no live session {session_id!r}")

    async def revoke_user(self, user_id: str) -> int:
        """End every live session of the user; returns how many."""
        async with self.store.write() as conn:
            return await session_store.revoke_sessions(conn, self.clock(), user_id=user_id)
