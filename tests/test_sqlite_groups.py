"""SQLite's grouped writes (`store/sqlite_groups.py`): writes queued while the writer connection is
busy run in one transaction, and each keeps its own outcome. The groups are made deterministic by
holding the store's write lock while the writes queue."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from genvault.errors import StorageError
from genvault.store import Store
from genvault.store.sqlite_groups import UndoWrites, write_in_group


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'groups.db'}")
    async with store.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
        await conn.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t (id))")
    yield store
    await store.aclose()


def insert(*names: str, returns: Any = None) -> Any:
    def work(db: sqlite3.Connection) -> Any:
        for name in names:
            db.execute("INSERT INTO t (name) VALUES (?)", (name,))
        return returns if returns is not None else names

    return work


async def names(store: Store) -> list[str]:
    return await write_in_group(store, lambda db: [r[0] for r in db.execute("SELECT name FROM t ORDER BY name")])


async def turns_of_the_loop() -> None:
    """Enough for each task just started to queue its write (and the first to start a group)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def together(store: Store, *writes: Any) -> list[Any]:
    """Each write queued while the write lock is held, then run: one group."""
    assert store.write_lock is not None
    async with store.write_lock:
        tasks = [asyncio.ensure_future(write_in_group(store, work)) for work in writes]
        await turns_of_the_loop()
        assert len(store.sqlite_groups()._queue) == len(writes)
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_writes_queued_together_commit_in_one_transaction(store: Store) -> None:
    await names(store)  # the writer connection opened
    groups = store.sqlite_groups()
    before = groups.groups
    results = await together(store, insert("a"), insert("b", "c"), insert("d"))
    assert results == [("a",), ("b", "c"), ("d",)]
    assert groups.groups == before + 1
    assert await names(store) == ["a", "b", "c", "d"]


async def test_a_failed_write_fails_only_its_caller(store: Store) -> None:
    await write_in_group(store, insert("taken"))
    results = await together(store, insert("a"), insert("b", "taken"), insert("c"))
    assert results[0] == ("a",)
    assert isinstance(results[1], StorageError)
    assert "UNIQUE" in str(results[1])
    assert results[2] == ("c",)
    # "b" was written before the failing statement: rolled back with its write, not the others.
    assert await names(store) == ["a", "c", "taken"]


async def test_a_write_undoes_itself_and_returns_its_value(store: Store) -> None:
    def undone(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t (name) VALUES ('undone')")
        raise UndoWrites("nothing written")

    results = await together(store, insert("a"), undone, insert("b"))
    assert results == [("a",), "nothing written", ("b",)]
    assert await names(store) == ["a", "b"]
    # Alone, the same.
    assert await write_in_group(store, undone) == "nothing written"
    assert await names(store) == ["a", "b"]


async def test_a_lone_failed_write_is_rolled_back(store: Store) -> None:
    with pytest.raises(StorageError):
        await write_in_group(store, insert("x", "x"))
    assert await names(store) == []
    with pytest.raises(ValueError, match="a bug"):
        await write_in_group(store, lambda db: (insert("y")(db), int("a bug")))
    assert await names(store) == []


def counting(ran: list[str]) -> Any:
    def counted(name: str) -> Any:
        def work(db: sqlite3.Connection) -> str:
            ran.append(name)
            db.execute("INSERT INTO t (name) VALUES (?)", (name,))
            return name

        return work

    return counted


async def test_a_write_that_failed_before_writing_leaves_the_transaction_to_the_others(store: Store) -> None:
    await write_in_group(store, insert("taken"))
    ran: list[str] = []
    counted = counting(ran)
    results = await together(store, counted("a"), insert("taken"), counted("b"))
    assert results[0] == "a"
    assert isinstance(results[1], StorageError)
    assert results[2] == "b"
    assert ran == ["a", "b"]  # nothing to undo: the others ran once
    assert await names(store) == ["a", "b", "taken"]


async def test_a_write_that_failed_after_writing_has_the_others_run_again_without_it(store: Store) -> None:
    await write_in_group(store, insert("taken"))
    ran: list[str] = []
    counted = counting(ran)
    results = await together(store, counted("a"), insert("b", "taken"), counted("c"))
    assert results[0] == "a"
    assert isinstance(results[1], StorageError)
    assert results[2] == "c"
    assert ran == ["a", "a", "c"]  # its row "b" undone with the transaction; "a" ran again
    assert await names(store) == ["a", "c", "taken"]


async def test_writes_before_one_that_lost_the_transaction_are_run_again(store: Store) -> None:
    """An error on which SQLite rolls back the whole transaction (a full disk, an I/O error)
    takes the group's earlier writes with it: they run again, each committed exactly once."""
    ran: list[str] = []
    counted = counting(ran)

    def loses_the_transaction(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t (name) VALUES ('lost')")
        db.execute("ROLLBACK")  # what SQLite does itself on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")

    results = await together(store, counted("a"), counted("b"), loses_the_transaction, counted("c"))
    assert results[:2] == ["a", "b"]
    assert isinstance(results[2], StorageError)
    assert "disk is full" in str(results[2])
    assert results[3] == "c"
    assert ran == ["a", "b", "a", "b", "c"]
    assert await names(store) == ["a", "b", "c"]


async def test_a_failed_commit_fails_every_write_of_the_group(store: Store) -> None:
    """Nobody is told a write committed when its transaction did not: a foreign key checked at
    the COMMIT (deferred here on purpose; the schema defers none) fails the whole group."""

    def deferred_violation(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute("INSERT INTO child (t_id) VALUES (12345)")

    results = await together(store, insert("a"), deferred_violation, insert("b"))
    assert all(isinstance(r, StorageError) for r in results), results
    assert await names(store) == []
    assert await write_in_group(store, insert("after")) == ("after",)  # the connection still writes


async def test_a_write_cancelled_before_its_group_does_not_run(store: Store) -> None:
    assert store.write_lock is not None
    async with store.write_lock:
        kept = asyncio.ensure_future(write_in_group(store, insert("kept")))
        cancelled = asyncio.ensure_future(write_in_group(store, insert("cancelled")))
        await turns_of_the_loop()
        assert len(store.sqlite_groups()._queue) == 2
        cancelled.cancel()
        await asyncio.sleep(0)
    assert await kept == ("kept",)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await names(store) == ["kept"]


async def test_writes_that_queue_while_a_group_runs_form_the_next(store: Store) -> None:
    """No timer: the first write runs alone at once, and what queues meanwhile runs next, together."""
    await names(store)
    groups = store.sqlite_groups()
    before = groups.groups
    # The first write is held on the writer's thread until the others have queued: "meanwhile"
    # made certain (a first group that ended before they queued left each to a group of its own).
    gate = _Gate()
    first: Awaitable[Any] = write_in_group(store, gate.work("first"))
    task = asyncio.ensure_future(first)
    await asyncio.to_thread(gate.entered.wait, 30)
    assert groups._running  # the first taken into its group, running
    assert not groups._queue
    rest = [asyncio.ensure_future(write_in_group(store, insert(n))) for n in ("x", "y", "z")]
    await turns_of_the_loop()
    assert len(groups._queue) == 3
    gate.open.set()
    assert await task == "first"
    assert [await r for r in rest] == [("x",), ("y",), ("z",)]
    assert groups.groups == before + 2
    assert await names(store) == ["first", "x", "y", "z"]


class _Gate:
    """A write whose work waits on the writer's thread until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def work(self, name: str) -> Any:
        def work(db: sqlite3.Connection) -> Any:
            self.entered.set()
            assert self.open.wait(30)
            db.execute("INSERT INTO t (name) VALUES (?)", (name,))
            return name

        return work


async def test_a_caller_cancelled_while_its_group_runs_leaves_the_others_their_outcomes(store: Store) -> None:
    """The caller that started a group is not what ends it: cancelled while the group runs on the
    writer's thread, its write still commits, the others in the group get their values, and the
    writes queued behind the group run next."""
    await names(store)
    gate = _Gate()
    groups = store.sqlite_groups()
    starter = asyncio.ensure_future(write_in_group(store, gate.work("starter")))
    await asyncio.to_thread(gate.entered.wait, 30)
    behind = [asyncio.ensure_future(write_in_group(store, insert(n))) for n in ("x", "y")]
    await turns_of_the_loop()
    starter.cancel()
    await turns_of_the_loop()
    gate.open.set()
    with pytest.raises(asyncio.CancelledError):
        await starter
    assert [await r for r in behind] == [("x",), ("y",)]
    assert await names(store) == ["starter", "x", "y"]
    assert not groups._running


async def test_a_caller_cancelled_waiting_to_start_a_group_hands_the_queue_on(store: Store) -> None:
    """The caller that would start a group, cancelled while it waits for the write lock: its own
    write is left out, and the writes queued with it still run (in a task of the groups')."""
    assert store.write_lock is not None
    async with store.write_lock:
        starter = asyncio.ensure_future(write_in_group(store, insert("starter")))
        await turns_of_the_loop()
        others = [asyncio.ensure_future(write_in_group(store, insert(n))) for n in ("x", "y")]
        await turns_of_the_loop()
        starter.cancel()
        await turns_of_the_loop()
    with pytest.raises(asyncio.CancelledError):
        await starter
    assert [await r for r in others] == [("x",), ("y",)]
    assert await names(store) == ["x", "y"]


async def test_aclose_waits_for_the_group_in_flight_and_the_writes_queued_behind_it(tmp_path: Path) -> None:
    """Shutdown with a turn's write on the writer's thread and another queued behind it (no task
    of the caller's holds either): both commit before the writer connection closes, and neither
    caller is left waiting."""
    path = tmp_path / "close.db"
    store = Store(f"sqlite:///{path}")
    async with store.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
    await write_in_group(store, insert("before"))
    gate = _Gate()
    in_flight = asyncio.ensure_future(write_in_group(store, gate.work("in flight")))
    await asyncio.to_thread(gate.entered.wait, 30)
    queued = asyncio.ensure_future(write_in_group(store, insert("queued")))
    await turns_of_the_loop()
    closing = asyncio.ensure_future(store.aclose())
    await turns_of_the_loop()
    assert not closing.done()  # waits for the group on the thread
    gate.open.set()
    await asyncio.wait_for(closing, 30)
    assert in_flight.done()
    assert queued.done()
    assert await in_flight == "in flight"
    assert await queued == ("queued",)
    assert store._sqlite_writer is None  # closed after the last group, not reopened by one
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM t ORDER BY id")] == ["before", "in flight", "queued"]


async def test_every_connection_copies_the_wal_back_at_the_longer_length(store: Store) -> None:
    # Each connection that commits may run the copy (store/db.py): the turns' writer's and a pooled
    # one's; 4,000 pages of 4 KiB, so 8,000 of a new database's 2 KiB pages.
    assert await write_in_group(store, lambda db: db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 8000
    async with store.read() as conn:
        assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 8000


async def test_a_new_database_has_pages_of_2048_bytes_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    """`PAGE_SIZE` for a database genvault creates; one created before (SQLite's 4,096 bytes, in
    WAL mode) keeps its size, is written and read as before, and copies its WAL back at the same
    length in bytes."""
    new = Store(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        async with new.write() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        assert await write_in_group(new, lambda db: db.execute("PRAGMA page_size").fetchone()[0]) == 2048
    finally:
        await new.aclose()
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO t (body) VALUES ('before')")
    old = Store(f"sqlite:///{path}")
    try:
        await write_in_group(old, lambda db: db.execute("INSERT INTO t (body) VALUES (?)", ("x" * 3000,)))
        sizes = await write_in_group(
            old, lambda db: [db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "wal_autocheckpoint")]
        )
        assert sizes == [4096, 4000]
        async with old.read() as conn:
            rows = (await conn.exec_driver_sql("SELECT length(body) FROM t ORDER BY id")).scalars().all()
        assert rows == [6, 3000]
    finally:
        await old.aclose()
