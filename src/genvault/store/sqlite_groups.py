"""SQLite: the hot paths' writes, several to a transaction when they arrive together (group commit).

A chat turn on SQLite writes twice in the store's writer connection (`Store.sqlite_writer`): its
opening (`store/openings.py`) and its finalize (`store/finishes.py`); each was a `BEGIN
IMMEDIATE` … `COMMIT` of its own, in a hop of its own to the connection's thread. The commit was
the largest part of each: ~110 µs of the writer thread's CPU at p50 against 15–65 µs for each
statement (docs/benchmarks.md, issue 16), since it writes every page the transaction touched to
the WAL, and the opening's flushes the chat titles' FTS5 index as a segment of its own. While
one transaction runs, the next turns' writes queue; `write_in_group` runs everything queued in
one hop and one transaction, so N writes that arrive together cost one BEGIN, one COMMIT, one
thread wake-up and one new FTS5 segment, and the pages they share are written to the WAL once.

What each write keeps, exactly as alone:

- **Its own outcome.** A write that raises, or raises `UndoWrites(value)` to roll itself back
  (a turn that found its chat taken), has its caller get the error (or `value`), and nothing of
  it is committed; the others commit. When it wrote nothing (SQLite's change counter did not
  move: a failing statement undoes itself) the transaction goes on. When it did, the whole
  transaction is rolled back and the other writes run again in a new one, without it: nothing of
  theirs was committed, and a write is a function of its arguments, so the second run is their
  first as far as the database and their callers know. Writes therefore change rows only by
  INSERT, UPDATE and DELETE (what the counter counts). No `SAVEPOINT` per write: measured, one
  per write cost 30–90 µs of the writer's CPU per write (a sub-journal of every page it
  changes), about what grouping saves (docs/benchmarks.md, issue 16).
- **Durability.** A caller's await returns only after the `COMMIT` of the transaction that holds
  its write has returned; a failed `COMMIT` fails every write of the group, none of which was
  committed (a deferred foreign key would; none is deferred).
- **Order and the write lock.** Writes run in the order they were queued, under the store's write
  lock (`Store.write_lock`, shared with SQLAlchemy's `write()` transactions), taken once a group.
- **Cancellation.** A caller cancelled before its group started is left out of it; once started,
  its write runs and commits (as a cancelled hop's always did: the thread cannot be stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from genvault.errors import StorageError

if TYPE_CHECKING:
    from genvault.store import Store

__all__ = ["UndoWrites", "WriteGroups", "write_in_group"]

T = TypeVar("T")

# What `_run_group` returns for each write: (True, its value) or (False, its exception).
Outcome = tuple[bool, Any]


class UndoWrites(Exception):  # not an error: a write's way to roll itself back
    """Raised by a grouped write to roll back its own statements and return `value`."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


class _Write(Generic[T]):
    __slots__ = ("future", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], T], future: asyncio.Future[T]) -> None:
        self.work = work
        self.future = future


class WriteGroups:
    """A store's queue of grouped writes and the task that drains it (one at a time, while there
    are writes queued)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: list[_Write[Any]] = []
        self._drain: asyncio.Task[None] | None = None
        # Counters (tests, the benchmark): transactions run, writes they held.
        self.groups = 0
        self.writes = 0

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(work, future))
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_queue(), name="genvault:sqlite-writes")
        try:
            return await future
        except sqlite3.Error as exc:
            raise StorageError(f"database write failed: {exc}") from exc

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                await self._run_queued()
        finally:
            self._drain = None

    async def _run_queued(self) -> None:
        store = self._store
        batch: list[_Write[Any]] = []
        try:
            async with store.write_lock or contextlib.nullcontext():
                # Taken under the lock: what queued while it waited joins this group.
                batch = [write for write in self._queue if not write.future.done()]
                self._queue.clear()
                if not batch:
                    return
                works = [write.work for write in batch]
                adapted = await store.sqlite_writer()
                if adapted is None:  # an in-memory database: every connection is another database
                    outcomes = await _pooled_group(store, works)
                else:
                    # The store's own connection, made outside the pool's queue: only these groups
                    # use it, one at a time under the write lock, so SQLAlchemy's adapter mutex (an
                    # uncontended asyncio.Lock taken and released, ~10 k instructions a write) is not.
                    driver = adapted.driver_connection
                    outcomes = await driver._execute(_run_group, driver._conn, works)
        except BaseException as exc:
            # The group as a whole failed (its BEGIN or COMMIT, the connection), or the task was
            # cancelled (the loop closing) before it took one: then every write queued fails.
            if not batch:
                batch, self._queue = self._queue, []
            for write in batch:
                if write.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    write.future.cancel()
                else:
                    write.future.set_exception(exc)
            if not isinstance(exc, Exception):  # cancelled (the loop closing), an interrupt
                raise
            return
        self.groups += 1
        self.writes += len(batch)
        for write, (ok, value) in zip(batch, outcomes, strict=True):
            if write.future.done():  # its caller was cancelled while the group ran
                continue
            if ok:
                write.future.set_result(value)
            else:
                write.future.set_exception(value)

    async def aclose(self) -> None:
        """Wait for the writes queued (before the writer connection closes)."""
        drain = self._drain
        if drain is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(drain)


async def write_in_group(store: Store, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work(connection)` on the store's writer connection's thread, inside a `BEGIN IMMEDIATE`
    transaction it shares with the other writes queued meanwhile (see the module's docstring):
    `work` runs statements and neither begins, commits nor rolls back; it raises `UndoWrites` to
    roll back its own statements. Returns once the transaction has committed. `sqlite3.Error`
    becomes `StorageError`."""
    return await store.sqlite_groups().run(work)


def _run_group(conn: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]) -> list[Outcome]:
    """On the connection's thread: the works in one transaction. A work that fails (or undoes
    itself) after writing takes the transaction down with it, and the others run again in a
    new one without it; a failure of BEGIN or COMMIT raises."""
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for index, work in enumerate(works):
            changes = conn.total_changes
            try:
                value = work(conn)
            except BaseException as exc:
                failed: Outcome = (True, exc.value) if isinstance(exc, UndoWrites) else (False, exc)
                if conn.in_transaction and conn.total_changes == changes:
                    outcomes.append(failed)  # it wrote nothing: nothing to undo
                    continue
                # Its rows must go, and only the whole transaction can take them back: the works
                # before it lose theirs too (nothing of theirs was committed), so they all run
                # again without it, leaving what running one after another would have: its
                # failure undoes its own writes only. (SQLite may have rolled back the
                # transaction itself already: a full disk, an I/O error.)
                if conn.in_transaction:
                    conn.rollback()
                rest = _run_group(conn, works[:index] + works[index + 1 :]) if len(works) > 1 else []
                return [*rest[:index], failed, *rest[index:]]
            outcomes.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return outcomes


async def _pooled_group(store: Store, works: list[Callable[[sqlite3.Connection], Any]]) -> list[Outcome]:
    async with store.engine.connect() as conn:
        raw: Any = await conn.get_raw_connection()
        driver = raw.driver_connection
        # Not beside a statement of SQLAlchemy's adapter on this connection.
        async with raw.dbapi_connection._execute_mutex:
            outcomes: list[Outcome] = await driver._execute(_run_group, driver._conn, works)
            return outcomes
