"""SQLAlchemy's aiosqlite adapter, with each statement one hop to the connection's thread.

aiosqlite runs a SQLite connection in a thread of its own, and every call on it is a hop there
and back: a queue put, a thread wake-up, a callback into the event loop. SQLAlchemy's adapter
makes four for a statement that returns rows (open a cursor, execute, fetch, close) and three
for one that does not; on this project's machine the hops were the largest share of a chat
turn's CPU on SQLite (docs/benchmarks.md). `OneHopCursor` runs the whole statement (cursor,
execute, fetch all, close) in one function on that thread. Every other part of the adapter is
SQLAlchemy's own: the engine gets this as its DBAPI module (`create_async_engine(module=...)`),
so the URL, the dialect, error translation and the pool stay as they are.

It calls aiosqlite's `Connection._execute` (queue a function for the connection's thread), the
same private surface SQLAlchemy's adapter reaches into for its isolation level setter.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

__all__ = ["OneHopCursor", "SqliteReader", "SqliteReaders", "bind_datetimes_explicitly", "bind_none_directly", "dbapi"]

T = TypeVar("T")

# sqlite3's registry key for an adapter of None, and that adapter: a C call that gives None back.
_NONE_KEY = (type(None), sqlite3.PrepareProtocol)
_NO_ENTRIES: dict[Any, None] = {}


def bind_none_directly() -> None:
    """Give `None` an adapter in sqlite3 (process-wide) that returns it unchanged: bound as SQL
    NULL exactly as before, without sqlite3's search for one on every bind.

    sqlite3 binds an int, float, str or bytearray as it is; any other value, None included, goes
    through its adapter lookup, which, finding no adapter registered for the type, asks the
    protocol for `__adapt__` and the value for `__conform__`: two failed attribute lookups that
    format an AttributeError and clear it, ~2,100 instructions per None bound (CPython 3.11).
    A chat turn binds ~90 (the pending row's and the finalize's empty columns, the parts'
    unused ones): ~0.4 M instructions of the writer thread's ~1.9 M (docs/benchmarks.md,
    liteturn4). With an adapter registered the lookup is one dict hit and one C call. An
    adapter the application registered for None is kept."""
    if _NONE_KEY not in sqlite3.adapters:
        sqlite3.register_adapter(type(None), _NO_ENTRIES.get)


_DATETIME_KEY = (datetime.datetime, sqlite3.PrepareProtocol)


def bind_datetimes_explicitly() -> None:
    """Bind a `datetime` (process-wide) through this module's own adapter in place of sqlite3's
    default: the same stored text, `value.isoformat(" ")` (naive or aware), and no
    DeprecationWarning on every bind under Python 3.12+, which deprecates the default.

    Not a C callable such as `str`: `datetime.__str__` calls `isoformat` by name with a built
    argument tuple, ~800 instructions per bind more than this function (CPython 3.11, callgrind,
    docs/benchmarks.md liteturn4). Only sqlite3's own default is replaced: an adapter the
    application registered for `datetime` is kept."""
    if getattr(sqlite3.adapters.get(_DATETIME_KEY), "__module__", None) == "sqlite3.dbapi2":
        sqlite3.register_adapter(datetime.datetime, _datetime_text)


def _datetime_text(value: datetime.datetime) -> str:
    return value.isoformat(" ")


class _Ran:
    """What the adapter reads off a DBAPI cursor after a statement (`description`, `rowcount`,
    `lastrowid`, `arraysize`), kept once the real cursor is closed."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, description: Any = None, rowcount: int = -1, lastrowid: int | None = None) -> None:
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.arraysize = 1


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[_Ran, list[Any]]:
    """One statement on the connection's own thread, its rows fetched and its cursor closed."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        # rowcount after the fetch: an UPDATE … RETURNING counts its rows as they are stepped.
        return _Ran(cursor.description, cursor.rowcount, cursor.lastrowid), rows
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose `execute` is one hop: `_cursor` holds the finished statement's
    description and counts (`_Ran`), `_rows` its rows, as SQLAlchemy's buffered cursor keeps them."""

    __slots__ = ()
    _awaitable_cursor_close = False  # nothing left open to close

    def __init__(self, adapt_connection: Any) -> None:
        # Not the base class's: it opens an aiosqlite cursor, a hop of its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _Ran()  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._one_hop(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        return await self._one_hop(operation, seq_of_parameters, many=True)

    async def _one_hop(self, operation: Any, parameters: Any, *, many: bool) -> Any:
        driver = self._connection
        async with self._adapt_connection._execute_mutex:
            ran, rows = await driver._execute(_run, driver._conn, operation, parameters, many)
        self._cursor = ran
        self._rows = collections.deque(rows)
        return self

    def close(self) -> None:
        self._rows.clear()


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


class _OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _OneHopConnection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI module for `create_async_engine(..., module=dbapi())` on `sqlite+aiosqlite`."""
    import aiosqlite

    return _OneHopDBAPI(aiosqlite, sqlite3)


class SqliteReader:
    """One of the store's own SQLite reader connections (`Store.sqlite_reader`), for a read that
    is one statement: `fetchall` runs it in one hop to the connection's thread, with no
    SQLAlchemy checkout around it (pool events, and on the way back a rollback: one more hop).
    `dialect` is the engine's, to compile a statement for it."""

    __slots__ = ("_adapted", "dialect")

    def __init__(self, adapted: Any, dialect: Any) -> None:
        self._adapted = adapted
        self.dialect = dialect

    async def fetchall(self, sql: str, args: list[Any]) -> list[Any]:
        driver = self._adapted.driver_connection
        async with self._adapted._execute_mutex:
            rows: list[Any] = await driver._execute(_fetch_then_end, driver._conn, sql, args)
            return rows


def _fetch_then_end(conn: sqlite3.Connection, sql: str, args: list[Any]) -> list[Any]:
    """The statement's rows; a transaction left open (none in autocommit) rolled back, so the
    connection's next read sees every commit since (what the pool's reset did)."""
    try:
        cursor = conn.execute(sql, args)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()
    finally:
        if conn.in_transaction:
            conn.rollback()


class SqliteReaders:
    """The store's idle SQLite reader connections: checked out by a list pop, returned by an
    append; opened on demand by `open_` (the engine's pool machinery, so with its PRAGMAs; it
    returns the connection record), at most `size` in use. A checkout that finds `size` in use
    gets None: the caller reads through SQLAlchemy's pool as before."""

    def __init__(self, open_: Callable[[], Awaitable[Any]], close: Callable[[Any], Awaitable[None]], size: int) -> None:
        self._open = open_
        self._close = close
        self._size = size
        self._idle: list[Any] = []  # connection records
        self._in_use = 0
        self._closed = False

    async def checkout(self) -> Any | None:
        """A connection record, or None."""
        if self._closed or (not self._idle and self._in_use >= self._size):
            return None
        self._in_use += 1
        while self._idle:
            record = self._idle.pop()
            if record.dbapi_connection.driver_connection._running:
                return record
            await self._close(record)
        try:
            return await self._open()
        except BaseException:
            self._in_use -= 1
            raise

    async def checkin(self, record: Any, *, broken: bool = False) -> None:
        self._in_use -= 1
        if broken or self._closed:
            await self._close(record)
        else:
            self._idle.append(record)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for record in idle:
            with contextlib.suppress(Exception):
                await self._close(record)
