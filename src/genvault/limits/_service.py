"""`Limits`: admission, reservations and rate limits, composed by the `Vault` and called by the
engine at two narrow points before a generation's pending record is written:

1. `admit` before anything is written: the key's expiry and model list, requests per minute,
   tokens per minute. Refused: `Unauthorized`, `Forbidden` or `LimitExceeded`.
2. `reserve` just before the pending record is written: prices the worst case and says what the
   record holds (its `reservation` column). The database takes it with the record's own insert
   (a trigger: one conditional upsert per limited subject, revision 0015), atomically against
   every budget and across processes; refused, the insert fails (`refused(exc)`), nothing of the
   request is written, and `refusal` names the limit.

Whatever ends the record (finalize, a cancel from any process, the sweeper, shutdown) settles the
reservation by the same update that ends it (the other trigger): nobody has to remember to.

Limits themselves are cached in each process and re-read every `limits_refresh_seconds`, so a
turn costs no extra statement: the reservation and the settlement ride on the statements that
write the record anyway. Why not in Redis: see `genvault.limits._ledger`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import Forbidden, InvalidRequest, LimitExceeded, NotFound, Unauthorized
from genvault.limits import _ledger as ledger
from genvault.limits._context import KeyGrant, acting_key
from genvault.limits._cost import worst_case
from genvault.limits._model import Caps, LimitName, LimitSet, LimitsStatus, LimitUsage
from genvault.limits._rates import RateWindows
from genvault.money import nano_usd_text
from genvault.providers.base import ModelRequest, StreamUsage
from genvault.settings import Settings
from genvault.store import Store
from genvault.store.db import insert_for
from genvault.store.schema import LIMIT_REFUSED, api_keys, generations, limits, users

__all__ = ["Admission", "Limits", "SubjectKind"]

log = logging.getLogger(__name__)

SubjectKind = Literal["default", "user", "key"]
_NONE = Caps()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(now: datetime) -> datetime:
    return _day_start(now).replace(day=1)


def _next_month(now: datetime) -> datetime:
    start = _month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass
class Admission:
    """One admitted request: what it counts against, and (after `reserve`) what it holds."""

    user_id: str
    key_id: str | None
    day: str
    month: str
    # Subjects whose spend and running count the ledger keeps, with their limits.
    counted: list[tuple[str, Caps]] = field(default_factory=list)
    # Subjects with a tokens-per-minute limit, counted when the generation ends.
    tokens: list[tuple[str, int]] = field(default_factory=list)
    nano: int = 0
    subjects: list[str] = field(default_factory=list)  # the reservation is held on these
    # Per subject, the caps the reservation is checked against (`ledger.NO_CAP`: none).
    caps: list[dict[str, int]] = field(default_factory=list)
    unpriced: bool = False

    def reservation(self) -> dict[str, Any] | None:
        """What the generation row keeps: the pending insert's trigger takes it against the caps
        (revision 0015), and the update that ends the record releases exactly this."""
        if not self.subjects:
            return None
        caps = [
            [None if c[name] == ledger.NO_CAP else c[name] for name in ("daily", "monthly", "total", "concurrent")]
            for c in self.caps
        ]
        held: dict[str, Any] = {
            "nano": self.nano,
            "day": self.day,
            "month": self.month,
            "subjects": self.subjects,
            "caps": caps,
        }
        if self.unpriced:
            held["unpriced"] = True  # admitted against request, token and concurrency limits only
        return held


class Limits:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        redis_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        # Injected in tests (a month rolling over); every window and reset is computed from it.
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.rates = RateWindows(redis_url, settings.redis_prefix)
        self._caps: dict[str, Caps] = {}
        self._loaded_at = float("-inf")
        # The refresh under way, which every admission that finds the limits stale awaits: one
        # read per refresh interval, not one per concurrent turn (eight turns at once all found
        # them stale together and each read the table).
        self._loading: asyncio.Future[None] | None = None
        # Refusals by limit name since this process started (the server's metrics read it).
        self.refusals: Counter[str] = Counter()

    # -- limits themselves ---------------------------------------------------------------------

    async def load(self) -> None:
        async def read(conn: AsyncConnection) -> Sequence[Row[Any]]:
            return (await conn.execute(select(limits))).all()

        # Without the checkout's ping (a round trip every `limits_refresh_seconds`, on a turn's
        # way); a dead connection is retried on a pinged one.
        rows = await self.store.read_retrying(read)
        self._caps = {row.subject: Caps.of(LimitSet.from_row(row)) for row in rows}
        self._loaded_at = time.monotonic()

    async def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at <= self.settings.limits_refresh_seconds:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load_once())
        # Shielded: a caller that goes away (its request cancelled) leaves the read to the others.
        await asyncio.shield(self._loading)

    async def _load_once(self) -> None:
        try:
            await self.load()
        finally:
            self._loading = None

    @staticmethod
    def subject(kind: SubjectKind, subject_id: str | None) -> str:
        if kind == "default":
            return "default"
        if not subject_id:
            raise InvalidRequest(f"a {kind} limit needs the {kind}'s id")
        return f"{kind}:{subject_id}"

    async def set_limits(self, kind: SubjectKind, subject_id: str | None, values: LimitSet) -> LimitSet:
        """Replace a subject's limits (all fields: `None` removes that limit; all `None` removes
        the row), then rebuild its ledger from the generations, so spend made before the limit
        existed counts against it."""
        subject = self.subject(kind, subject_id)
        now = self.clock()
        async with self.store.write() as conn:
            owner = await self._owner(conn, kind, subject_id)
            if values.is_empty:
                await conn.execute(delete(limits).where(limits.c.subject == subject))
            else:
                row = {**values.to_row(), "user_id": owner, "updated_at": now}
                insert = insert_for(conn.dialect.name, limits).values(subject=subject, **row)
                await conn.execute(insert.on_conflict_do_update(index_elements=[limits.c.subject], set_=row))
            if kind == "default":
                user_ids = (await conn.execute(select(users.c.id))).scalars().all()
                for user_id in user_ids:
                    await self._rebuild(conn, f"user:{user_id}", user_id, generations.c.user_id == user_id, now)
            else:
                assert owner is not None  # a user's or a key's, checked by _owner
                column = generations.c.user_id if kind == "user" else generations.c.api_key_id
                await self._rebuild(conn, subject, owner, column == subject_id, now)
        await self.load()
        return values

    async def _owner(self, conn: AsyncConnection, kind: SubjectKind, subject_id: str | None) -> str | None:
        if kind == "user":
            if (await conn.execute(select(users.c.id).where(users.c.id == subject_id))).first() is None:
                raise NotFound(f"no user {subject_id!r}")
            return subject_id
        if kind == "key":
            owner = (await conn.execute(select(api_keys.c.user_id).where(api_keys.c.id == subject_id))).scalar()
            if owner is None:
                raise NotFound(f"no API key {subject_id!r}")
            return str(owner)
        return None

    async def _rebuild(self, conn: AsyncConnection, subject: str, user_id: str, condition: Any, now: datetime) -> None:
        await ledger.rebuild(
            conn,
            subject=subject,
            user_id=user_id,
            condition=condition,
            day=now.strftime("%Y-%m-%d"),
            month=now.strftime("%Y-%m"),
            day_start=_day_start(now),
            month_start=_month_start(now),
        )

    async def list_limits(self) -> dict[str, LimitSet]:
        """Every subject's limits: `default`, `user:<id>`, `key:<id>`."""
        async with self.store.read() as conn:
            rows = (await conn.execute(select(limits).order_by(limits.c.subject))).all()
        return {row.subject: LimitSet.from_row(row) for row in rows}

    async def get_limits(self, kind: SubjectKind, subject_id: str | None) -> LimitSet:
        subject = self.subject(kind, subject_id)
        async with self.store.read() as conn:
            if kind != "default":
                await self._owner(conn, kind, subject_id)
            row = (await conn.execute(select(limits).where(limits.c.subject == subject))).first()
        return LimitSet() if row is None else LimitSet.from_row(row)

    # -- 1. admission, before anything is written ----------------------------------------------

    async def admit(self, *, user_id: str, model: str) -> Admission | None:
        """Check the key and the rate limits; None when no limit and no key applies."""
        if time.monotonic() - self._loaded_at > self.settings.limits_refresh_seconds:
            await self._fresh()  # (a coroutine only when the limits are due to be read again)
        grant: KeyGrant | None = acting_key.get()
        if grant is not None and grant.user_id != user_id:
            grant = None  # acting for another user (an admin tool): that user's limits only
        if grant is None and not self._caps:
            # No key and no limit on anyone: what the subjects below come to (none), found
            # without building them.
            return None
        now = self.clock()
        if grant is not None:
            if grant.expires_at is not None and grant.expires_at <= now:
                raise Unauthorized(f"this API key expired at {grant.expires_at.isoformat()}")
            if grant.models is not None and model not in grant.models:
                raise Forbidden(
                    f"this API key may not call {model}; it may call: {', '.join(grant.models) or 'nothing'}"
                )
        user_subject = f"user:{user_id}"
        subjects = [(user_subject, self._caps.get(user_subject, _NONE).over(self._caps.get("default", _NONE)))]
        if grant is not None:
            subjects.append((f"key:{grant.id}", self._caps.get(f"key:{grant.id}", _NONE)))
        subjects = [(s, c) for s, c in subjects if c != _NONE]
        if not subjects and grant is None:
            return None
        rated = [(s, c.rpm) for s, c in subjects if c.rpm is not None]
        for subject, tpm in [(s, c.tpm) for s, c in subjects if c.tpm is not None]:
            if not await self.rates.fits("tpm", subject, tpm):
                raise await self._rate_refusal("tpm", subject, tpm)
        if len(rated) > 1:  # all must fit before any counts the request
            for subject, rpm in rated:
                if not await self.rates.fits("rpm", subject, rpm):
                    raise await self._rate_refusal("rpm", subject, rpm)
        for subject, rpm in rated:
            if not await self.rates.hit("rpm", subject, rpm):
                raise await self._rate_refusal("rpm", subject, rpm)
        return Admission(
            user_id=user_id,
            key_id=grant.id if grant is not None else None,
            day=now.strftime("%Y-%m-%d"),
            month=now.strftime("%Y-%m"),
            counted=[(s, c) for s, c in subjects if c.counted],
            tokens=[(s, c.tpm) for s, c in subjects if c.tpm is not None],
        )

    async def _rate_refusal(self, limit: Literal["rpm", "tpm"], subject: str, per_minute: int) -> LimitExceeded:
        state = await self.rates.state(limit, subject, per_minute)
        wait = max(1, int(state.reset_at - time.time() + 0.999))
        resets_at = self.clock() + timedelta(seconds=wait)
        what = "requests" if limit == "rpm" else "tokens"
        return self._refused(
            limit,
            subject,
            str(per_minute),
            str(state.used),
            resets_at,
            wait,
            f"{what} per minute: {state.used} of {per_minute} in the last minute",
        )

    def _refused(
        self,
        limit: LimitName,
        subject: str,
        limit_value: str,
        used: str,
        resets_at: datetime | None,
        retry_after: int | None,
        detail: str,
    ) -> LimitExceeded:
        self.refusals[limit] += 1
        when = f"; it resets at {resets_at.isoformat()}" if resets_at else "; it does not reset"
        if limit == "concurrent":
            when = "; retry when one of them ends"
        return LimitExceeded(
            f"limit reached ({limit} of {subject}): {detail}{when}",
            limit=limit,
            subject=subject,
            limit_value=limit_value,
            used=used,
            resets_at=resets_at,
            retry_after=retry_after,
        )

    # -- 2. reservation, taken by the pending record's insert ---------------------------------

    async def reserve(self, admission: Admission, provider: str, model: str, request: ModelRequest) -> None:
        """Price the request's worst case and say what its record holds (`Admission.reservation`,
        written with the pending row, whose insert takes it atomically or fails: `refused`).
        Raises `LimitExceeded` at once when the worst case alone is over a limit. No statement."""
        if not admission.counted:
            return
        found = worst_case(
            provider,
            model,
            request,
            overrides=self.settings.price_overrides,
            default_output_tokens=self.settings.limits_max_output_tokens,
        )
        worst = None if found is None else found[0]
        budgeted = any((c.daily, c.monthly, c.total) != (None, None, None) for _, c in admission.counted)
        if found is not None and budgeted and "max_tokens" not in request.params:
            # The reservation assumed at most this much output: the provider is told so, or the
            # true cost could pass it. A new dict (the caller's may be the stored request's).
            request.params = {**request.params, "max_tokens": found[1]}
        admission.unpriced = worst is None
        if worst is None:
            log.info("%s/%s has no known price: admitted against request and concurrency limits only", provider, model)
        nano = worst or 0

        def cap(value: int | None, money: bool) -> int:
            return ledger.NO_CAP if value is None or (money and worst is None) else value

        caps = [
            {
                "daily": cap(c.daily, True),
                "monthly": cap(c.monthly, True),
                "total": cap(c.total, True),
                "concurrent": cap(c.concurrent, False),
            }
            for _, c in admission.counted
        ]
        admission.nano = nano
        admission.subjects = [s for s, _ in admission.counted]
        admission.caps = caps
        # A subject without a ledger row gets one holding just this reservation, unchecked: so
        # a reservation over a limit on its own is refused here.
        if not all(nano <= min(c["daily"], c["monthly"], c["total"]) and c["concurrent"] >= 1 for c in caps):
            raise await self.refusal(admission)

    @staticmethod
    def refused(exc: BaseException) -> bool:
        """Whether `exc` (or what it wraps) is the reserve trigger's refusal."""
        seen: BaseException | None = exc
        for _ in range(8):
            if seen is None:
                return False
            if LIMIT_REFUSED in str(seen):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    async def refusal(self, admission: Admission) -> LimitExceeded:
        """The `LimitExceeded` for a reservation that did not fit, naming the limit (read after
        the refused statement rolled back)."""
        subjects = list(zip(admission.subjects, admission.caps, strict=True))
        async with self.store.read() as conn:
            rows = await ledger.read_rows(conn, admission.subjects)
        return self._budget_refusal(admission, subjects, rows, admission.nano)

    def _budget_refusal(
        self,
        admission: Admission,
        subjects: list[tuple[str, dict[str, int]]],
        rows: dict[str, ledger.UsageRow],
        nano: int,
    ) -> LimitExceeded:
        now = self.clock()
        first: LimitExceeded | None = None
        for subject, caps in subjects:
            row = rows.get(subject)
            day = row.used_day(admission.day) if row else 0
            month = row.used_month(admission.month) if row else 0
            total = row.total_nano_usd if row else 0
            running = row.running if row else 0
            next_day = _day_start(now) + timedelta(days=1)
            checks: list[tuple[LimitName, int, int, datetime | None]] = [
                ("daily_usd", day, caps["daily"], next_day),
                ("monthly_usd", month, caps["monthly"], _next_month(now)),
                ("total_usd", total, caps["total"], None),
            ]
            for limit, used, limit_nano, resets_at in checks:
                if limit_nano != ledger.NO_CAP and used + nano > limit_nano:
                    retry = None if resets_at is None else max(1, int((resets_at - now).total_seconds() + 0.999))
                    detail = (
                        f"${nano_usd_text(used)} of ${nano_usd_text(limit_nano)} used or held by running generations, "
                        f"and this request may cost up to ${nano_usd_text(nano)}"
                    )
                    return self._refused(
                        limit, subject, nano_usd_text(limit_nano), nano_usd_text(used), resets_at, retry, detail
                    )
            if caps["concurrent"] != ledger.NO_CAP and running + 1 > caps["concurrent"]:
                detail = f"{running} of {caps['concurrent']} generations are running"
                return self._refused("concurrent", subject, str(caps["concurrent"]), str(running), None, 1, detail)
            if first is None and caps["concurrent"] != ledger.NO_CAP:
                first = self._refused(
                    "concurrent", subject, str(caps["concurrent"]), str(running), None, 1, "too many running"
                )
        # The row changed between the reservation and this read (another request ended): say
        # the first limit, and let the client retry at once.
        return first or self._refused(
            "total_usd", subjects[0][0], "?", "?", None, 1, "the budget changed while this request was checked"
        )

    # -- 3. settlement: by the update that ends the record (revision 0015's triggers) ----------

    async def record_tokens(self, admission: Admission, usage: StreamUsage | None) -> None:
        """After the record is final: its tokens into the tokens-per-minute windows."""
        if not admission.tokens or usage is None:
            return
        tokens = usage.total_tokens or (usage.input_tokens or 0) + (usage.output_tokens or 0)
        for subject, tpm in admission.tokens:
            await self.rates.add("tpm", subject, tpm, tokens)

    # -- status --------------------------------------------------------------------------------

    async def status(self, user_id: str) -> LimitsStatus:
        """The user's limits (own, default, each key's) and how much of each is used."""
        await self.load()
        now = self.clock()
        async with self.store.read() as conn:
            if (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is None:
                raise NotFound(f"no user {user_id!r}")
            key_ids = (await conn.execute(select(api_keys.c.id).where(api_keys.c.user_id == user_id))).scalars().all()
            rows = (
                await conn.execute(select(limits).where(limits.c.subject.in_(["default", f"user:{user_id}"])))
            ).all()
            by_subject = {row.subject: LimitSet.from_row(row) for row in rows}
            key_rows = (
                await conn.execute(select(limits).where(limits.c.subject.in_([f"key:{k}" for k in key_ids])))
            ).all()
            keys = {row.subject.split(":", 1)[1]: LimitSet.from_row(row) for row in key_rows}
            subjects: list[tuple[str, Caps]] = [
                (
                    f"user:{user_id}",
                    Caps.of(by_subject.get(f"user:{user_id}", LimitSet())).over(
                        Caps.of(by_subject.get("default", LimitSet()))
                    ),
                ),
                *((f"key:{key_id}", Caps.of(values)) for key_id, values in keys.items()),
            ]
            usage_rows = await ledger.read_rows(conn, [s for s, _ in subjects])
        day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        usage: list[LimitUsage] = []
        for subject, caps in subjects:
            row = usage_rows.get(subject)
            reserved = nano_usd_text(row.reserved_nano_usd) if row else "0"
            money: list[tuple[LimitName, int | None, int, datetime | None]] = [
                ("daily_usd", caps.daily, row.used_day(day) if row else 0, _day_start(now) + timedelta(days=1)),
                ("monthly_usd", caps.monthly, row.used_month(month) if row else 0, _next_month(now)),
                ("total_usd", caps.total, row.total_nano_usd if row else 0, None),
            ]
            for limit, cap, used, resets_at in money:
                if cap is not None:
                    usage.append(
                        LimitUsage(
                            subject=subject,
                            limit=limit,
                            limit_value=nano_usd_text(cap),
                            used=nano_usd_text(used),
                            remaining=nano_usd_text(max(0, cap - used)),
                            resets_at=resets_at,
                            reserved=reserved,
                        )
                    )
            if caps.concurrent is not None:
                running = row.running if row else 0
                usage.append(
                    LimitUsage(
                        subject=subject,
                        limit="concurrent",
                        limit_value=str(caps.concurrent),
                        used=str(running),
                        remaining=str(max(0, caps.concurrent - running)),
                    )
                )
            for rate, per_minute in (("rpm", caps.rpm), ("tpm", caps.tpm)):
                if per_minute is not None:
                    state = await self.rates.state(rate, subject, per_minute)
                    usage.append(
                        LimitUsage(
                            subject=subject,
                            limit=rate,
                            limit_value=str(per_minute),
                            used=str(state.used),
                            remaining=str(max(0, per_minute - state.used)),
                            resets_at=datetime.fromtimestamp(state.reset_at, UTC) if state.used else None,
                        )
                    )
        return LimitsStatus(
            user_id=user_id,
            own=by_subject.get(f"user:{user_id}", LimitSet()),
            default=by_subject.get("default", LimitSet()),
            keys=keys,
            usage=usage,
        )

    async def aclose(self) -> None:
        # The Redis storage's client closes with the process; the memory storage has timers.
        storage: Any = self.rates.storage
        close = getattr(storage, "aclose", None) or getattr(storage, "close", None)
        if close is not None:
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:  # pragma: no cover - closing is best effort
                log.debug("closing the rate limit storage failed", exc_info=True)
