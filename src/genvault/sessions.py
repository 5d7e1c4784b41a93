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
- Passwords are optional (`set_password`): an argon2id hash (argon2-cffi, its default, RFC 9106
  low-memory parameters); a password session has no key and acts as the user. Setting a new
  password ends the user's sessions. A wrong user name and a wrong password get the same answer,
  and an unknown user costs one hash check too, so the answer does not tell which was wrong.
  After `FAILED_SIGN_INS_PER_MINUTE` wrong passwords for a user name within a minute, its next
  attempts are refused (`LimitExceeded`, 429) until the window moves on.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict

from genvault.errors import InvalidRequest, LimitExceeded, NotFound, Unauthorized
from genvault.ids import new_id
from genvault.limits._rates import RateWindows
from genvault.settings import Settings
from genvault.store import Store
from genvault.store import sessions as session_store
from genvault.store.keys import find_key, hash_key
from genvault.store.sessions import SessionRow
from genvault.validation import check_id, check_user_id

__all__ = ["FAILED_SIGN_INS_PER_MINUTE", "SessionInfo", "Sessions", "SignedIn", "csrf_token_for"]

log = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the user has no password, so both failures take the same work. Made
    on first use, not at import: an argon2id hash is ~0.3 s of CPU that every process start
    (`genvault serve`, each CLI command) would pay for a sign-in that may never come."""
    return _HASHER.hash("genvault: no such user")


_WRONG = "the user name or password is wrong"
# Wrong passwords a user name may take per minute (a moving window; in Redis when configured, so
# across processes): enough for typos, far too few for guessing.
FAILED_SIGN_INS_PER_MINUTE = 10


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
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        rates: RateWindows | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.rates = rates or RateWindows()
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
        async with self.store.read() as conn:
            key = await find_key(conn, api_key)
            if key is None:
                raise Unauthorized("this API key is not valid (unknown or revoked)")
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthorized(f"this API key expired at {key.expires_at.isoformat()}")
            expires_at = now + self.lifetime
            if key.expires_at is not None:
                expires_at = min(expires_at, key.expires_at)
        return await self._start(key.user_id, key.id, expires_at)

    async def _start(self, user_id: str, key_id: str | None, expires_at: datetime) -> SignedIn:
        session_id, token = new_id("ses"), secrets.token_urlsafe(32)
        now = self.clock()
        async with self.store.write() as conn:
            await session_store.insert_session(
                conn,
                session_id=session_id,
                user_id=user_id,
                key_id=key_id,
                token_hash=hash_key(token),
                created_at=now,
                expires_at=expires_at,
            )
        cookie = f"{session_id}.{token}.{self._sign(session_id, token)}"
        info = SessionInfo(
            id=session_id, user_id=user_id, key_id=key_id, created_at=now, expires_at=expires_at, revoked_at=None
        )
        return SignedIn(session=info, cookie=cookie, csrf_token=csrf_token_for(cookie))

    async def set_password(self, user_id: str, password: str) -> None:
        """Give the user a page password (replacing any) and end their sessions."""
        check_user_id(user_id)
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            raise InvalidRequest(f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
        hashed = await asyncio.to_thread(_HASHER.hash, password)
        async with self.store.write() as conn:
            if not await session_store.user_exists(conn, user_id):
                raise NotFound(f"no user {user_id!r}; create it first with `genvault users add`")
            await session_store.set_password_hash(conn, user_id, hashed, self.clock())
            await session_store.revoke_sessions(conn, self.clock(), user_id=user_id)

    async def sign_in_with_password(self, user_id: str, password: str) -> SignedIn:
        """A new session for the user whose password this is; `Unauthorized` otherwise."""
        user_id = user_id.strip()
        if not user_id or len(user_id) > 64 or not password or len(password) > MAX_PASSWORD_CHARS:
            raise Unauthorized(_WRONG)
        subject, cap = f"sign-in:{user_id}", FAILED_SIGN_INS_PER_MINUTE
        if not await self.rates.fits("rpm", subject, cap):
            window = await self.rates.state("rpm", subject, cap)
            wait = max(1, int(window.reset_at - datetime.now(UTC).timestamp()) + 1)
            raise LimitExceeded(
                f"too many wrong passwords for this user name; try again in {wait} s",
                limit="rpm",
                subject=subject,
                limit_value=str(cap),
                used=str(window.used),
                resets_at=datetime.fromtimestamp(window.reset_at, UTC),
                retry_after=wait,
            )
        async with self.store.read() as conn:
            stored = await session_store.find_password_hash(conn, user_id)
        try:
            await asyncio.to_thread(_HASHER.verify, stored or _dummy_hash(), password)
            if stored is None:
                raise VerificationError(_WRONG)
        except (VerificationError, InvalidHashError):
            await self.rates.hit("rpm", subject, cap)
            raise Unauthorized(_WRONG) from None
        return await self._start(user_id, None, self.clock() + self.lifetime)

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
