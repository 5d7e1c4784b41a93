"""Backpressure for new turns: a bounded number at once, a bounded wait, then 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from genvault.errors import Busy

__all__ = ["TurnGate"]


class TurnGate:
    """At most `slots` turns open (their first statements) at once; a turn waits at most
    `wait_seconds` for a slot, then gets `Busy` and nothing is written."""

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = max(1, slots)
        self.wait_seconds = wait_seconds
        self._free = asyncio.Semaphore(self.slots)
        self.refused = 0  # turns turned away with Busy (metrics, tests)

    @property
    def in_use(self) -> int:
        return self.slots - self._free._value

    @asynccontextmanager
    async def enter(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait_seconds)
        except TimeoutError:
            self.refused += 1
            raise Busy(
                f"the server is busy: {self.slots} turns are starting and none finished within "
                f"{self.wait_seconds:g} s; retry shortly",
                retry_after=max(1, round(self.wait_seconds / 4)),
            ) from None
        try:
            yield
        finally:
            self._free.release()
