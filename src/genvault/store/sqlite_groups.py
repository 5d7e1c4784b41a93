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
from collections.abc import Callable, Coroutine
from functools import partial
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
    """A store's queue of grouped writes. No task of its own: the caller whose write finds no
    group running starts one (takes the write lock, hands the group to the writer connection's
    thread) and then waits for its own write like every other caller; the group's end (a callback
    from that thread's future) gives each write its outcome, releases the lock, and starts the next
    group when writes queued meanwhile, in a task (`_next_group`), since no caller is on hand then.

    Shutdown and cancellation: a group, once handed to the thread, runs and commits whatever
    happens to its callers (a cancelled caller's write commits, as a cancelled hop's always did),
    and its end is not tied to any caller's task; `aclose` waits until no group runs and none is
    queued, so the writer connection closes after the last commit. A caller cancelled while it
    waits for the write lock to start a group has its own write left out, and the writes queued
    with it go on in a task."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: list[_Write[Any]] = []
        self._running = False  # a group is being started, runs in the thread, or is to start next
        self._next: asyncio.Task[None] | None = None  # the task that starts a group no caller started
        self._idle: asyncio.Future[None] | None = None  # `aclose` waiting for the groups to end
        self._driver: Any = None  # the writer connection's aiosqlite `Connection`, once opened
        # Counters (tests, the benchmark): transactions run, writes they held.
        self.groups = 0
        self.writes = 0

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(work, future))
        if not self._running:
            self._running = True
            if not self._start_at_once():
                await self._start_group(future)
        try:
            return await future
        except sqlite3.Error as exc:
            raise StorageError(f"database write failed: {exc}") from exc

    def _start_at_once(self) -> bool:
        """`_start_group`'s common case without its coroutines: the write lock free with nobody
        waiting for it, and the writer connection open. Takes the lock as `Lock.acquire` does
        when it does not wait (its own uncontended step), hands the queue to the writer's thread
        and returns True; else False, with nothing done (`_start_group` then does it all)."""
        lock = self._store.write_lock
        driver = self._driver
        if (
            driver is None
            or not driver._running
            or driver._connection is None
            or (lock is not None and (lock.locked() or lock._waiters))
        ):
            return False
        if lock is not None:
            lock._locked = True  # type: ignore[attr-defined]  # `Lock.acquire`'s step when free
        batch, self._queue = self._queue, []
        try:
            _hand_over(driver, batch, partial(self._group_done, batch, lock))
        except BaseException as exc:  # the connection closed meanwhile: as `_start_group`'s
            if lock is not None:
                lock.release()
            _fail(batch, exc)
            self._group_ended()
        return True

    async def _start_group(self, own: asyncio.Future[Any] | None) -> None:
        """Take the write lock and the queued writes, and hand them to the writer connection's
        thread as one group; returns once handed over (or failed). `own`: the starting caller's
        future (None in `_next_group`)."""
        store = self._store
        lock = store.write_lock
        batch: list[_Write[Any]] = []
        locked = False
        try:
            if lock is not None:
                await lock.acquire()
                locked = True
            # Taken under the lock: what queued while it waited joins this group.
            batch = [write for write in self._queue if not write.future.done()]
            self._queue.clear()
            if not batch:
                if lock is not None and locked:
                    lock.release()
                self._group_ended()
                return
            adapted = await store.sqlite_writer()
            ended = partial(self._group_done, batch, lock)
            if adapted is None:  # an in-memory database: every connection is another database
                works = [write.work for write in batch]
                done = asyncio.ensure_future(_pooled_group(store, works))
                done.add_done_callback(partial(_reported, ended))
            else:
                # The store's own connection, made outside the pool's queue: only these groups
                # use it, one at a time under the write lock, so SQLAlchemy's adapter mutex (an
                # uncontended asyncio.Lock taken and released, ~10 k instructions a write) is not.
                self._driver = driver = adapted.driver_connection
                _hand_over(driver, batch, ended)
        except BaseException as exc:
            if lock is not None and locked:
                lock.release()
            if own is not None and isinstance(exc, asyncio.CancelledError):
                # The starting caller was cancelled (waiting for the lock, opening the writer):
                # its write is left out; the others queued with it start in a task.
                own.cancel()
                self._queue[:0] = [write for write in batch if not write.future.done()]
                self._group_ended()
                raise
            # The group as a whole failed before it ran (the writer connection), or the task was
            # cancelled (the loop closing): every write queued fails.
            if not batch:
                batch, self._queue = self._queue, []
            _fail(batch, exc)
            self._group_ended()
            if not isinstance(exc, Exception):
                raise

    def _group_done(self, batch: list[_Write[Any]], lock: asyncio.Lock | None, ok: bool, result: Any) -> None:
        """The group's end (on the loop): outcomes to the callers, the lock released, the next
        group. `ok`: `result` is `_run_group`'s outcomes; else it is the exception that ended
        the group (its BEGIN or COMMIT, the connection: none of it was committed)."""
        if lock is not None:
            lock.release()
        if not ok:
            _fail(batch, result)
        else:
            self.groups += 1
            self.writes += len(batch)
            for write, (done, value) in zip(batch, result, strict=True):
                if write.future.done():  # its caller was cancelled while the group ran
                    continue
                if done:
                    write.future.set_result(value)
                else:
                    write.future.set_exception(value)
        self._group_ended()

    def _group_ended(self) -> None:
        if self._queue:
            self._next = asyncio.get_running_loop().create_task(self._next_group(), name="genvault:sqlite-writes")
            return
        self._running = False
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)

    async def _next_group(self) -> None:
        try:
            await self._start_group(None)
        finally:
            self._next = None

    async def aclose(self) -> None:
        """Wait until no group runs and none is queued (before the writer connection closes)."""
        while self._running:
            if self._idle is None:
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)


def _fail(batch: list[_Write[Any]], exc: BaseException) -> None:
    for write in batch:
        if write.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            write.future.cancel()
        else:
            write.future.set_exception(exc)


def _hand_over(driver: Any, batch: list[_Write[Any]], ended: Callable[[bool, Any], None]) -> None:
    """`batch`'s works queued for aiosqlite's connection thread as one group (`_run_group`), as
    `aiosqlite.Connection._execute` queues a call, but with no future: the thread itself hands
    the group's end to the loop, `ended(True, outcomes)` or `ended(False, exception)`, in one
    `call_soon_threadsafe` (aiosqlite's future would take a second turn of the loop, its done
    callback's). No caller's task waits on it, so no caller's cancellation stops it: the
    group's outcome always arrives."""
    if not driver._running or not driver._connection:
        raise ValueError("Connection closed")
    works = [write.work for write in batch]
    driver._tx.put_nowait((None, partial(_run_and_report, driver._conn, works, asyncio.get_running_loop(), ended)))


def _run_and_report(
    conn: sqlite3.Connection,
    works: list[Callable[[sqlite3.Connection], Any]],
    loop: asyncio.AbstractEventLoop,
    ended: Callable[[bool, Any], None],
) -> None:
    """On the connection's thread: the group, then its end handed to the loop."""
    try:
        outcome: tuple[bool, Any] = (True, _run_group(conn, works))
    except BaseException as exc:  # the group's outcome, for its callers
        outcome = (False, exc)
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
        loop.call_soon_threadsafe(ended, *outcome)


def _reported(ended: Callable[[bool, Any], None], done: asyncio.Future[list[Outcome]]) -> None:
    """A future's outcome (the in-memory path's task) given to `ended` as `_run_and_report` gives it."""
    if done.cancelled():
        ended(False, asyncio.CancelledError())
    elif (exc := done.exception()) is not None:
        ended(False, exc)
    else:
        ended(True, done.result())


def write_in_group(store: Store, work: Callable[[sqlite3.Connection], T]) -> Coroutine[Any, Any, T]:
    """`work(connection)` on the store's writer connection's thread, inside a `BEGIN IMMEDIATE`
    transaction it shares with the other writes queued meanwhile (see the module's docstring):
    `work` runs statements and neither begins, commits nor rolls back; it raises `UndoWrites` to
    roll back its own statements. Returns once the transaction has committed. `sqlite3.Error`
    becomes `StorageError`. (The groups' own coroutine, returned: no coroutine of its own.)"""
    return store.sqlite_groups().run(work)


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
