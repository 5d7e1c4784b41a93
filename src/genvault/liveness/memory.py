"""Memory given back once the process goes quiet.

A burst of streams leaves freed memory that the allocator keeps for reuse: after 100,000 tokens
the process stayed ~30 MB above its start although no finished stream was held (the hub forgets
them). When the process has run nothing for a moment and its hub holds no stream, the
`QuietTrim` forgets the hub's stale streams and asks the allocator the process runs on
(`genvault.allocator`) to return its free pages, once per quiet spell: jemalloc purges
every arena's unused pages now rather than after their decay, mimalloc collects, glibc trims
(`malloc_trim`). Never while streams run, where it would stall the loop for memory about to be
reused. Elsewhere it does nothing.
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


@functools.cache
def _mimalloc_collect() -> Callable[[bool], None] | None:
    try:
        collect = ctypes.CDLL(None).mi_collect
    except (OSError, AttributeError):  # mimalloc not loaded
        return None
    collect.argtypes = [ctypes.c_bool]
    collect.restype = None
    return collect


@functools.cache
def _jemalloc_purge() -> Callable[[], int] | None:
    try:
        mallctl = ctypes.CDLL(None).mallctl
    except (OSError, AttributeError):  # jemalloc not loaded
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    mallctl.restype = ctypes.c_int
    # MALLCTL_ARENAS_ALL (4096): every arena's unused dirty pages, now rather than after their decay
    return functools.partial(mallctl, b"arena.4096.purge", None, None, None, 0)


def malloc_trim() -> bool:
    """Return the allocator's free memory to the OS (jemalloc, mimalloc or glibc, whichever this
    process runs on); False where there is no such call."""
    purge = _jemalloc_purge()
    if purge is not None:
        return purge() == 0
    collect = _mimalloc_collect()
    if collect is not None:
        collect(True)
        return True
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
