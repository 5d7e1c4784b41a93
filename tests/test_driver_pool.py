"""The hot paths' own asyncpg connections (`Store.driver`, `store.driver.DriverPool`): the
configured connections split with SQLAlchemy's pool, a dead or cancelled connection never
handed out again, a full pool a `Busy` after the pool timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from genvault.errors import Busy
from genvault.store import Store, split_pool
from genvault.store.driver import ConnectionLost

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(pg_schema: tuple[str, str]) -> AsyncIterator[Store]:
    """Two connections for the driver pool, and a wait long enough never to run out under load."""
    s = Store(pg_schema[0], schema=pg_schema[1], pool_size=2, max_overflow=2, pool_timeout=60)
    yield s
    await s.aclose()


@pytest.fixture
async def impatient(pg_schema: tuple[str, str]) -> AsyncIterator[Store]:
    """The same with a short wait, for the tests that run out."""
    s = Store(pg_schema[0], schema=pg_schema[1], pool_size=2, max_overflow=2, pool_timeout=0.3)
    yield s
    await s.aclose()


async def pid(store: Store) -> int:
    async with store.driver(ping=False) as driver:
        return int(await driver.run(lambda conn: conn.fetchval("SELECT pg_backend_pid()"), what="read"))


async def terminate(url: str, backend: int) -> None:
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", backend)
    finally:
        await admin.close()


def test_the_driver_pool_takes_half_of_the_configured_connections_out_of_the_overflow_first() -> None:
    assert split_pool(None, None) == (10, 5, 15)  # 30 in all, as configured
    assert split_pool(4, 0) == (2, 0, 2)
    assert split_pool(1, 3) == (1, 1, 2)
    assert split_pool(2, 0) == (2, 0, 0)  # too small to split: the hot paths use SQLAlchemy's pool
    assert split_pool(2, 0, drivers=1) == (1, 0, 1)  # the heartbeat's: one of its two for the first tokens
    assert split_pool(1, 0, drivers=1) == (1, 0, 0)  # SQLAlchemy's pool keeps one
    for size in range(1, 12):
        for overflow in range(0, 12):
            pool, over, drivers = split_pool(size, overflow)
            assert pool >= 1
            assert over >= 0
            assert pool + over + drivers == size + overflow


async def test_the_store_keeps_within_its_configured_connections(impatient: Store) -> None:
    store = impatient
    pool = store.engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (2, 0)  # type: ignore[attr-defined]
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(store.driver())
        with pytest.raises(Busy) as busy:
            await stack.enter_async_context(store.driver())
        assert busy.value.retry_after
    assert store._drivers is not None
    assert store._drivers.open == 2


async def test_a_connection_comes_back_warm_and_a_waiter_gets_one_freed(store: Store) -> None:
    first = await pid(store)
    assert await pid(store) == first  # the same connection, not a new one per checkout
    async with store.driver() as one, store.driver() as two:
        held = {await driver.connection.fetchval("SELECT pg_backend_pid()") for driver in (one, two)}
        waiting = asyncio.create_task(pid(store))
        await asyncio.sleep(0.05)
        assert not waiting.done()
    assert await waiting in held
    assert store._drivers is not None
    assert store._drivers.open == 2


async def test_a_killed_connection_is_lost_once_and_never_handed_out_again(
    store: Store, pg_schema: tuple[str, str]
) -> None:
    dead = await pid(store)
    await terminate(pg_schema[0], dead)
    await asyncio.sleep(0.1)
    # Unpinged: a connection seen closed is dropped at checkout, or the statement finds it dead
    # (`ConnectionLost`) and it is dropped on return; either way the next one is another.
    with contextlib.suppress(ConnectionLost):
        assert await pid(store) != dead
    assert await pid(store) != dead
    # A pinged checkout finds a dead connection itself and hands out a live one.
    dead = await pid(store)
    await terminate(pg_schema[0], dead)
    async with store.driver() as driver:
        assert await driver.run(lambda conn: conn.fetchval("SELECT pg_backend_pid()"), what="read") != dead


async def test_a_statement_cancelled_midway_never_leaves_its_connection_to_the_next(store: Store) -> None:
    async def sleeps(conn: Any) -> Any:
        return await conn.execute("SELECT pg_sleep(2)")

    async with store.driver() as driver:
        cancelled = driver.connection
        task = asyncio.create_task(driver.run(sleeps, what="read"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert cancelled.is_closed()
    async with store.driver() as driver:
        assert driver.connection is not cancelled
        assert await driver.run(lambda conn: conn.fetchval("SELECT 1"), what="read") == 1


async def test_a_wait_that_times_out_leaves_no_connection_behind(impatient: Store) -> None:
    store = impatient
    async with store.driver(), store.driver():
        with pytest.raises(Busy):
            async with store.driver():
                pass
    async with store.driver(), store.driver():  # both places free again
        pass
    assert store._drivers is not None
    assert store._drivers.open == 2


async def test_an_unpinged_checkout_takes_an_idle_connection_and_never_a_closed_one(store: Store) -> None:
    drivers = store._drivers
    assert drivers is not None
    assert drivers.take() is None  # nothing idle yet: the checkout opens one (`acquire`)
    first = await pid(store)
    assert await pid(store) == first  # taken idle, returned warm
    with pytest.raises(RuntimeError):
        async with store.driver(ping=False):
            raise RuntimeError("the caller's error")
    assert len(drivers._idle) == 1  # returned on the way out of the error too
    drivers._idle[-1].driver_connection.terminate()  # closed while idle
    assert drivers.take() is None
    assert (drivers.discarded, drivers.open) == (1, 0)
    assert await pid(store) != first  # a new one in its place


def timestamps() -> list[Any]:
    """Values a `timestamptz` parameter may be given: aware (UTC and not), naive, a date, the
    extremes asyncpg reads as PostgreSQL's infinities, and random ones across the range."""
    import datetime as dt
    import random

    utc = dt.UTC
    rng = random.Random(16)
    values: list[Any] = [
        dt.datetime.now(utc),
        dt.datetime(2000, 1, 1, tzinfo=utc),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
        dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=utc),
        dt.datetime(2026, 12, 6, 16, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        dt.datetime(2026, 3, 29, 1, 30),  # naive: local time
        dt.date(2026, 12, 6),  # a date: local midnight
        dt.datetime.max,
        dt.datetime.min,
        dt.datetime.max.replace(tzinfo=utc),
        dt.datetime(1, 1, 1, tzinfo=utc),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=utc),
    ]

    class Stamp(dt.datetime):
        pass

    values.append(Stamp(2026, 12, 6, 16, 0, 0, 5, tzinfo=utc))  # a subclass: asyncpg takes it too
    span = int((dt.datetime(9999, 1, 1) - dt.datetime(1, 1, 2)).total_seconds() * 1e6)
    for _ in range(200):
        values.append(dt.datetime(1, 1, 2, tzinfo=utc) + dt.timedelta(microseconds=rng.randrange(span)))
    return values


async def test_the_driver_connections_bind_and_read_timestamps_as_asyncpg_does(store: Store) -> None:
    """`driver.use_timestamp_codec`: the same `timestamptz` as asyncpg's own codec binds, for
    every kind of value, and the same value read back (PostgreSQL's infinities too)."""
    plain = await asyncpg.connect(store.url.replace("postgresql+asyncpg://", "postgresql://"))
    await plain.execute(f"SET search_path TO {store.schema}")
    try:
        async with store.driver(ping=False) as driver:
            ours = driver.connection
            for value in timestamps():
                sql = "SELECT $1::timestamptz::text, $1::timestamptz, ARRAY[$1::timestamptz]"
                assert tuple(await ours.fetchrow(sql, value)) == tuple(await plain.fetchrow(sql, value)), value
                arrays = "SELECT $1::timestamptz[]::text"
                assert await ours.fetchval(arrays, [value, None]) == await plain.fetchval(arrays, [value, None])
            for text in ("infinity", "-infinity", "4713-01-01 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00"):
                sql = f"SELECT '{text}'::timestamptz"
                try:
                    expected: Any = await plain.fetchval(sql)
                except Exception as exc:  # out of a datetime's range: the same error
                    with pytest.raises(type(exc)):
                        await ours.fetchval(sql)
                else:
                    assert await ours.fetchval(sql) == expected
            for wrong in ("2026-12-06", 1.5):
                with pytest.raises(asyncpg.DataError):
                    await plain.fetchval("SELECT $1::timestamptz", wrong)
                with pytest.raises(asyncpg.DataError):
                    await ours.fetchval("SELECT $1::timestamptz", wrong)
    finally:
        await plain.close()


async def test_warming_opens_the_whole_pool_ahead_and_the_first_checkouts_open_none(store: Store) -> None:
    drivers = store._drivers
    assert drivers is not None
    assert drivers.open == 0
    assert await store.warm() == 2
    assert drivers.open == 2
    backends = await asyncio.gather(pid(store), pid(store))
    assert drivers.open == 2  # both checkouts found an open connection
    assert await store.warm() == 0  # nothing left to open
    # They are the warmed ones, and live.
    async with store.driver() as one, store.driver() as two:
        held = {await d.run(lambda conn: conn.fetchval("SELECT pg_backend_pid()"), what="read") for d in (one, two)}
    assert set(backends) <= held


class _FakeConnection:
    """An open asyncpg connection, as far as `DriverPool` looks at one."""

    def is_closed(self) -> bool:
        return False


class _FakeRecord:
    """What a `DriverPool`'s connect returns: a record holding its driver connection."""

    def __init__(self) -> None:
        self.driver_connection = _FakeConnection()


async def test_a_connection_that_fails_to_open_ahead_is_left_to_open_on_demand() -> None:
    from genvault.store.driver import DriverPool

    calls = 0

    async def connect() -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("connection refused")
        return _FakeRecord()

    pool = DriverPool(connect, size=3, timeout=1)
    assert await pool.fill() == 2  # one failed: no error, its place stays free
    assert pool.open == 2
    held = [await pool.acquire(ping=False) for _ in range(3)]  # the third opens on demand
    assert pool.open == 3
    assert calls == 4
    for h in held:
        pool.release(h)
    assert await pool.fill() == 0


async def test_the_served_app_warms_its_pool_and_a_test_app_does_not(pg_schema: tuple[str, str], tmp_path: Any) -> None:
    from genvault import Settings, Vault
    from genvault.server import create_app

    for warm in (False, True):
        vault = Vault(
            Settings(
                database_url=pg_schema[0],
                database_schema=pg_schema[1],
                data_dir=tmp_path,
                db_pool_size=2,
                db_max_overflow=2,
            )
        )
        app = create_app(vault=vault, warm_pool=warm)
        async with app.router.lifespan_context(app):
            drivers = vault.store._drivers
            assert drivers is not None
            assert drivers.open == (2 if warm else 0)
        await vault.aclose()


async def test_filling_beside_a_checkout_never_opens_more_than_the_pool_holds() -> None:
    from genvault.store.driver import DriverPool

    calls = 0

    async def connect() -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return _FakeRecord()

    pool = DriverPool(connect, size=3, timeout=1)
    filling = asyncio.create_task(pool.fill())
    await asyncio.sleep(0)  # the fill has counted three missing; its connects have not started
    held = await pool.acquire(ping=False)  # opens one of the three meanwhile
    assert await filling == 2
    assert pool.open == 3
    assert calls == 3
    pool.release(held)


async def test_the_served_app_readies_each_connection_for_a_turn_and_writes_nothing(
    pg_schema: tuple[str, str], tmp_path: Any
) -> None:
    """A backend's first turn cost it ~4 ms more CPU (catalogs, foreign-key plans, triggers,
    asyncpg's prepare): the served app pays that at start, on each connection, and commits
    nothing of the throwaway turn it runs for it."""
    from genvault import Settings, Vault
    from genvault.server import create_app
    from genvault.store import finishes, openings, processes

    vault = Vault(
        Settings(
            database_url=pg_schema[0],
            database_schema=pg_schema[1],
            data_dir=tmp_path,
            db_pool_size=2,
            db_max_overflow=2,
        )
    )
    app = create_app(vault=vault, warm_pool=True)
    # A turn of text parts' statements (`parts.pg_parts_narrow`): what a chat turn mostly sends.
    finalizes = (finishes._postgresql_sql(purging, narrow=True).strip() for purging in (False, True))
    turn = {openings._postgresql_sql(narrow=True).strip(), *finalizes}
    hot = {openings._postgresql_sql(narrow=True).strip(), finishes._postgresql_sql(False, narrow=True).strip()}
    async with app.router.lifespan_context(app):
        drivers = vault.store._drivers
        assert drivers is not None
        assert drivers.open == 2
        for held in drivers._idle:
            prepared = await held.driver_connection.fetch("SELECT statement, generic_plans FROM pg_prepared_statements")
            assert turn <= {row[0].strip() for row in prepared}
            # Past the custom-plan phase (5 executions): a turn's first bind uses the generic plan
            # (the purging finalize, once a minute, may stay custom: PostgreSQL's cost choice).
            assert all(row[1] >= 1 for row in prepared if row[0].strip() in hot)
        marks = vault.engine.liveness.store._drivers
        assert marks is not None
        assert marks.open == 1
        prepared = await marks._idle[0].driver_connection.fetch("SELECT statement FROM pg_prepared_statements")
        assert processes._MARK_STREAMING_PG in {row[0] for row in prepared}
        # The checkpoint's and heartbeat's statements, on the liveness store's own connection.
        async with vault.engine.liveness.store.read() as conn:
            rows = await conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
            statements = [row[0] for row in rows]
        assert any(s.startswith("WITH p AS MATERIALIZED") for s in statements), statements
        assert any(s.startswith("UPDATE processes SET heartbeat_at") for s in statements), statements
        assert await vault.engine.liveness.beat()  # a real heartbeat reuses it: no second prepare
        async with vault.engine.liveness.store.read() as conn:
            rows = await conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
            assert sorted(row[0] for row in rows) == sorted(statements)
        async with vault.store.read() as conn:
            for table in ("users", "chats", "messages", "parts", "generations"):
                rows = (await conn.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar()
                assert rows == (1 if table == "users" else 0), table  # the local user only
    await vault.aclose()


async def test_a_connection_whose_readying_fails_is_kept() -> None:
    from genvault.store.driver import DriverPool

    async def connect() -> Any:
        return _FakeRecord()

    async def ready(conn: Any) -> None:
        raise asyncpg.UndefinedTableError("no such table")

    pool = DriverPool(connect, size=2, timeout=1)
    assert await pool.fill(ready) == 2
    assert pool.open == 2
    assert pool.discarded == 0
