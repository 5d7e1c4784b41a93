"""Memory given back once the process goes quiet.

A burst of streams leaves freed memory that glibc's allocator keeps for reuse: after 100,000
tokens the process stayed ~30 MB above its start although no finished stream was held (the hub
forgets them). When the process has run nothing for a moment and its hub holds no stream, the
`QuietTrim` forgets the hub's stale streams and asks glibc to return its free pages
(`malloc_trim`), once per quiet spell; never while streams run, where it would stall the loop for
memory about to be reused. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["QuietTrim", "malloc_trim"]

log = logging.getLogger(__name__)


@functools.cache
def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def malloc_trim() -> bool:
    """Return the allocator's free memory to the OS (glibc); False where there is no such call."""
    trim = _libc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class QuietTrim:
    """`tick(busy)` from a periodic loop: `busy()` says whether anything still runs or is held
    (it may forget stale streams as it looks). After `quiet_seconds` of not busy, one trim; the
    next trim waits for the next busy spell to end."""

    def __init__(self, *, quiet_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._quiet_since: float | None = None
        self._dirty = True  # the start-up itself leaves garbage behind
        self.trims = 0  # (tests, metrics)

    def tick(self, busy: bool) -> bool:
        """True when it trimmed now."""
        now = self._clock()
        if busy:
            self._quiet_since = None
            self._dirty = True
            return False
        if self._quiet_since is None:
            self._quiet_since = now
        if not self._dirty or now - self._quiet_since < self.quiet_seconds:
            return False
        self._dirty = False
        started = time.perf_counter()
        gc.collect()  # cycles first (a finished run's task, frames and futures), so their memory is free
        if malloc_trim():
            self.trims += 1
            log.debug("gave free memory back to the OS in %.1f ms", (time.perf_counter() - started) * 1000)
            return True
        return False
