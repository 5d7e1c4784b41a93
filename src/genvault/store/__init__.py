"""Persistence: SQLAlchemy Core over SQLite or PostgreSQL.

`Store` owns the engine and hands out connections: `read()` for queries, `write()` for a
transaction that commits on success and rolls back on any exception, so a failed operation leaves
nothing half-written. The table modules (`generations`, `users`, ...) hold the queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import greenlet_spawn

from genvault.errors import Busy, StorageError
from genvault.store.db import SKIP_PING, WRITE_OPTION, async_url, create_engine, upgrade
from genvault.store.driver import ConnectionLost, DriverPool, PoolBusy, PooledDriver, use_timestamp_codec
from genvault.store.sqlite_adapter import SqliteReader, SqliteReaders
from genvault.store.sqlite_groups import WriteGroups

__all__ = ["Store", "split_pool"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _busy(exc: PoolTimeout | PoolBusy) -> Busy:
    return Busy(f"the server is busy (no database connection free within the wait): {exc}", retry_after=2)


def split_pool(pool_size: int | None, max_overflow: int | None, drivers: int | None = None) -> tuple[int, int, int]:
    """PostgreSQL: the process's connection budget (`pool_size` + `max_overflow`, default
    10 + 20) split between SQLAlchemy's pool and the hot paths' `DriverPool`, which takes
    `drivers` of it (default half, rounded down), out of the overflow first: (pool size,
    overflow, driver pool size). The total stays the configured one, and SQLAlchemy's pool
    keeps at least one. By default a budget below 4 is not split (driver pool size 0): the hot
    paths then check out of SQLAlchemy's pool as the other paths do."""
    size = 10 if pool_size is None else pool_size
    overflow = 20 if max_overflow is None else max_overflow
    if drivers is None:
        drivers = (size + overflow) // 2 if size + overflow >= 4 else 0
    drivers = max(0, min(drivers, size + overflow - 1))
    from_overflow = min(overflow, drivers)
    from_size = drivers - from_overflow
    return size - from_size, overflow - from_overflow, drivers


class _DriverCheckout:
    """`Store.driver()` on a `DriverPool`, as a plain async context manager: three turn
    statements use one each, and `asynccontextmanager`'s generator, wrapper and
    `StopAsyncIteration` cost more than the checkout itself (docs/benchmarks.md, "pgloop").
    An idle connection wanted without a ping is taken at once (`DriverPool.take`)."""

    __slots__ = ("_drivers", "_held", "_ping")

    def __init__(self, drivers: DriverPool, ping: bool) -> None:
        self._drivers = drivers
        self._ping = ping

    async def __aenter__(self) -> PooledDriver:
        held = None if self._ping else self._drivers.take()
        if held is None:
            try:
                held = await self._drivers.acquire(ping=self._ping)
            except PoolBusy as exc:
                raise _busy(exc) from exc
            except StorageError:
                raise
            except Exception as exc:  # the driver's own errors: SQLAlchemy does not wrap a pool's connect
                raise StorageError(f"database connection failed: {exc}") from exc
        self._held = held
        return PooledDriver(held)

    async def __aexit__(self, *exc_info: object) -> None:
        self._drivers.release(self._held)


class Store:
    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float = 30.0,
        drivers: int | None = None,
    ) -> None:
        """`pool_size` + `max_overflow` connections in all (PostgreSQL: `drivers` of them, by
        default half, for `driver()`; see `split_pool`)."""
        self.url = url
        self.schema = schema
        # SQLite has one writer at a time. Its busy handler makes the others poll with sleeps, in
        # no order: under a few hundred concurrent streams a writer could miss the lock for longer
        # than the busy timeout ("database is locked") while later ones got it. This process's
        # writers queue here instead, first come first served; only other processes (and a
        # `Store` not sharing this lock) still meet the busy handler.
        self.write_lock: asyncio.Lock | None = None
        # PostgreSQL: the hot paths' statements (`driver()`) go to a pool of asyncpg connections
        # of their own, half of the configured connections (`split_pool`).
        self._drivers: DriverPool | None = None
        if async_url(url).get_backend_name() == "postgresql":
            pool_size, max_overflow, drivers = split_pool(pool_size, max_overflow, drivers)
        self.engine: AsyncEngine = create_engine(
            url, schema=schema, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout
        )
        if drivers and self.engine.dialect.name == "postgresql":
            pool = self.engine.sync_engine.pool

            async def connect() -> Any:
                record = await greenlet_spawn(pool._create_connection)
                connection: Any = record.driver_connection
                try:
                    await use_timestamp_codec(connection)
                except BaseException:
                    connection.terminate()
                    raise
                return record

            self._drivers = DriverPool(connect, size=drivers, timeout=pool_timeout)
        self._dialect: str = self.engine.dialect.name  # read on every hot path: a plain attribute
        # SQLAlchemy's dialect object, for the binders of the hot paths' own statements: a plain
        # attribute (`AsyncEngine.dialect` is a proxied property, ~30 bytecodes a read).
        self.sa_dialect: Any = self.engine.dialect
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        if self.engine.dialect.name == "sqlite":
            self.write_lock = asyncio.Lock()
        # SQLite: the connection `sqlite_groups.write_in_group` writes on, opened at the first write;
        # and reader connections of the store's own for one-statement reads (`sqlite_reader`).
        self._sqlite_writer: Any = None
        self._sqlite_groups: WriteGroups | None = None  # the writes on it, grouped (`sqlite_groups`)
        self._sqlite_readers: SqliteReaders | None = None
        if self.engine.dialect.name == "sqlite" and not isinstance(self.engine.sync_engine.pool, NullPool):
            sqlite_pool: Any = self.engine.sync_engine.pool  # a QueuePool: file databases only

            async def close(record: Any) -> None:
                await greenlet_spawn(record.close)

            self._sqlite_readers = SqliteReaders(
                lambda: greenlet_spawn(sqlite_pool._create_connection),
                close,
                size=max(1, sqlite_pool.size() + sqlite_pool._max_overflow),
            )
        # PostgreSQL reads run in autocommit: under its default READ COMMITTED every statement takes
        # its own snapshot with or without BEGIN, so the BEGIN/ROLLBACK round trips bought nothing.
        # SQLite keeps its read transaction: there it is what gives one snapshot across statements.
        self._reader = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @property
    def dialect(self) -> str:
        return self._dialect

    async def upgrade(self) -> None:
        await upgrade(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._reader.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise StorageError(f"database read failed: {exc.orig}") from exc
        except PoolTimeout as exc:
            raise _busy(exc) from exc

    async def read_retrying(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`read(conn)` on a connection checked out without the liveness ping (one round trip
        less); if the connection turns out dead, once more on a pinged one. For reads only:
        they are safe to run twice."""
        return await self._unpinged(read, what="read")

    async def write_statement(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`write(conn)` for a write that is one idempotent statement (a checkpoint, a status
        move guarded by the current status). On PostgreSQL it runs in autocommit, where one
        statement is atomic on its own, on a connection checked out without the ping: one round
        trip instead of four (ping, BEGIN, statement, COMMIT); a dead pooled connection is
        retried once on a pinged one, which is safe because running it twice changes nothing
        more. On SQLite it is a `write()` transaction (BEGIN IMMEDIATE keeps writers queueing
        on the lock rather than failing to upgrade a read lock)."""
        if self.dialect == "sqlite":
            async with self.write() as conn:
                return await write(conn)
        return await self._unpinged(write, what="write")

    async def _unpinged(self, run: Callable[[AsyncConnection], Awaitable[T]], *, what: str) -> T:
        """`run(conn)` on the reader engine (autocommit on PostgreSQL) without the checkout ping;
        on a dead connection, once more with it. Only for work that is safe to run twice."""
        token = SKIP_PING.set(True)
        try:
            async with self._reader.connect() as conn:
                return await run(conn)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise StorageError(f"database {what} failed: {exc.orig}") from exc
        except PoolTimeout as exc:
            raise _busy(exc) from exc
        finally:
            SKIP_PING.reset(token)
        try:
            async with self._reader.connect() as conn:
                return await run(conn)
        except DBAPIError as exc:
            raise StorageError(f"database {what} failed: {exc.orig}") from exc
        except PoolTimeout as exc:
            raise _busy(exc) from exc

    def driver(self, *, ping: bool = True) -> contextlib.AbstractAsyncContextManager[PooledDriver]:
        """PostgreSQL: an asyncpg connection of the store's `DriverPool`, each statement in its
        own transaction (autocommit). For a hot path that is one prebuilt statement, atomic on
        its own: no BEGIN and COMMIT round trips, no SQLAlchemy Connection around it, and a
        checkout that is a list pop. `ping=False` skips the checkout's liveness ping: for a
        caller that handles a dead connection (`ConnectionLost`) itself. A connection that died
        or whose statement was cancelled midway is closed on its return, never reused."""
        if self._drivers is None:
            return self._pooled_driver(ping=ping)
        return _DriverCheckout(self._drivers, ping)

    async def warm(self, ready: Callable[[Any], Awaitable[None]] | None = None) -> int:
        """PostgreSQL: open the hot paths' connections (`DriverPool.fill`) now rather than at
        the first turns that need them, each made ready by `ready(connection)` (by default for a
        chat turn's statements: `warming.ready`); returns how many opened (0 elsewhere). A
        connection that fails to open is logged and opens on demand later."""
        if self._drivers is None:
            return 0
        if ready is None:
            from genvault.store.warming import ready

        opened = await self._drivers.fill(ready)
        if self._drivers.open < self._drivers.size:
            log.warning(
                "opened %d of %d database connections ahead; the rest open on demand", opened, self._drivers.size
            )
        return opened

    @asynccontextmanager
    async def _pooled_driver(self, *, ping: bool) -> AsyncIterator[PooledDriver]:
        """`driver()` on a connection of SQLAlchemy's pool (a store too small for a `DriverPool`)."""
        if self.dialect != "postgresql":
            raise RuntimeError("driver connections are asyncpg's: PostgreSQL only")
        token = SKIP_PING.set(not ping)
        try:
            pooled = await self.engine.raw_connection()
        except DBAPIError as exc:
            raise StorageError(f"database connection failed: {exc.orig}") from exc
        except PoolTimeout as exc:
            raise _busy(exc) from exc
        finally:
            SKIP_PING.reset(token)
        try:
            yield PooledDriver(pooled)
        finally:
            # In a greenlet: returning an overflow connection closes it, which awaits. (Without
            # any I/O to do, as usual, this finishes without yielding to the event loop.)
            await greenlet_spawn(pooled.close)

    async def driver_retrying(self, read: Callable[[PooledDriver], Awaitable[T]]) -> T:
        """`read(driver)` on an unpinged connection (`driver(ping=False)`); if that connection
        turns out dead, once more on a pinged one. For reads only: they are safe to run twice."""
        try:
            async with self.driver(ping=False) as driver:
                return await read(driver)
        except ConnectionLost:
            pass  # invalidated already: the pool will not hand it out again
        async with self.driver() as driver:
            return await read(driver)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.write_lock or contextlib.nullcontext(), self._writer.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StorageError(f"database write failed: {exc.orig}") from exc
        except PoolTimeout as exc:
            raise _busy(exc) from exc

    async def sqlite_writer(self) -> Any:
        """SQLite: the store's own writer connection (SQLAlchemy's adapted aiosqlite connection,
        made by the engine's pool machinery, so with its PRAGMAs), for `sqlite_groups.write_in_group`
        under the write lock; None for an in-memory database (no pool: each connection is a
        database of its own). Opened at the first call, reopened if it was closed."""
        writer = self._sqlite_writer
        if writer is not None and writer.driver_connection._running:
            return writer.dbapi_connection
        pool = self.engine.sync_engine.pool
        if isinstance(pool, NullPool):
            return None
        self._sqlite_writer = await greenlet_spawn(pool._create_connection)
        return self._sqlite_writer.dbapi_connection

    def sqlite_groups(self) -> WriteGroups:
        """SQLite: the queue of the hot paths' writes on the writer connection, run several to a
        transaction when they arrive together (`sqlite_groups.write_in_group`)."""
        groups = self._sqlite_groups
        if groups is None:
            groups = self._sqlite_groups = WriteGroups(self)
        return groups

    @asynccontextmanager
    async def sqlite_reader(self) -> AsyncIterator[SqliteReader | AsyncConnection]:
        """SQLite: one of the store's own reader connections (`SqliteReader`: one statement, one
        hop, no SQLAlchemy checkout), for a read that is one statement; when all of them are in
        use (or the database is in memory), a connection of SQLAlchemy's pool as `read()`."""
        readers = self._sqlite_readers
        record = await readers.checkout() if readers is not None else None
        if readers is None or record is None:
            async with self.read() as conn:
                yield conn
            return
        broken = True
        try:
            yield SqliteReader(record.dbapi_connection, self.engine.dialect)
            broken = False
        except sqlite3.Error as exc:
            raise StorageError(f"database read failed: {exc}") from exc
        finally:
            await readers.checkin(record, broken=broken and not record.dbapi_connection.driver_connection._running)

    async def aclose(self) -> None:
        if self._drivers is not None:
            await self._drivers.aclose()
        if self._sqlite_readers is not None:
            await self._sqlite_readers.aclose()
        if self._sqlite_groups is not None:
            await self._sqlite_groups.aclose()
        writer, self._sqlite_writer = self._sqlite_writer, None
        if writer is not None:
            await greenlet_spawn(writer.close)
        await self.engine.dispose()
