"""Running one prebuilt statement on the asyncpg connection under a pooled SQLAlchemy connection.

The hot paths (the page read, a standalone append) send their statement straight to asyncpg:
its own prepared-statement cache makes it one round trip, with none of SQLAlchemy's cursor and
result bookkeeping in between (the SQLite page read goes to aiosqlite the same way). What
SQLAlchemy did for those errors is done here: a lost connection is invalidated, so the pool
never hands it out again, and database errors become `StorageError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import StorageError

__all__ = ["ConnectionLost", "on_driver"]

T = TypeVar("T")


class ConnectionLost(StorageError):
    """The connection was dead or died during the statement. `sent` is False only when it was
    found closed before anything was sent: then the statement certainly did not run. When True,
    it may have run (and, in autocommit, committed) before the connection went."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


async def on_driver(conn: AsyncConnection, call: Callable[[Any], Awaitable[T]], *, what: str) -> T:
    """`call(asyncpg_connection)` on `conn`'s driver connection. `conn` must not be in a
    transaction SQLAlchemy began (use an autocommit connection): the statement bypasses it."""
    import asyncpg

    driver: Any = (await conn.get_raw_connection()).driver_connection
    if driver.is_closed():
        await conn.invalidate()
        raise ConnectionLost(f"database {what} failed: the connection is closed", sent=False)
    try:
        return await call(driver)
    except Exception as exc:
        if driver.is_closed() or isinstance(exc, OSError | asyncpg.PostgresConnectionError):
            await conn.invalidate()
            raise ConnectionLost(f"database {what} failed: {exc}", sent=True) from exc
        if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
            raise StorageError(f"database {what} failed: {exc}") from exc
        raise
    except BaseException:
        # Cancelled mid-statement: the protocol may still be waiting on the server's reply;
        # never hand that connection to the next caller.
        await conn.invalidate()
        raise
