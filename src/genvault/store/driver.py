"""The asyncpg connection of a pooled connection, for the hot paths (`Store.driver`).

The page read and a standalone append each send one prebuilt statement straight to asyncpg: its
prepared-statement cache makes that one round trip, with no SQLAlchemy Connection, cursor or
result around it (the SQLite page read goes to aiosqlite the same way). What SQLAlchemy would do
on an error is done here: a lost connection is invalidated, so the pool never hands it out
again, and database errors become `StorageError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from genvault.errors import StorageError

__all__ = ["ConnectionLost", "PooledDriver"]

T = TypeVar("T")


class ConnectionLost(StorageError):
    """The connection was dead or died during the statement. `sent` is False only when it was
    found closed before anything was sent: then the statement certainly did not run. When True,
    it may have run (and, in autocommit, committed) before the connection went."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class PooledDriver:
    """A checked-out pooled connection's asyncpg connection, outside any transaction: asyncpg
    runs each statement in a transaction of its own (autocommit)."""

    def __init__(self, pooled: Any) -> None:
        self._pooled = pooled  # SQLAlchemy's pool proxy: invalidate() drops it from the pool
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
