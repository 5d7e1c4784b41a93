"""`Webhooks`: an admin's subscriptions, and this process's delivery worker over the outbox.

Delivery is at-least-once: a row leaves `pending` only when a receiver answered 2xx (`delivered`)
or after `webhook_max_attempts` failures (`dead`; a retry puts it back). The worker claims due rows
with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer), so two processes
never send the same row at once, and a row whose process died mid-send is claimable again once
its lease expires. A row is not due while an earlier row of the same webhook and ordering key is
still pending, so the events of one generation (or one chat) arrive in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import Conflict, InvalidRequest, NotFound
from genvault.ids import new_id
from genvault.records import Generation
from genvault.settings import Settings
from genvault.store import Store
from genvault.store.audit import user_hash
from genvault.store.schema import webhook_deliveries, webhooks
from genvault.webhooks._events import (
    EVENTS,
    STATUS_EVENTS,
    enqueue_chat_deleted,
    enqueue_generation,
    enqueue_user_erased,
)
from genvault.webhooks._signing import sign

__all__ = ["Delivery", "DeliveryStatus", "Webhook", "WebhookCreated", "Webhooks"]

log = logging.getLogger(__name__)

DeliveryStatus = Literal["pending", "delivered", "dead"]
# The attempts a delivery row remembers (the newest); `attempts` counts them all.
LOG_ENTRIES = 20
CLAIM_BATCH = 20
MAX_URL = 2000


class Webhook(BaseModel):
    """A subscription, as listed (never its secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    events: list[str]
    description: str | None = None
    active: bool
    created_at: datetime


class WebhookCreated(Webhook):
    """What `add` returns, once: with the secret that signs the deliveries."""

    secret: str


class Delivery(BaseModel):
    """One event for one webhook, and how its delivery went."""

    model_config = ConfigDict(frozen=True)

    id: int
    webhook_id: str
    event_id: str
    event: str
    ordering_key: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    log: list[dict[str, Any]]
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise InvalidRequest(f"url must be an http(s) URL of at most {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"url must be an http:// or https:// URL with a host, got {url[:100]!r}")
    return url


def _check_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidRequest(f"events must be a non-empty list of: {', '.join(EVENTS)}")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InvalidRequest(f"unknown event {unknown[0][:60]!r}; choose from {', '.join(EVENTS)}")
    return sorted(set(events), key=EVENTS.index)


def _check_secret(secret: Any) -> str:
    if secret is None:
        return "whsec_" + secrets.token_urlsafe(32)
    if not isinstance(secret, str) or not 16 <= len(secret) <= 200 or not secret.isprintable():
        raise InvalidRequest("secret must be 16 to 200 printable characters (leave it out to have one made)")
    return secret


def _check_description(description: Any) -> str | None:
    if description is not None and (not isinstance(description, str) or len(description) > 500):
        raise InvalidRequest("description must be text of at most 500 characters")
    return description


def _webhook(row: RowMapping) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=[e for e in row["events"].split(",") if e],
        description=row["description"],
        active=bool(row["active"]),
        created_at=row["created_at"],
    )


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event=row["event"],
        ordering_key=row["ordering_key"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        log=list(row["log"] or []),
        payload=json.loads(row["body"]),
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


def backoff_seconds(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with full jitter in its upper half: base·2^(n-1), at most `ceiling`."""
    return min(ceiling, base * 2.0 ** max(0, attempts - 1)) * random.uniform(0.5, 1.0)


class Webhooks:
    """Subscriptions (`add`, `all`, `get`, `update`, `remove`), the delivery log
    (`deliveries`, `retry`), and the worker (`start`, `deliver_due`, `aclose`)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        owner_id: Callable[[], str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._owner_id = owner_id
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Which events have an active subscriber, as this process last read it, and until when
        # that reading counts (monotonic seconds). While fresh, an event nobody subscribed to
        # costs its transaction no statement; stale or never read, the outbox insert runs (it
        # finds the subscribers itself, so it is always right, only not free).
        self._subscribed: frozenset[str] = frozenset()
        self._fresh_until = 0.0

    # -- events, in the transaction that makes them -------------------------------------------

    def wants(self, status: str) -> bool:
        """Whether a record ending with `status` may have a subscriber (the engine's final hook)."""
        event = STATUS_EVENTS.get(status)
        return event is not None and self._may_want(event)

    def _may_want(self, event: str) -> bool:
        return time.monotonic() > self._fresh_until or event in self._subscribed

    async def on_final(self, conn: AsyncConnection, record: Generation) -> None:
        """The event of a record that just became final, in that transaction."""
        await enqueue_generation(conn, record)

    async def chat_deleted(self, conn: AsyncConnection, chat_id: str, user_id: str) -> None:
        if self._may_want("chat.deleted"):
            await enqueue_chat_deleted(conn, chat_id, user_id)

    async def user_erased(self, conn: AsyncConnection, user_id: str, audit_id: str, at: datetime) -> None:
        if self._may_want("user.erased"):
            await enqueue_user_erased(conn, user_id, audit_id, at)

    async def refresh(self) -> None:
        """Read which events have an active subscriber; the reading counts for a poll interval
        and a second (the worker reads it again every poll)."""

        async def read(conn: AsyncConnection) -> frozenset[str]:
            rows = (await conn.execute(select(webhooks.c.events).where(webhooks.c.active.is_(True)))).scalars()
            return frozenset(e for row in rows for e in row.split(",") if e)

        # Without the checkout's ping (a round trip every poll); a dead connection is retried on a pinged one.
        events = await self.store.read_retrying(read)
        self._subscribed = events
        self._fresh_until = time.monotonic() + self.settings.webhook_poll_seconds + 1.0

    def _forget(self) -> None:
        """After a change of subscriptions here: this process writes every event until it reads
        them again (at once, when its worker runs)."""
        self._fresh_until = 0.0
        self._wake.set()

    # -- subscriptions --------------------------------------------------------------------------

    async def add(
        self, url: str, events: list[str], *, secret: str | None = None, description: str | None = None
    ) -> WebhookCreated:
        values = {
            "id": new_id("wh"),
            "url": _check_url(url),
            "events": "," + ",".join(_check_events(events)) + ",",
            "secret": _check_secret(secret),
            "description": _check_description(description),
            "active": True,
            "created_at": _now(),
        }
        async with self.store.write() as conn:
            await conn.execute(webhooks.insert().values(**values))
        self._forget()
        return WebhookCreated(**_webhook(values).model_dump(), secret=values["secret"])  # type: ignore[arg-type]

    async def all(self) -> list[Webhook]:
        async with self.store.read() as conn:
            rows = (await conn.execute(select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id))).mappings()
            return [_webhook(row) for row in rows]

    async def get(self, webhook_id: str) -> Webhook:
        async with self.store.read() as conn:
            return await self._get(conn, webhook_id)

    async def _get(self, conn: AsyncConnection, webhook_id: str) -> Webhook:
        if not isinstance(webhook_id, str) or len(webhook_id) > 40:
            raise NotFound(f"no webhook {str(webhook_id)[:40]!r}")
        row = (await conn.execute(select(webhooks).where(webhooks.c.id == webhook_id))).mappings().first()
        if row is None:
            raise NotFound(f"no webhook {webhook_id!r}")
        return _webhook(row)

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        active: bool | None = None,
        description: str | None = None,
    ) -> Webhook:
        """Change what is given; the rest stays (the secret never changes: add a new webhook)."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = _check_url(url)
        if events is not None:
            values["events"] = "," + ",".join(_check_events(events)) + ","
        if active is not None:
            if not isinstance(active, bool):
                raise InvalidRequest("active must be true or false")
            values["active"] = active
        if description is not None:
            values["description"] = _check_description(description)
        async with self.store.write() as conn:
            await self._get(conn, webhook_id)
            if values:
                await conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))
            changed = await self._get(conn, webhook_id)
        self._forget()
        return changed

    async def remove(self, webhook_id: str) -> None:
        """The webhook and its delivery log (pending deliveries are dropped with it)."""
        async with self.store.write() as conn:
            await self._get(conn, webhook_id)
            # Explicitly, not only by the foreign key's CASCADE, which SQLite applies only with
            # its foreign keys pragma on.
            await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
            await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
        self._forget()

    # -- the delivery log -----------------------------------------------------------------------

    async def deliveries(
        self,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Delivery]:
        """Newest first; `before`: only deliveries with a smaller id (the next page)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidRequest(f"limit must be between 1 and 1000, got {limit!r}")
        if status is not None and status not in ("pending", "delivered", "dead"):
            raise InvalidRequest(f"status must be pending, delivered or dead, got {str(status)[:40]!r}")
        d = webhook_deliveries
        query = select(d).where(d.c.webhook_id == webhook_id)
        if status is not None:
            query = query.where(d.c.status == status)
        if before is not None:
            query = query.where(d.c.id < before)
        async with self.store.read() as conn:
            await self._get(conn, webhook_id)
            rows = (await conn.execute(query.order_by(d.c.id.desc()).limit(limit))).mappings()
            return [_delivery(row) for row in rows]

    async def get_delivery(self, delivery_id: int) -> Delivery:
        async with self.store.read() as conn:
            return await self._get_delivery(conn, delivery_id)

    async def _get_delivery(self, conn: AsyncConnection, delivery_id: int) -> Delivery:
        if isinstance(delivery_id, bool) or not isinstance(delivery_id, int) or not 0 < delivery_id < 2**63:
            raise NotFound(f"no delivery {delivery_id!r}")
        d = webhook_deliveries
        row = (await conn.execute(select(d).where(d.c.id == delivery_id))).mappings().first()
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        return _delivery(row)

    async def retry(self, delivery_id: int, *, webhook_id: str | None = None) -> Delivery:
        """Send a `dead` (or already `delivered`) delivery again, from a fresh count of attempts;
        its log keeps the earlier ones. A `pending` one is being tried already: `Conflict`."""
        d = webhook_deliveries
        async with self.store.write() as conn:
            found = await self._get_delivery(conn, delivery_id)
            if webhook_id is not None and found.webhook_id != webhook_id:
                raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id!r}")
            if found.status == "pending":
                raise Conflict(f"delivery {delivery_id} is pending already (attempt {found.attempts + 1} is due)")
            await conn.execute(
                update(d)
                .where(d.c.id == delivery_id, d.c.status != "pending")
                .values(status="pending", attempts=0, next_attempt_at=_now(), lease_owner=None, lease_expires_at=None)
            )
            retried = await self._get_delivery(conn, delivery_id)
        self._wake.set()
        return retried

    # -- the worker -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the subscriptions, then deliver in the background until `aclose` (one worker
        per process)."""
        if self._task is None:
            await self.refresh()
            self._task = asyncio.create_task(self._run(), name="genvault:webhooks")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
                # No active webhook: nothing is due (deliveries of inactive ones wait).
                sent = await self.deliver_due() if self._subscribed else 0
            except Exception:
                log.warning("webhook delivery pass failed", exc_info=True)
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_seconds)
                self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim the due deliveries (up to a batch), send them, record how each went; returns how
        many were attempted."""
        claimed = await self._claim()
        if claimed:
            await asyncio.gather(*(self._send(row) for row in claimed))
        return len(claimed)

    async def _claim(self) -> list[dict[str, Any]]:
        now = _now()
        owner = self._owner_id()
        d = webhook_deliveries
        earlier = d.alias("earlier")
        blocked = exists().where(
            earlier.c.webhook_id == d.c.webhook_id,
            earlier.c.ordering_key == d.c.ordering_key,
            earlier.c.id < d.c.id,
            earlier.c.status == "pending",
        )
        free = or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at < now)
        active = select(webhooks.c.id).where(webhooks.c.active.is_(True))
        due = (
            select(d.c.id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now, free, d.c.webhook_id.in_(active), ~blocked)
            .order_by(d.c.id)
            .limit(CLAIM_BATCH)
        )
        # A read first: an idle poll takes no write lock (SQLite has one writer).
        async with self.store.read() as conn:
            if (await conn.execute(due.limit(1))).first() is None:
                return []
        if self.store.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True, of=d)
        lease = now + timedelta(seconds=self.settings.webhook_lease_seconds)
        async with self.store.write() as conn:
            ids = list((await conn.execute(due)).scalars().all())
            if not ids:
                return []
            await conn.execute(update(d).where(d.c.id.in_(ids), free).values(lease_owner=owner, lease_expires_at=lease))
            query = (
                select(d, webhooks.c.url, webhooks.c.secret)
                .join(webhooks, webhooks.c.id == d.c.webhook_id)
                .where(d.c.id.in_(ids), d.c.lease_owner == owner)
                .order_by(d.c.id)
            )
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False, trust_env=False)
        return self._client

    async def _send(self, row: dict[str, Any]) -> None:
        body: bytes = row["body"].encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "genvault-webhooks",
            "Genvault-Event-Id": row["event_id"],
            "Genvault-Event": row["event"],
            "Genvault-Delivery-Id": str(row["id"]),
            "Genvault-Timestamp": str(timestamp),
            "Genvault-Signature": sign(row["secret"], timestamp, body),
        }
        code: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(
                row["url"], content=body, headers=headers, timeout=self.settings.webhook_timeout_seconds
            )
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.TimeoutException:
            error = f"timed out after {self.settings.webhook_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        try:
            await self._record(row, code, error)
        except Exception:  # the lease runs out and the row is sent again: at-least-once
            log.warning("could not record the delivery of webhook event %s", row["event_id"], exc_info=True)

    async def _record(self, row: dict[str, Any], code: int | None, error: str | None) -> None:
        now = _now()
        attempts = row["attempts"] + 1
        entry = {"at": now.isoformat(), "status_code": code, "error": error}
        entries = [*(row["log"] or [])[-(LOG_ENTRIES - 1) :], entry]
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": code,
            "last_error": error,
            "log": entries,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if error is None:
            values.update(status="delivered", delivered_at=now)
            if row["event"] == "user.erased":
                values["body"] = _pseudonymised(row["body"])
        elif attempts >= self.settings.webhook_max_attempts:
            values["status"] = "dead"
            log.warning("webhook event %s is dead after %d attempts: %s", row["event_id"], attempts, error)
        else:
            delay = backoff_seconds(
                attempts, self.settings.webhook_backoff_seconds, self.settings.webhook_backoff_max_seconds
            )
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        d = webhook_deliveries
        async with self.store.write() as conn:
            await conn.execute(
                update(d)
                .where(d.c.id == row["id"], d.c.status == "pending", d.c.lease_owner == self._owner_id())
                .values(**values)
            )


def _pseudonymised(body: str) -> str:
    """A delivered `user.erased` event keeps the user's pseudonym, not their id: after erasure no
    row may hold the id once the receivers have been told it."""
    event = json.loads(body)
    user_id = event.get("data", {}).pop("user_id", None)
    if isinstance(user_id, str):
        event["data"]["user_hash"] = user_hash(user_id)
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
