"""The Redis cache: `SET key value EX ttl` per entry, and `SET NX PX` leadership of running keys.

Keys (under the configured prefix): `cache:<key>` holds `{"generation_id", "user_id"}`;
`cache-user:<user>` is the set of that user's cache keys, so erasure finds them without a scan;
`inflight:<key>` holds the leader's generation id while it runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCache"]

# Delete the leadership key only if it is still ours (its lease may have passed to another).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)


class RedisCache:
    def __init__(self, client: Redis, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _entry(self, key: str) -> str:
        return f"{self.prefix}cache:{key}"

    def _user(self, user_id: str) -> str:
        return f"{self.prefix}cache-user:{user_id}"

    def _inflight(self, key: str) -> str:
        return f"{self.prefix}inflight:{key}"

    async def get(self, key: str) -> str | None:
        raw = await self.client.get(self._entry(key))
        if raw is None:
            return None
        return str(json.loads(raw)["generation_id"])

    async def put(self, key: str, generation_id: str, user_id: str, ttl_seconds: float) -> None:
        ttl = max(1, round(ttl_seconds))
        value = json.dumps({"generation_id": generation_id, "user_id": user_id})
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._entry(key), value, ex=ttl)
            pipe.sadd(self._user(user_id), key)
            # The index outlives the longest entry it lists; stale members cost nothing.
            pipe.expire(self._user(user_id), ttl, gt=True)
            pipe.expire(self._user(user_id), ttl, nx=True)
            await pipe.execute()

    async def delete(self, key: str) -> None:
        await self.client.delete(self._entry(key))

    async def forget_user(self, user_id: str) -> int:
        keys = await self.client.smembers(self._user(user_id))
        deleted = 0
        if keys:
            deleted = int(await self.client.delete(*[self._entry(str(k)) for k in keys]))
        await self.client.delete(self._user(user_id))
        return deleted

    async def claim(self, key: str, generation_id: str, lease_seconds: float) -> str | None:
        lease_ms = max(1, round(lease_seconds * 1000))
        for _ in range(3):  # the holder's lease can lapse between SET NX and GET
            if await self.client.set(self._inflight(key), generation_id, nx=True, px=lease_ms):
                return None
            holder = await self.client.get(self._inflight(key))
            if holder is not None:
                return None if holder == generation_id else str(holder)
        return None

    async def renew(self, key: str, generation_id: str, lease_seconds: float) -> None:
        lease_ms = max(1, round(lease_seconds * 1000))
        await self.client.eval(_RENEW, 1, self._inflight(key), generation_id, lease_ms)

    async def release(self, key: str, generation_id: str) -> None:
        await self.client.eval(_RELEASE, 1, self._inflight(key), generation_id)

    async def aclose(self) -> None:
        return None  # the client is shared with the hub; the Vault closes it
