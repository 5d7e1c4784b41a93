"""Requests and tokens per minute, on the `limits` package's moving windows.

In memory for one process; in Redis (the same server the streams use) when Redis is configured,
so every process counts against the same windows. A request counts when it is admitted; tokens
count when its generation ends (input + output as the provider reported them). Tokens are not
known before the model answers, so a request is refused only once the window is full: the
generations already running may take it past its limit, never a new one.

Requests per minute use the exact moving window (one entry per request). Tokens per minute use
the sliding window counter (this minute's and the last minute's counts, weighted): a moving
window keeps one entry per unit, which for tokens is thousands of entries per request, each
scanned on every check.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter

__all__ = ["RateWindows", "WindowState"]


@dataclass(frozen=True, slots=True)
class WindowState:
    used: int
    limit: int
    reset_at: float  # epoch seconds when the oldest counted entry leaves the window


class _MemoryStorage(MemoryStorage):
    """The `limits` package's in-process storage, expiring old entries on the event loop.

    Its own expiry task, scheduled after every hit, hands each key's entry list to a worker
    thread (`asyncio.to_thread`) to find where the expired entries start: a thread hop and a
    contest for the GIL with the request in flight, twice per turn, for a bisect over a short
    list. Same bisect, in place. (`limits` 5.x; the name is the parent's private one, so a
    later release that renames it falls back to the parent's thread: slower, still correct.)"""

    async def _MemoryStorage__expire_events(self) -> None:
        now = time.time()
        for key in list(self.events.keys()):
            entries = self.events.get(key)
            if entries:
                # Newest first: the expired entries are the tail.
                del entries[bisect.bisect_left(entries, -now, key=lambda event: -event.expiry) :]
            if not self.events.get(key):
                self.events.pop(key, None)
                self.locks.pop(key, None)
        for key in list(self.expirations.keys()):
            if self.expirations[key] <= time.time():
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


class RateWindows:
    def __init__(self, redis_url: str | None = None, prefix: str = "genvault:") -> None:
        self.storage: Storage
        if redis_url:
            self.storage = RedisStorage("async+" + redis_url, implementation="redispy", key_prefix=f"{prefix}limits")
        else:
            self.storage = _MemoryStorage()
        self._limiters: dict[str, RateLimiter] = {
            "rpm": MovingWindowRateLimiter(self.storage),
            "tpm": SlidingWindowCounterRateLimiter(self.storage),
        }
        self._items: dict[int, RateLimitItem] = {}

    def _item(self, per_minute: int) -> RateLimitItem:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def fits(self, kind: str, subject: str, per_minute: int, cost: int = 1) -> bool:
        if per_minute <= 0:
            return False
        return await self._limiters[kind].test(self._item(per_minute), kind, subject, cost=cost)

    async def hit(self, kind: str, subject: str, per_minute: int, cost: int = 1) -> bool:
        if per_minute <= 0:
            return False
        return await self._limiters[kind].hit(self._item(per_minute), kind, subject, cost=cost)

    async def add(self, kind: str, subject: str, per_minute: int, amount: int) -> None:
        """Count `amount` (tokens) into the window, as much of it as fits: a full window refuses
        the next request until enough of it has moved out."""
        if per_minute <= 0 or amount <= 0:
            return
        state = await self.state(kind, subject, per_minute)
        room = min(amount, per_minute - state.used)
        if room > 0:
            await self._limiters[kind].hit(self._item(per_minute), kind, subject, cost=room)

    async def state(self, kind: str, subject: str, per_minute: int) -> WindowState:
        if per_minute <= 0:
            return WindowState(used=0, limit=0, reset_at=time.time() + 60)
        stats = await self._limiters[kind].get_window_stats(self._item(per_minute), kind, subject)
        return WindowState(used=per_minute - stats.remaining, limit=per_minute, reset_at=stats.reset_time)

    async def clear(self) -> None:
        await self.storage.reset()
