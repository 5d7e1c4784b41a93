"""One heartbeat and one checkpoint writer per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import GenvaultError
from genvault.liveness.memory import QuietTrim
from genvault.liveness.written import Written, next_checkpoint
from genvault.records import Generation
from genvault.settings import Settings
from genvault.store import Store, processes
from genvault.store import generations as gen_store
from genvault.store.schema import generations
from genvault.store.schema import processes as processes_table

__all__ = ["Liveness", "Tracked", "new_owner_id"]

log = logging.getLogger(__name__)

# Statuses are checked in batches of this many ids (one IN list per statement).
_BATCH = 500


class Tracked(Protocol):
    """What the checkpoint writer reads of a running generation (the engine's `Run`)."""

    generation_id: str
    dirty: bool
    # The text deltas so far, only ever appended to (a run that replaces the list is written
    # whole again).
    text: list[str]
    snapshot: Callable[[], dict[str, Any]] | None


def new_owner_id() -> str:
    """Identifies a process in `processes` and in leases: host, pid, and a nonce (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


class Liveness:
    """This process's heartbeat row, its checkpoint writer and the sweeper.

    `on_lost(ids)` is called with tracked generations that are no longer active in the database
    (cancelled from another process, or swept): the engine stops them. `on_dead()` is awaited when
    another process declared this one dead: the engine stops every run; then this process
    registers again under a new id and carries on with new turns. `on_beat()` runs with each
    heartbeat (the engine renews its single-flight leads there).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        on_lost: Callable[[list[str]], None],
        on_dead: Callable[[], Awaitable[None]],
        on_beat: Callable[[], Awaitable[None]] | None = None,
        on_interrupted: Callable[[AsyncConnection, Generation], Awaitable[None]] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        # Whether anything runs or is held in memory; once not, free memory goes back to the OS.
        self.busy = busy
        self.trim = QuietTrim()
        # Completes each swept record inside the sweep's transaction (usage, a turn's partial reply).
        self.on_interrupted = on_interrupted
        # Its own small pool: a checkpoint or heartbeat never queues behind new turns.
        # (PostgreSQL: one of its two connections is the first-token writer's, `Store.driver`.)
        self.store = Store(store.url, schema=store.schema, pool_size=2, max_overflow=0, pool_timeout=60.0, drivers=1)
        self.store.write_lock = store.write_lock  # SQLite: one queue of writers per process
        # SQLite: the checkpoints go to this store's writer connection, in one hop and one
        # transaction each (`sqlite_groups`; together when they queue together). Through
        # SQLAlchemy's `write()` a flush cost ~0.7 ms more of the loop's CPU and ~0.2 ms more of
        # the writer's (10 streams). Measured and dropped: the main store's writer, in the turns'
        # transactions, cost the writer threads ~1 µs per token more at 300 streams
        # (docs/benchmarks.md, issue 15).
        self._sqlite_writes = self.store if store.dialect == "sqlite" else None
        # SQLite: the first-token marks go to the main store's write groups, beside the turns'
        # openings and finalizes. A commit on any other connection makes SQLite drop a
        # connection's whole page cache at its next transaction, so each mark written here
        # (about one a 4-5 turns at 8 clients) had the turns' writer read every page of its next
        # group again: ~11 `pread`s a turn of 33, with their page checks (docs/benchmarks.md,
        # "sqlitetime"). A connection of their own bought the marks no concurrency: they take
        # the same write lock.
        self._sqlite_marks = store if store.dialect == "sqlite" else None
        self.owner_id = new_owner_id()
        self.on_lost = on_lost
        self.on_dead = on_dead
        self.on_beat = on_beat
        # Each running generation, with what the database holds of it after its last checkpoint.
        self._tracked: dict[str, tuple[Tracked, Written]] = {}
        # First tokens not yet written (id, started_at, first_token_at), and the wake-up of the
        # task that writes them: one statement for every stream that started meanwhile.
        self._marks: list[tuple[str, datetime, datetime]] = []
        self._marks_queued = asyncio.Event()
        # The checkpoint flush and the first-token write each update many of this process's
        # generation rows in one statement, locking them in whatever order the plan visits them:
        # run side by side on their two connections they deadlocked on PostgreSQL at 1,000
        # streams (one was aborted and retried). One at a time, they never wait on each other.
        self._row_writes = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._registered = False
        # Counters (tests, metrics, the benchmark).
        self.flushes = 0
        self.checkpoints_written = 0
        self.heartbeats = 0
        self.declared_dead = 0

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._registered:
            await self._register()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._write_forever(), name="genvault:checkpoints"),
                asyncio.create_task(self._beat_forever(), name="genvault:heartbeat"),
                asyncio.create_task(self._mark_forever(), name="genvault:first-tokens"),
            ]

    async def _register(self) -> None:
        host, pid, _ = self.owner_id.split(":", 2)
        async with self.store.write() as conn:
            await processes.register(conn, owner=self.owner_id, host=host, pid=int(pid), now=_now(), lease=self.lease)
        self._registered = True

    async def aclose(self) -> None:
        """After the engine's runs ended: stop the loops, declare this process's row retired."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._registered:
            try:
                async with self.store.write() as conn:
                    await processes.retire(conn, owner=self.owner_id, now=_now())
            except GenvaultError:
                log.warning("could not retire process row %s", self.owner_id, exc_info=True)
            self._registered = False
        await self.store.aclose()

    # -- the checkpoint writer ----------------------------------------------------------------

    def track(self, run: Tracked) -> None:
        self._tracked[run.generation_id] = (run, Written())

    def untrack(self, generation_id: str) -> None:
        self._tracked.pop(generation_id, None)
        if self._marks:
            # Ended before its move to `streaming` was written: its finalize (next, in `_end`)
            # writes the same timings, so the mark would be a statement that changes nothing.
            self._marks = [mark for mark in self._marks if mark[0] != generation_id]

    @property
    def tracked(self) -> int:
        return len(self._tracked)

    async def _write_forever(self) -> None:
        interval = self.settings.checkpoint_ms / 1000
        loop = asyncio.get_running_loop()
        write_seconds = 0.0
        while True:
            # A crash just before a flush commits loses what streamed since the previous flush's
            # snapshot: the sleep plus two write times. Sleep that much less, so the loss stays
            # within `checkpoint_ms` (never below half of it, should the database stall).
            await asyncio.sleep(max(interval / 2, interval - 2 * write_seconds))
            started = loop.time()
            try:
                await self.flush()
            except Exception:  # never let one bad flush end checkpointing for the process
                log.exception("checkpoint flush failed")
            write_seconds = loop.time() - started
            if self.busy is not None:
                self.trim.tick(bool(self._tracked) or self.busy())

    async def flush(self) -> int:
        """Write every dirty tracked generation in one statement: what grew since its last
        checkpoint (`genvault.liveness.written`). Returns how many were written."""
        dirty = [(run, written) for run, written in self._tracked.values() if run.dirty]
        if not dirty:
            return 0
        batch = []
        after = []
        as_text = self._sqlite_writes is not None  # SQLite's message column is text: spliced
        for run, written in dirty:
            run.dirty = False
            # Taken before the write (it may fail and be retried): the output as of now.
            message = run.snapshot() if run.snapshot else None
            row, now = next_checkpoint(run.generation_id, run.text, message, written, as_text=as_text)
            batch.append(row)
            after.append(now)
        at = _now()
        try:
            async with self._row_writes:
                if self._sqlite_writes is not None:
                    active = await processes.checkpoint_many_sqlite(self._sqlite_writes, batch, at=at)
                else:
                    active = await self.store.write_statement(
                        lambda conn: processes.checkpoint_many(conn, batch, at=at)
                    )
        except GenvaultError:
            # A failed flush must not kill the generations; the next one tries again, from what
            # the database held before it.
            log.warning("checkpoint of %d generations failed", len(batch), exc_info=True)
            for run, written in dirty:
                run.dirty = True
                # It may have committed all the same: the message's text no longer known, the
                # next checkpoint writes it whole (the result text is a prefix either way).
                written.message_text = None
            return 0
        tracked = self._tracked
        for (run, _written), now in zip(dirty, after, strict=True):
            entry = tracked.get(run.generation_id)
            if entry is not None and entry[0] is run:  # still running (not ended meanwhile)
                tracked[run.generation_id] = (run, now)
        self.flushes += 1
        self.checkpoints_written += len(active)
        lost = [run.generation_id for run, _written in dirty if run.generation_id not in active]
        self._lose(lost)
        return len(active)

    def _lose(self, ids: Iterable[str]) -> None:
        # Only those still tracked: one that ended meanwhile is finalizing, not lost.
        lost = [i for i in ids if i in self._tracked]
        if lost:
            log.info("generations %s are no longer active; stopping them", ", ".join(lost))
            self.on_lost(lost)

    # -- first tokens -------------------------------------------------------------------------

    def first_token(self, generation_id: str, *, started_at: datetime, first_token_at: datetime) -> None:
        """Queue the record's move to `streaming` (with its timings). Nothing waits for it: the
        token goes out at once, and the write follows within a few milliseconds together with the
        other streams' that started meanwhile: on PostgreSQL on this writer's own connection
        (never one a new turn waits for), on SQLite in the turns' write groups (one statement in
        a transaction it may share with them). A record cancelled or swept before it is not moved;
        the next checkpoint finds it ended and stops its run."""
        self._marks.append((generation_id, started_at, first_token_at))
        self._marks_queued.set()

    async def _mark_forever(self) -> None:
        # Long enough to gather the streams starting together, short against any interval.
        window = min(0.02, self.settings.checkpoint_ms / 1000 / 5)
        while True:
            await self._marks_queued.wait()
            await asyncio.sleep(window)
            try:
                await self.write_marks()
                continue
            except GenvaultError:
                log.warning("marking generations streaming failed; trying again", exc_info=True)
            except Exception:  # a bug: never let it end the marking for the process
                log.exception("marking generations streaming failed")
            await asyncio.sleep(self.settings.checkpoint_ms / 1000)  # they stay queued: later

    async def write_marks(self) -> None:
        """Write the queued first tokens in one statement; when it fails they stay queued."""
        self._marks_queued.clear()
        marks, self._marks = self._marks, []
        if not marks:
            return
        until = _now() + self.lease
        try:
            async with self._row_writes:
                if self.store.dialect == "postgresql":  # on asyncpg itself; safe to run twice
                    await self.store.driver_retrying(
                        lambda driver: processes.mark_streaming_alone(
                            driver, marks, owner=self.owner_id, lease_until=until
                        )
                    )
                else:  # one hop to the turns' writer connection's thread
                    assert self._sqlite_marks is not None
                    await processes.mark_streaming_sqlite(
                        self._sqlite_marks, marks, owner=self.owner_id, lease_until=until
                    )
        except BaseException:
            self._marks[:0] = marks  # kept for the next try (or lost with the process, as the run is)
            self._marks_queued.set()
            raise

    async def warm(self) -> None:
        """PostgreSQL: open the first-token writer's connection now, its statement prepared (with
        no generation to mark, it writes nothing), so a burst's first marks do not wait for the
        connect and asyncpg's look-up of the statement's array types (four more statements); and
        the checkpoint's and heartbeat's statements on this store's SQLAlchemy connection."""

        await self.store.warm(lambda conn: processes.prepare_mark_streaming(conn, owner=self.owner_id, now=_now()))
        if self.store.dialect == "postgresql":  # and the checkpoint's and heartbeat's statements
            await self.store.write_statement(
                lambda conn: processes.prepare_checkpoint_and_heartbeat(conn, now=_now(), lease=self.lease)
            )

    # -- the heartbeat ------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        period = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self.beat()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    async def beat(self) -> bool:
        """Renew this process's row; stop what another process declared dead or ended. False when
        this process had been declared dead (it stopped its runs and registered anew)."""
        alive = await self.store.write_statement(
            lambda conn: processes.heartbeat(conn, owner=self.owner_id, now=_now(), lease=self.lease)
        )
        self.heartbeats += 1
        if not alive:
            self.declared_dead += 1
            log.error(
                "this process (%s) was declared dead by another (it missed heartbeats for %g s): "
                "stopping its %d running generations, which that process marked interrupted",
                self.owner_id,
                self.settings.lease_seconds,
                len(self._tracked),
            )
            await self.on_dead()
            self.owner_id = new_owner_id()
            await self._register()
            return False
        ids = list(self._tracked)
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            async with self.store.read() as conn:
                ended = await processes.no_longer_active(conn, chunk)
            self._lose(ended)
        if self.on_beat is not None:
            await self.on_beat()
        return True

    # -- the sweeper --------------------------------------------------------------------------

    async def sweep(self) -> list[Generation]:
        """Declare dead the processes that stopped heartbeating (and those on this host whose pid
        is gone) and mark their active generations `interrupted`; never this process's own."""
        async with self.store.read() as conn:
            owners = set(
                (
                    await conn.execute(
                        select(generations.c.lease_owner)
                        .where(gen_store.ACTIVE_ROWS, generations.c.lease_owner.is_not(None))
                        .distinct()
                    )
                )
                .scalars()
                .all()
            )
            rows = (await conn.execute(select(processes_table.c.id).where(processes_table.c.dead_at.is_(None)))).all()
        registered = {row.id for row in rows}
        owners.update(registered)
        dead = [
            owner
            for owner in owners
            if owner is not None and owner != self.owner_id and owner_is_dead(owner, registered=owner in registered)
        ]
        async with self.store.write() as conn:
            changed = await processes.sweep(conn, now=_now(), me=self.owner_id, dead_owners=dead)
            if self.on_interrupted is not None:
                for record in changed:
                    await self.on_interrupted(conn, record)
            return changed


def owner_is_dead(owner: str, *, registered: bool = False) -> bool:
    """True when `owner` was a process on this host that no longer exists (another host's
    processes can only be judged by their heartbeat). With `registered` (it has a live row), our
    own pid under another nonce is another Vault in this process, alive."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return not registered  # no row: an earlier process that had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
