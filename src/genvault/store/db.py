"""Turning a database URL into a configured async engine, and creating or upgrading the schema.

Users write plain URLs (`sqlite:///path`, `postgresql://user@host/db`); genvault picks the async
driver itself (aiosqlite, asyncpg). SQLite runs in WAL mode with foreign keys on and a busy
timeout, so the embedded default survives a reader and a writer at once.
"""

from __future__ import annotations

import functools
import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_

from genvault.errors import InvalidRequest
from genvault.store import sqlite_adapter

__all__ = [
    "SKIP_PING",
    "WRITE_OPTION",
    "async_url",
    "create_engine",
    "dialect_insert",
    "head_revision",
    "insert_for",
    "is_sqlite",
    "migrations_dir",
    "upgrade",
]

# Execution option marking a connection that will write (see `_configure_sqlite`).
WRITE_OPTION = "genvault_write"

# Set by a read that retries on a dead connection itself (`Store.read_retrying`): its checkout
# skips the ping, saving a round trip.
SKIP_PING: ContextVar[bool] = ContextVar("genvault_skip_ping", default=False)

# SQLite: the WAL's length, in pages of 4 KiB, at which a commit copies it into the database
# (`_on_connect`: as many bytes whatever the database's page size).
WAL_AUTOCHECKPOINT = 4000

# SQLite: the page size of a database genvault creates (an existing one keeps its own: SQLite
# changes it only by a VACUUM, never in WAL mode). Every commit writes each page it changed to the
# WAL and checksums it there, and a chat turn's rows change one leaf in each of ~20 b-trees a
# commit: at 2,048 bytes instead of SQLite's 4,096 the turns' writer thread ran 7-8 % fewer
# instructions a turn, for ~15 more `pwrite`s (two a WAL frame); a long reply's turn and a history
# page's read cost the same within 2.5 % (docs/benchmarks.md, "sqlitewal"). The search indexes'
# blocks are fitted to the page by revision 0036.
PAGE_SIZE = 2048

log = logging.getLogger(__name__)


def async_url(url: str) -> URL:
    """`sqlite:///x` → `sqlite+aiosqlite:///x`; `postgresql://…` → `postgresql+asyncpg://…`."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidRequest(f"cannot parse database URL {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg")
    raise InvalidRequest(f"unsupported database {backend!r}: use sqlite:///path or postgresql://host/db")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str,
    *,
    schema: str | None = None,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout: float = 30.0,
) -> AsyncEngine:
    """An async engine for `url`. `schema` puts PostgreSQL tables in that schema (tests isolate with it).
    A checkout waits at most `pool_timeout` seconds for a connection (then `Store` raises `Busy`)."""
    target = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if target.get_backend_name() == "sqlite":
        database = target.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # aiosqlite runs one thread per connection; a small pool of them serves concurrent readers
        # while SQLite's own lock serializes writers (busy_timeout makes them wait, not fail).
        kwargs["connect_args"] = {"timeout": 30}
        kwargs["pool_reset_on_return"] = None  # `_configure_sqlite` rolls back only when needed
        kwargs["module"] = sqlite_adapter.dbapi()  # one hop to aiosqlite's thread per statement
        if database in {"", ":memory:"}:
            kwargs["poolclass"] = NullPool
        else:
            kwargs["pool_timeout"] = pool_timeout
            if pool_size is not None:
                kwargs["pool_size"] = pool_size
            if max_overflow is not None:
                kwargs["max_overflow"] = max_overflow
    else:
        kwargs["pool_size"] = 10 if pool_size is None else pool_size
        kwargs["max_overflow"] = 20 if max_overflow is None else max_overflow
        kwargs["pool_timeout"] = pool_timeout
        # No `pool_pre_ping`: on asyncpg it wraps its ping in BEGIN … ROLLBACK (for pgbouncer),
        # three round trips per checkout. `_ping_on_checkout` does the same job in one.
        if schema:
            kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
    engine = create_async_engine(target, **kwargs)
    if target.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    else:
        _ping_on_checkout(engine)
    return engine


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """Check a pooled connection is alive before handing it out (a restarted server or a
    dropped socket leaves dead ones in the pool). A dead one raises `DisconnectionError`, on
    which the pool discards it and checks out another (SQLAlchemy's documented recipe)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if SKIP_PING.get():
            return
        try:
            await_(dbapi_connection.driver_connection.fetchrow(";"))
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def _configure_sqlite(engine: AsyncEngine) -> None:
    sqlite_adapter.bind_none_directly()
    sqlite_adapter.bind_datetimes_explicitly()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's implicit transactions fight SQLAlchemy's; let SQLAlchemy emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Before the WAL mode, which writes a new database's first page (and so fixes its size).
        cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # The WAL is copied back into the database file once it holds this many pages (SQLite's
        # default 1,000, ~4 MB): a copy writes each page the frames hold once, however often they
        # hold it, so a longer WAL copies the turns' hot pages (each b-tree's right edge, the
        # chats) less often. At 4,000 (~16 MB of WAL on disk) the turns' writer made 9.6 fewer
        # syscalls a turn at 8 clients (docs/benchmarks.md, "sqlitetime"). Per connection: every
        # connection that commits may run the copy.
        page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT * 4096 // page_size}")
        cursor.close()
        # The ranking function of a user's search (imported here: genvault.search imports the store).
        from genvault.search.rank import register

        register(dbapi_connection)

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
        # A connection going back to the pool is rolled back only if a transaction is open. A
        # page read straight on aiosqlite opens none, and the pool's unconditional rollback was a
        # hop to the connection's thread for nothing (in place of `pool_reset_on_return`).
        if reset_state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front (IMMEDIATE): two writers then queue on busy_timeout
        # instead of deadlocking when both try to upgrade a read lock. Readers stay deferred, so in
        # WAL mode they never wait for a writer.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def migrations_dir() -> Path:
    return Path(__file__).with_name("migrations")


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision this code knows (read from the revision files once per process)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("no Alembic revisions found")
    return str(head)


async def _at_revision(engine: AsyncEngine, revision: str) -> bool:
    """Whether the database already records exactly `revision` (False when it has no version
    table yet). Its own connection: on PostgreSQL a failed statement spoils its transaction."""
    try:
        async with engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except DBAPIError:
        return False
    return list(versions) == [revision]


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Run the Alembic revisions up to `revision` on `engine` (idempotent).

    A database already at the newest revision (every start but the first) is told by one
    `SELECT`: running Alembic to find nothing to do costs ~30 ms of CPU (it loads its environment
    and every revision file), paid by each server start, CLI command and test."""
    from alembic import command

    if revision == "head" and await _at_revision(engine, head_revision()):
        return
    config = _config()
    # A connection outside any transaction: the revisions' own transaction (env.py) commits, and a
    # revision may leave it for statements that cannot run in one (CREATE INDEX CONCURRENTLY).
    async with engine.connect() as conn:

        def _run(sync_conn: Any) -> None:
            config.attributes["connection"] = sync_conn
            command.upgrade(config, revision)

        await conn.run_sync(_run)
        await conn.commit()


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's own `INSERT` for `table` (SQLite's and PostgreSQL's both have
    `on_conflict_do_nothing` / `on_conflict_do_update`): for inserts that must not fail when a
    concurrent transaction got there first."""
    return insert_for(conn.dialect.name, table)


def insert_for(dialect: str, table: Table) -> Any:
    """`dialect_insert` by the dialect's name (for statements built once per dialect)."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
