"""The Redis connection shared by the dedup cache and the stream hub, and how they degrade.

Redis is an accelerator, never the record: every generation is in the database. When Redis is
unreachable, callers fall back to local behaviour (no shared cache, in-process streams) and log
one warning per `warn_every` seconds instead of one per chunk. After a failure, callers skip
Redis for `retry_seconds` (`should_try`), so a Redis that times out instead of refusing does not
slow every chunk by a connect timeout; redis-py reconnects on its own, so the first command that
succeeds after an outage ends the degradation.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisHealth", "RedisSkipped", "connect", "redis_errors"]

log = logging.getLogger(__name__)


@functools.cache
def redis_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable or failing Redis raises (connection refused, timeouts, server errors).

    A function, not a module constant, so that importing genvault (and `genvault serve` without
    a Redis URL) does not import redis-py: `redis` imports its whole client, and with it the
    OpenTelemetry SDK's metrics, ~0.25 s of start-up. Callers ask for it only where a Redis client
    exists (so redis is imported already), e.g. in an `except` clause, evaluated when raised.
    """
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - the redis extra is not installed
        return (OSError, TimeoutError)
    return (OSError, TimeoutError, RedisError)


class RedisSkipped(ConnectionError):
    """Raised instead of calling Redis while it is in its retry pause after a failure."""


def connect(url: str) -> Redis:
    """A client that fails fast: no retries with backoff inside a call, so a down Redis costs a
    generation one refused connection, not seconds per chunk."""
    try:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:  # pragma: no cover - depends on the environment
        from genvault.errors import InvalidRequest

        raise InvalidRequest(
            "redis_url is set but the redis package is missing: pip install 'genvault[redis]'"
        ) from None
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=1.0, socket_timeout=5.0, retry=Retry(NoBackoff(), 0), decode_responses=True
    )
    return client


class RedisHealth:
    """Rate-limited logging of Redis failures and of the recovery."""

    def __init__(self, warn_every: float = 30.0, retry_seconds: float = 1.0) -> None:
        self.warn_every = warn_every
        self.retry_seconds = retry_seconds
        self.down = False
        self._last_warning = -float("inf")
        self._retry_at = -float("inf")
        self.failures = 0

    def should_try(self) -> bool:
        """False for `retry_seconds` after a failure: skip Redis and fall back at once."""
        return time.monotonic() >= self._retry_at

    def check(self) -> None:
        """Raise `RedisSkipped` while in the retry pause (callers handle it like a failure)."""
        if not self.should_try():
            raise RedisSkipped("Redis is paused after a failure")

    def failed(self, exc: BaseException, fallback: str, *args: Any) -> None:
        if isinstance(exc, RedisSkipped):
            return  # not a new failure: the pause must not extend itself
        self.failures += 1
        self.down = True
        now = time.monotonic()
        self._retry_at = now + self.retry_seconds
        if now - self._last_warning >= self.warn_every:
            self._last_warning = now
            log.warning("Redis unavailable (%s: %s); " + fallback, type(exc).__name__, exc, *args)

    def ok(self) -> None:
        if self.down:
            self.down = False
            self._last_warning = -float("inf")
            log.warning("Redis reachable again; shared cache and streams resumed")
