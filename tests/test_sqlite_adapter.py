"""The SQLite engine's adapter (`store/sqlite_adapter.py`): each statement is one hop to
aiosqlite's thread, and what SQLAlchemy reads off the cursor (rows, rowcount, lastrowid,
description, errors) is what the stock adapter gives."""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from genvault.store.db import create_engine
from genvault.store.sqlite_adapter import OneHopCursor, bind_datetimes_explicitly, bind_none_directly


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'adapter.db'}")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
    yield engine
    await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every function queued for an aiosqlite connection's thread."""
    seen: list[Any] = []
    queue = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(fn)
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_the_engine_uses_the_one_hop_cursor(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneHopCursor)  # type: ignore[union-attr]


async def test_a_statement_is_one_hop(engine: AsyncEngine, hops: list[Any]) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # checkout, pool events: not counted below
        hops.clear()
        rows = (await conn.execute(text("SELECT name FROM t"))).all()
        assert rows == []
        assert len(hops) == 1
        hops.clear()
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert len(hops) == 1
        # The stock adapter: cursor, execute, close (and fetchall for rows); three or four hops.


async def test_rows_counts_and_lastrowid(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert inserted.lastrowid == 1
        assert inserted.rowcount == 1
        many = await conn.execute(text("INSERT INTO t (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}])
        assert many.rowcount == 2
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        returned = await conn.execute(text("UPDATE t SET name = name || '?' WHERE id > 0 RETURNING id"))
        assert sorted(returned.scalars().all()) == [1, 2, 3]
        assert returned.rowcount == 3
        missed = await conn.execute(text("UPDATE t SET name = 'x' WHERE id = 99"))
        assert missed.rowcount == 0
        result = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "name"]
        assert [tuple(r) for r in result] == [(1, "a?"), (2, "b!?"), (3, "c!?")]


async def test_errors_are_sqlalchemys_and_leave_the_connection_usable(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        with pytest.raises(IntegrityError, match="UNIQUE"):
            await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
        await conn.commit()


async def test_rollback_undoes_statements(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('gone')"))
        await conn.rollback()
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0


def _bound(values: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The row sqlite3 stores for `values`, with each value's SQLite type."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE v (a, b, c, d)")
        db.execute("INSERT INTO v VALUES (?, ?, ?, ?)", values)
        db.executemany("INSERT INTO v VALUES (:a, :b, :c, :d)", [dict(zip("abcd", values, strict=True))])
        return db.execute("SELECT a, typeof(a), b, typeof(b), c, typeof(c), d, typeof(d) FROM v").fetchall()
    finally:
        db.close()


async def test_none_is_bound_without_sqlite3s_adapter_search(engine: AsyncEngine) -> None:
    # A SQLite engine registers None's adapter (one dict hit per None bound instead of two failed
    # attribute lookups); what is stored is SQL NULL, exactly as without it.
    key = (type(None), sqlite3.PrepareProtocol)
    assert key in sqlite3.adapters
    values = (None, 1, "x", None)
    with_adapter = _bound(values)
    adapter = sqlite3.adapters.pop(key)
    try:
        without = _bound(values)
    finally:
        sqlite3.adapters[key] = adapter
    assert with_adapter == without == [(None, "null", 1, "integer", "x", "text", None, "null")] * 2
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (id, name) VALUES (:id, :name)"), {"id": None, "name": "n"})
        stored = (await conn.execute(text("SELECT typeof(id), name FROM t WHERE name = 'n'"))).all()
    assert stored == [("integer", "n")]  # NULL into an INTEGER PRIMARY KEY: a rowid, as before


def test_an_applications_own_none_adapter_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    key = (type(None), sqlite3.PrepareProtocol)
    monkeypatch.setitem(sqlite3.adapters, key, lambda value: "none")
    bind_none_directly()
    assert sqlite3.adapters[key](None) == "none"


async def test_datetimes_are_bound_by_genvaults_adapter_as_the_default_binds_them(engine: AsyncEngine) -> None:
    # A SQLite engine binds a datetime through genvault's own adapter in place of sqlite3's
    # default (deprecated in Python 3.12): the default's text, `value.isoformat(" ")`, stored,
    # naive or aware, with or without microseconds.
    adapter = sqlite3.adapters[(datetime.datetime, sqlite3.PrepareProtocol)]
    assert adapter.__module__ == "genvault.store.sqlite_adapter"
    values = [
        datetime.datetime(2026, 12, 6, 11, 2, 3),
        datetime.datetime(2026, 12, 6, 11, 2, 3, 45),
        datetime.datetime(1999, 1, 2, 0, 0, 0, 999999, tzinfo=datetime.UTC),
        datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))),
    ]
    async with engine.begin() as conn:
        for i, value in enumerate(values):
            await conn.exec_driver_sql("INSERT INTO t (id, name) VALUES (?, ?)", (i, value))
        stored = (await conn.exec_driver_sql("SELECT name, typeof(name) FROM t ORDER BY id")).all()
    assert stored == [(value.isoformat(" "), "text") for value in values]


def test_an_applications_own_datetime_adapter_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    key = (datetime.datetime, sqlite3.PrepareProtocol)
    monkeypatch.setitem(sqlite3.adapters, key, lambda value: "mine")
    bind_datetimes_explicitly()
    assert sqlite3.adapters[key](datetime.datetime(2026, 1, 1)) == "mine"
