"""Never pay twice: decide, for a new generation, whether it copies an earlier one.

`Dedup.decide` runs once per generation, after its `pending` row is committed:

1. a `complete` generation with the same cache key, finished within the TTL → copy it (a hit);
2. an identical generation running in this process → join it (single-flight, no await between
   the check and the claim, so any number of concurrent requests elect exactly one leader);
3. an identical generation leading in another process (Redis `SET NX`) → join it;
4. otherwise this generation leads, calls the provider, and `finished` remembers a `complete`
   result for the TTL, then gives up the lead (in that order, so a request arriving in between
   finds the cache entry instead of leading a second call).

A copy is its own record (`cached_from`, cost 0, `saved_nano_usd`); the engine runs it. Redis
failures degrade to step 2 only, with a rate-limited warning: generating never depends on Redis.
"""

from __future__ import annotations

import logging
import zlib
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from genvault._redis import RedisHealth, redis_errors
from genvault.cache.base import Cache
from genvault.cache.key import cache_key
from genvault.cache.sql import SqlCache
from genvault.errors import NotFound
from genvault.providers.base import ModelRequest
from genvault.settings import Settings
from genvault.store import Store
from genvault.store import generations as gen_store
from genvault.store.finishes import CacheEntry

__all__ = ["CachePolicy", "CacheProbe", "Dedup"]

log = logging.getLogger(__name__)

# Slots of the counts of the results remembered, for `decide`'s second look: a key's slot holds
# the count of the latest result whose key hashes there, so keys sharing a slot only cost an extra
# lookup, never a miss (a lookup takes well under a second; thousands of results in that time
# would make most looks extra, none wrong).
_REMEMBERED_SLOTS = 4096


@dataclass
class CachePolicy:
    """One request's cache choice: `enabled=False` always calls the provider (and neither reads
    nor fills the cache); `ttl_seconds` overrides the TTL: how old a reused result may be, and how
    long this request's result stays reusable."""

    enabled: bool = True
    ttl_seconds: float | None = None


@dataclass
class CacheProbe:
    """Step 1's lookup in the SQL cache, to run inside another statement (a new chat's opening,
    `store/openings.py`) instead of a read of its own: the usable entry for `key` (not expired,
    its generation `complete`, finished since `oldest`, and `user_id`'s when the cache is per
    user). Whoever runs it sets `hit` and `ran`."""

    key: str
    now: datetime
    oldest: datetime
    user_id: str | None  # None: any user's result will do (cache_scope "global")
    remembered: int  # `Dedup._remembered` before the lookup (see `decide`)
    hit: str | None = None
    ran: bool = False


class Dedup:
    def __init__(self, backend: Cache, store: Store, settings: Settings, health: RedisHealth | None = None) -> None:
        """`health`: given for a Redis backend, whose failures degrade; an SQL backend's
        failures are the database's, and propagate."""
        self.backend = backend
        self.store = store
        self.settings = settings
        self.health = health or RedisHealth()
        self._degradable: tuple[type[BaseException], ...] = redis_errors() if health is not None else ()
        self._leading: dict[str, str] = {}  # cache key -> generation id leading it in this process
        # Results this process has remembered (`finished`), counted so `decide` can tell whether
        # a local leader finished while it looked up; and by a slot of their key's hash, the
        # latest count there, so only a lookup whose own key (or a key sharing its slot) finished
        # meanwhile looks again. With many turns at once some other key nearly always finished in
        # between: a second read for every turn otherwise. A fixed array made once, not a dict of
        # the keys: each turn's key and count would otherwise be small objects made mid-burst that
        # outlive it, each keeping a 1 MiB arena of Python's allocator from going back to the
        # system after the burst (docs/benchmarks.md, "What stays in memory after a run").
        self._remembered = 0
        self._remembered_slots = array("Q", bytes(8 * max(1, _REMEMBERED_SLOTS)))

    def ttl(self, policy: CachePolicy) -> float:
        return self.settings.cache_ttl_seconds if policy.ttl_seconds is None else policy.ttl_seconds

    def key_for(self, *, model: str, request: ModelRequest, user_id: str, policy: CachePolicy | None) -> str | None:
        """The request's cache key, or None when this request does not take part in dedup."""
        if policy is None or not policy.enabled or self.ttl(policy) <= 0:
            return None
        scope = user_id if self.settings.cache_scope == "user" else None
        return cache_key(model=model, request=request, user_id=scope)

    def probe(self, key: str, user_id: str, policy: CachePolicy) -> CacheProbe | None:
        """Step 1 as a `CacheProbe` for the SQL cache (None for Redis, looked up by `decide`)."""
        if getattr(self.backend, "claims_across_processes", True):
            return None
        now = datetime.now(UTC)
        scope = None if self.settings.cache_scope == "global" else user_id
        return CacheProbe(key, now, now - timedelta(seconds=self.ttl(policy)), scope, self._remembered)

    async def decide(
        self, key: str, generation_id: str, user_id: str, policy: CachePolicy, *, probe: CacheProbe | None = None
    ) -> str | None:
        """The generation to copy, or None when this one leads (and must call the provider).
        `probe`: step 1 already run (`probe.ran`) inside another statement."""
        if probe is not None and probe.ran:
            remembered, hit = probe.remembered, probe.hit
        else:
            remembered = self._remembered
            hit = await self._lookup(key, user_id, policy)
        if hit is not None:
            return hit
        local = self._leading.get(key)
        if local is not None:
            return local
        self._leading[key] = generation_id
        try:
            self._check()
            leader = await self.backend.claim(key, generation_id, self.settings.lease_seconds)
            self.health.ok()
        except self._degradable as exc:
            self.health.failed(exc, "single-flight is per process until it returns")
            return None
        if leader is not None:
            return leader  # local followers that joined us get the same stream, one hop later
        # We lead; a leader that finished between our lookup and our claim left its result. When
        # claims are per process (the SQL cache), only a leader here can have, and it counted its
        # result before giving up the lead: none counted, no second read.
        if not getattr(self.backend, "claims_across_processes", True) and not self._remembered_since(key, remembered):
            return None
        return await self._lookup(key, user_id, policy)

    def _slot(self, key: str) -> int:
        # crc32, not `hash`: the same slots in every process (`hash` of a str is salted per run).
        return zlib.crc32(key.encode()) % len(self._remembered_slots)

    def _remembered_since(self, key: str, remembered: int) -> bool:
        """Whether a result for `key` may have been remembered here after the count was
        `remembered` (True too when a key sharing its slot was)."""
        if self._remembered == remembered:
            return False
        return self._remembered_slots[self._slot(key)] > remembered

    def _count_remembered(self, key: str) -> None:
        self._remembered += 1
        self._remembered_slots[self._slot(key)] = self._remembered

    async def _lookup(self, key: str, user_id: str, policy: CachePolicy) -> str | None:
        try:
            self._check()
            found = await self.backend.get(key)
            self.health.ok()
        except self._degradable as exc:
            self.health.failed(exc, "the dedup cache is off until it returns")
            return None
        if found is None:
            return None
        try:
            async with self.store.read() as conn:
                record = await gen_store.get(conn, found)
        except NotFound:
            record = None
        oldest = datetime.now(UTC) - timedelta(seconds=self.ttl(policy))
        usable = (
            record is not None
            and record.status == "complete"
            and record.finished_at is not None
            and record.finished_at >= oldest
            and (self.settings.cache_scope == "global" or record.user_id == user_id)
        )
        if not usable:
            return None  # erased, or older than this request accepts: call the provider
        return found

    async def renew(self, key: str, generation_id: str) -> None:
        if self._leading.get(key) != generation_id:
            return
        try:
            self._check()
            await self.backend.renew(key, generation_id, self.settings.lease_seconds)
        except self._degradable as exc:
            self.health.failed(exc, "single-flight is per process until it returns")

    async def remember_in(
        self, conn: AsyncConnection, key: str, generation_id: str, user_id: str, policy: CachePolicy
    ) -> bool:
        """In the leader's finalize transaction (when it ends `complete`): remember the result
        there if the backend keeps it in the database (the SQL cache), one transaction fewer than
        a `put` of its own. True if it did; once that transaction commits, `finished(...,
        stored=True)` only gives up the lead."""
        put_in = getattr(self.backend, "put_in", None)
        if put_in is None or self._leading.get(key) != generation_id:
            return False
        await put_in(conn, key, generation_id, user_id, self.ttl(policy))
        return True

    def entry_for(self, key: str, generation_id: str, user_id: str, policy: CachePolicy) -> CacheEntry | None:
        """`remember_in` as values, for a finalize written in one statement (`store.finishes`):
        the entry when the backend keeps it in the database and this generation leads the key;
        once that statement commits, `finished(..., stored=True)` only gives up the lead."""
        entry = getattr(self.backend, "entry", None)
        if entry is None or self._leading.get(key) != generation_id:
            return None
        made: CacheEntry = entry(key, generation_id, user_id, self.ttl(policy))
        return made

    def finished_at_once(self, key: str, generation_id: str, *, complete: bool, stored: bool) -> bool:
        """`finished` when it has nothing to await, done here: True then. That is a follower, or a
        leader whose result needs no `put` (not complete, or stored by `remember_in`) on the SQL
        cache, whose lead is this process's own (`release` writes nothing) and which has no Redis
        health to check. False: call
        `finished`. (A chat turn's reply ends with no task and no suspension for this.)"""
        if self._leading.get(key) != generation_id:
            return True  # a follower: nothing of its own to remember
        if type(self.backend) is not SqlCache or self._degradable or (complete and not stored):
            return False
        if complete:
            self._count_remembered(key)
        self._leading.pop(key, None)
        return True

    async def finished(
        self,
        key: str,
        generation_id: str,
        user_id: str,
        *,
        complete: bool,
        policy: CachePolicy,
        stored: bool = False,
    ) -> None:
        """Remember a leader's `complete` result (unless `remember_in` `stored` it already), then
        give up the lead."""
        if self._leading.get(key) != generation_id:
            return  # a follower: nothing of its own to remember
        try:
            self._check()
            if complete and not stored:
                await self.backend.put(key, generation_id, user_id, self.ttl(policy))
            if complete:
                self._count_remembered(key)
            await self.backend.release(key, generation_id)
            self.health.ok()
        except self._degradable as exc:
            self.health.failed(exc, "the result of %s is not cached", generation_id)
        finally:
            self._leading.pop(key, None)

    def _check(self) -> None:
        if self._degradable:
            self.health.check()

    async def forget_user(self, user_id: str) -> int:
        return await self.backend.forget_user(user_id)
