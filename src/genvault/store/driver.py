"""asyncpg connections for the hot paths (`Store.driver`), and the pool they come from.

A turn's opening and finalize, the page read and a standalone append each send one prebuilt
statement straight to asyncpg: its prepared-statement cache makes that one round trip, with no
SQLAlchemy Connection, cursor or result around it (the SQLite page read goes to aiosqlite the
same way). What SQLAlchemy would do on an error is done here: a lost connection is invalidated,
so the pool never hands it out again, and database errors become `StorageError`.

`DriverPool` holds those connections apart from the engine's pool: checking one out of
SQLAlchemy's pool and returning it (greenlet, queue, events, reset) cost about as much client CPU
as the statement itself (docs/benchmarks.md, issue 16's third round).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from genvault.errors import StorageError

__all__ = ["ConnectionLost", "DriverPool", "PoolBusy", "PooledDriver", "use_timestamp_codec"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class ConnectionLost(StorageError):
    """The connection was dead or died during the statement. `sent` is False only when it was
    found closed before anything was sent: then the statement certainly did not run. When True,
    it may have run (and, in autocommit, committed) before the connection went."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class PooledDriver:
    """A checked-out connection's asyncpg connection (`DriverPool`'s, or SQLAlchemy's pool's
    when the store has no `DriverPool`), outside any transaction: asyncpg runs each statement in
    a transaction of its own (autocommit)."""

    def __init__(self, pooled: Any) -> None:
        self._pooled = pooled  # invalidate() drops it from its pool
        self.connection: Any = pooled.driver_connection

    async def run(self, call: Callable[[Any], Awaitable[T]], *, what: str) -> T:
        """`call(asyncpg_connection)`, with its errors translated (`what`: "read", "write")."""
        import asyncpg

        if self.connection.is_closed():
            self._pooled.invalidate()
            raise ConnectionLost(f"database {what} failed: the connection is closed", sent=False)
        try:
            return await call(self.connection)
        except Exception as exc:
            if self.connection.is_closed() or isinstance(exc, OSError | asyncpg.PostgresConnectionError):
                self._pooled.invalidate()
                raise ConnectionLost(f"database {what} failed: {exc}", sent=True) from exc
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
                raise StorageError(f"database {what} failed: {exc}") from exc
            raise
        except BaseException:
            # Cancelled mid-statement: the protocol may still be waiting on the server's reply;
            # never hand that connection to the next caller.
            self._pooled.invalidate()
            raise


class PoolBusy(StorageError):
    """No connection of a `DriverPool` came free within its timeout (`Store` raises `Busy`)."""


class _Held:
    """A `DriverPool` connection while checked out, as `PooledDriver` sees a pooled one:
    `driver_connection`, and `invalidate()` to have it closed instead of reused."""

    __slots__ = ("driver_connection", "lost", "record")

    def __init__(self, record: Any) -> None:
        self.record = record  # SQLAlchemy's connection record: the connection as its pool sets one up
        self.driver_connection: Any = record.driver_connection
        self.lost = False

    def invalidate(self) -> None:
        self.lost = True


class DriverPool:
    """asyncpg connections for the hot-path statements (`Store.driver`), with a checkout that
    is a list pop and a return that is a list append: no greenlet, no pool events, no reset.

    Each connection is made by SQLAlchemy's own pool machinery (`_create_connection`: the
    dialect's connect and its `connect` events, so the same JSON codecs and search path as the
    engine's connections) but belongs to this pool, which keeps at most `size` of them open,
    opened on demand and kept once opened. A checkout waits at most `timeout` seconds for one
    to come free, then raises `PoolBusy`. A connection found closed, marked lost by
    `PooledDriver` (a lost connection, a statement cancelled midway) or failing the ping is
    terminated, never handed out again, and its place goes to the next waiter."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], *, size: int, timeout: float) -> None:
        self._connect = connect
        self.size = size
        self.timeout = timeout
        self._idle: list[_Held] = []  # most recently returned last: the warm ones go out first
        self._open = 0  # connections open or being opened
        self._waiters: collections.deque[asyncio.Future[_Held | None]] = collections.deque()
        self._closed = False
        self.discarded = 0  # connections terminated: found closed, lost, cancelled, failed the ping

    @property
    def open(self) -> int:
        return self._open

    def take(self) -> _Held | None:
        """An idle connection at once, unpinged, or None: then `acquire` (which opens one, waits
        for one, or raises). Spares a checkout that finds one idle, as most do, a coroutine."""
        while self._idle and not self._closed:
            held = self._idle.pop()
            if not held.driver_connection.is_closed():
                return held
            self._discard(held)
        return None

    async def acquire(self, *, ping: bool) -> _Held:
        deadline: float | None = None
        while True:
            if self._closed:
                raise StorageError("the database pool is closed")
            if self._idle:
                held = self._idle.pop()
                if held.driver_connection.is_closed():
                    self._discard(held)
                    continue
            elif self._open < self.size:
                return await self._new()
            else:
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + self.timeout
                got = await self._wait(deadline)
                if got is None:
                    continue  # a place came free: open a connection there (or take an idle one)
                held = got
            if not ping:
                return held
            try:
                await held.driver_connection.fetchrow(";")
            except Exception:
                self._discard(held)  # dead: the next one, or a new one in its place
                continue
            except BaseException:
                self._discard(held)  # cancelled mid-ping: its protocol may still be waiting
                raise
            return held

    def release(self, held: _Held) -> None:
        if held.lost or self._closed or held.driver_connection.is_closed():
            self._discard(held)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(held)
                return
        self._idle.append(held)

    async def fill(self, ready: Callable[[Any], Awaitable[None]] | None = None) -> int:
        """Open the connections not open yet, all at once, each put with the idle ones (or
        handed to a waiter) as soon as it is open (and, given `ready`, once `ready(connection)`
        made it ready for the hot statements); returns how many opened. For a server before its
        first requests: a burst of turns on a cold pool opened every connection while its first
        turns waited. One that fails to open is left to open on demand, as before; one whose
        `ready` fails is kept all the same (logged), unless it failed by losing the connection."""

        async def one() -> bool:
            # Checked when the task runs: a checkout meanwhile may have opened one already.
            if self._closed or self._open >= self.size:
                return False
            held = await self._new()
            if ready is not None:
                try:
                    await ready(held.driver_connection)
                except Exception:
                    log.warning("could not make a new database connection ready ahead", exc_info=True)
                except BaseException:
                    self._discard(held)  # cancelled midway: its protocol may still be waiting
                    raise
            self.release(held)  # a closed one is discarded there
            return True

        results = await asyncio.gather(*(one() for _ in range(self.size - self._open)), return_exceptions=True)
        return sum(1 for result in results if result is True)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for held in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(held.driver_connection.close(), 5)
            except Exception:
                held.driver_connection.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # woken to find the pool closed

    async def _new(self) -> _Held:
        self._open += 1
        try:
            return _Held(await self._connect())
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _wait(self, deadline: float) -> _Held | None:
        """The connection (or, None, the free place) handed to this waiter, first come first served."""
        waiter: asyncio.Future[_Held | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as the wait ended (timed out, cancelled): pass it on.
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self._wake()
            if isinstance(exc, TimeoutError):
                raise PoolBusy(f"no connection of {self.size} came free within {self.timeout:g} s") from None
            raise

    def _discard(self, held: _Held) -> None:
        self._open -= 1
        self.discarded += 1
        held.driver_connection.terminate()
        self._wake()

    def _wake(self) -> None:
        """A place came free: the first waiter still waiting opens a connection there."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


# `timestamptz` on the driver connections: the value as PostgreSQL's binary form holds it (its
# microseconds since 2000-01-01 UTC), asyncpg's "tuple" format. asyncpg's own encoder compares
# each value with its two infinities (naive, so each comparison asks the aware value for its
# offset), converts it to UTC and reads the difference's three fields, ~6.9 k instructions a
# value against ~3.8 k here (a turn binds about 12; docs/benchmarks.md, "pgloop"). The same
# integers either way: this is asyncpg's arithmetic (`pgproto/codecs/datetime.pyx`), with a
# shortcut for the aware-UTC values genvault's clock gives.
_UTC = dt.UTC
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=_UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_INFINITY, _NEGATIVE_INFINITY = 0x7FFFFFFFFFFFFFFF, -0x8000000000000000  # PostgreSQL's
# asyncpg's infinities: the naive extremes, and any value at their microsecond (in UTC) too.
_INFINITY_DATETIME, _NEGATIVE_INFINITY_DATETIME = dt.datetime.max, dt.datetime.min
_INFINITY_TS, _NEGATIVE_INFINITY_TS = 252455615999999999, -63082281600000000


def _encode_timestamptz(value: Any) -> tuple[int]:
    if type(value) is not dt.datetime or value.tzinfo is not _UTC:
        return _encode_other(value)
    ts = (value - _EPOCH) // _MICROSECOND  # `_since_epoch` written out: a call is a third of it
    if ts in (_INFINITY_TS, _NEGATIVE_INFINITY_TS):
        return (_INFINITY if ts > 0 else _NEGATIVE_INFINITY,)
    return (ts,)


def _since_epoch(value: dt.datetime) -> tuple[int]:
    """An aware datetime's microseconds since PostgreSQL's epoch; asyncpg's infinities' too."""
    ts = (value - _EPOCH) // _MICROSECOND
    if ts in (_INFINITY_TS, _NEGATIVE_INFINITY_TS):
        return (_INFINITY if ts > 0 else _NEGATIVE_INFINITY,)
    return (ts,)


def _encode_other(value: Any) -> tuple[int]:
    """asyncpg's `timestamptz_encode` for any other value: a date at local midnight, a naive
    datetime in local time, another zone's converted; its infinities."""
    if not isinstance(value, dt.datetime):
        if not isinstance(value, dt.date):
            raise TypeError(f"expected a datetime.date or datetime.datetime instance, got {type(value).__name__!r}")
        local = dt.datetime.now(_UTC).astimezone()
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone(local.utcoffset() or dt.timedelta()))
    if value == _INFINITY_DATETIME:
        return (_INFINITY,)
    if value == _NEGATIVE_INFINITY_DATETIME:
        return (_NEGATIVE_INFINITY,)
    return _since_epoch(value.astimezone(_UTC))  # a subclass stays one: not the fast path again


def _decode_timestamptz(value: tuple[int]) -> dt.datetime:
    """asyncpg's `timestamptz_decode`: UTC, or its naive extremes for PostgreSQL's infinities."""
    ts = value[0]
    if ts == _INFINITY:
        return _INFINITY_DATETIME
    if ts == _NEGATIVE_INFINITY:
        return _NEGATIVE_INFINITY_DATETIME
    return _EPOCH + dt.timedelta(microseconds=ts)


async def use_timestamp_codec(connection: Any) -> None:
    """Bind (and read) `timestamptz` on this asyncpg connection by `_encode_timestamptz`."""
    await connection.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=_encode_timestamptz,
        decoder=_decode_timestamptz,
        format="tuple",
    )
