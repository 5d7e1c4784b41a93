"""Backpressure for new turns: a bounded number at once, a queue that moves, then 503.

A busy database is not a stuck one. A turn waiting for a slot is refused only when the queue has
stopped moving (no turn got through for `stall_seconds`: the database is not answering) or when
it has waited `max_wait_seconds` in all (the server is truly saturated: a client should go
elsewhere). A queue that keeps moving, however long, is waited out: under a burst of turns the
server answers them all late rather than some of them 503.
"""

from __future__ import annotations

import asyncio

from genvault.errors import Busy

__all__ = ["TurnGate"]


class TurnGate:
    """At most `slots` turns open (their first statements) at once. A turn waits for a slot while
    others get through; it gets `Busy` (nothing written) when none got through for
    `stall_seconds`, or after `max_wait_seconds` (default: four stalls) in all."""

    def __init__(self, slots: int, stall_seconds: float, max_wait_seconds: float | None = None) -> None:
        self.slots = max(1, slots)
        self.stall_seconds = stall_seconds
        self.max_wait_seconds = max_wait_seconds if max_wait_seconds is not None else 4 * stall_seconds
        self._free = asyncio.Semaphore(self.slots)
        self._passed = 0  # turns let in so far: the queue moves while this grows
        self.refused = 0  # turns turned away with Busy (metrics, tests)
        self.waiting = 0  # turns queued now (metrics)
        self._entry = _Entry(self)

    @property
    def wait_seconds(self) -> float:
        """The longest a turn may wait for a slot."""
        return self.max_wait_seconds

    @property
    def in_use(self) -> int:
        return self.slots - self._free._value

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_seconds
        self.waiting += 1
        # One acquire for the whole wait, so the turn keeps its place in the semaphore's queue. A
        # `wait_for` per stall period cancelled it at each period's end and queued it again behind
        # every turn that had arrived meanwhile: the oldest waiters went to the back every
        # `stall_seconds`, and a newer turn was let in first.
        acquiring = asyncio.ensure_future(self._free.acquire())
        try:
            while True:
                passed = self._passed
                wait = max(0.0, min(self.stall_seconds, deadline - loop.time()))
                done, _ = await asyncio.wait((acquiring,), timeout=wait)
                if done:
                    acquiring.result()
                    return
                if loop.time() >= deadline:
                    why = f"this one waited {self.max_wait_seconds:g} s"
                elif self._passed == passed:
                    why = f"none got through within {self.stall_seconds:g} s"
                else:
                    continue  # the queue moved: wait on
                self.refused += 1
                raise Busy(
                    f"the server is busy: {self.slots} turns are starting and {why}; retry shortly",
                    retry_after=max(1, round(min(self.stall_seconds, self.max_wait_seconds) / 4)),
                )
        except BaseException:
            # Refused or cancelled: give up the place, or the slot if it was granted meanwhile
            # (a cancelled acquire that had been granted hands its slot on by itself).
            if not acquiring.done():
                acquiring.cancel()
            elif not acquiring.cancelled() and acquiring.exception() is None:
                self._free.release()
            raise
        finally:
            self.waiting -= 1

    def enter(self) -> _Entry:
        """`async with gate.enter():` holds a slot for the block (released however it ends)."""
        return self._entry


class _Entry:
    """`TurnGate.enter`'s context manager: a plain class, not `@asynccontextmanager` (whose async
    generator, wrapper object and `StopAsyncIteration` cost every turn ~10,000 instructions), and
    one per gate: it keeps no state of its own, so nested and concurrent blocks share it."""

    __slots__ = ("_gate",)

    def __init__(self, gate: TurnGate) -> None:
        self._gate = gate

    async def __aenter__(self) -> None:
        gate = self._gate
        free = gate._free
        # A free slot and no turn queued: `Semaphore.acquire`'s own uncontended step (its
        # `locked()` test, a generator over the waiters, then `_value -= 1`), without its
        # coroutine or a timer. Anything else waits in the queue (`_acquire`).
        if free._value > 0 and not free._waiters:
            free._value -= 1
        else:
            await gate._acquire()
        gate._passed += 1

    async def __aexit__(self, *exc: object) -> None:
        self._gate._free.release()
