"""Persistence: SQLAlchemy Core over SQLite or PostgreSQL.

`Store` owns the engine and hands out connections: `read()` for queries, `write()` for a
transaction that commits on success and rolls back on any exception, so a failed operation leaves
nothing half-written. The table modules (`generations`, `users`, ...) hold the queries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from genvault.errors import StorageError
from genvault.store.db import SKIP_PING, WRITE_OPTION, create_engine, upgrade
from genvault.store.driver import ConnectionLost

__all__ = ["Store"]

T = TypeVar("T")


class Store:
    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, schema=schema)
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
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
        return self.engine.dialect.name

    async def upgrade(self) -> None:
        await upgrade(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._reader.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise StorageError(f"database read failed: {exc.orig}") from exc

    async def read_retrying(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`read(conn)` on a connection checked out without the liveness ping (one round trip
        less); if the connection turns out dead, once more on a pinged one. For reads only:
        they are safe to run twice."""
        token = SKIP_PING.set(True)
        try:
            async with self._reader.connect() as conn:
                return await read(conn)
        except ConnectionLost:
            pass  # already invalidated (`store.driver`): the pool will not hand it out again
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise StorageError(f"database read failed: {exc.orig}") from exc
        finally:
            SKIP_PING.reset(token)
        async with self.read() as conn:
            return await read(conn)

    @asynccontextmanager
    async def autocommit(self, *, ping: bool = True) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: a connection in autocommit, for a write that is one statement, atomic on
        its own (no BEGIN and COMMIT round trips). `ping=False` skips the checkout's liveness
        ping: for a caller that handles a dead connection (`store.driver.ConnectionLost`) itself."""
        if self.dialect != "postgresql":
            raise RuntimeError("autocommit writes are for PostgreSQL; SQLite writes take write()")
        token = SKIP_PING.set(not ping)
        skip_pending = True
        try:
            async with self._reader.connect() as conn:
                SKIP_PING.reset(token)  # only this checkout skips the ping
                skip_pending = False
                yield conn
        except DBAPIError as exc:
            raise StorageError(f"database write failed: {exc.orig}") from exc
        finally:
            if skip_pending:
                SKIP_PING.reset(token)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._writer.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StorageError(f"database write failed: {exc.orig}") from exc

    async def aclose(self) -> None:
        await self.engine.dispose()
