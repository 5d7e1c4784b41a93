"""The Redis Streams hub: any process can follow a generation that another process runs.

Each generation's chunks go to the stream `<prefix>stream:<id>` as entries `{k: "c", i, d}`
(index, JSON chunk) after an `{k: "open"}` entry, and end with `{k: "end", n}`; `XADD MAXLEN ~`
bounds a runaway stream and `EXPIRE` (renewed on every write) drops it `retain_seconds` after the
last write, when the database record takes over as the replay source.

The producer also keeps every chunk in a local `MemoryHub`: followers in the same process read it
directly, and it is the truth the Redis copy is rebuilt from. A write that fails (Redis down)
marks the stream unsynced; the next write that succeeds rewrites the whole stream, and followers
skip indexes they already have, so an outage leaves no hole in what they receive. A follower in
another process whose Redis goes away mid-stream (or whose stream expires before its end) gets an
`error` chunk saying so, never a quiet end that would pass for a whole reply; the generation goes
on in its own process and its record has the result.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from genvault._redis import RedisHealth, redis_errors
from genvault.streams.memory import CLOSED_RETAIN_SECONDS, MemoryHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisHub"]


def _lost(stream_id: str, why: str) -> dict[str, Any]:
    """The chunk that ends a follow cut short: an `error` the client shows, never a silent end."""
    return {
        "type": "error",
        "errorText": f"stopped following generation {stream_id}: {why}; "
        "it goes on being saved, so reload to see it as stored",
    }


class RedisHub:
    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        maxlen: int = 100_000,
        retain_seconds: float = 300.0,
        block_ms: int = 1000,
        health: RedisHealth | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.maxlen = maxlen
        self.retain_seconds = retain_seconds
        self.block_ms = block_ms
        self.health = health or RedisHealth()
        # This process's copy of the streams it produces: Redis keeps finished ones, not memory.
        self.local = MemoryHub(retain_seconds=min(retain_seconds, CLOSED_RETAIN_SECONDS))
        # How many chunks of each local stream Redis holds; -1: unknown, rewrite on next write.
        self._synced: dict[str, int] = {}

    def _key(self, stream_id: str) -> str:
        return f"{self.prefix}stream:{stream_id}"

    async def open(self, stream_id: str) -> None:
        await self.local.open(stream_id)
        self._synced[stream_id] = -1
        await self._push(stream_id)

    async def publish(self, stream_id: str, chunk: dict[str, Any]) -> None:
        await self.local.publish(stream_id, chunk)
        await self._push(stream_id)

    async def close(self, stream_id: str) -> None:
        await self.local.close(stream_id)
        await self._push(stream_id, end=True)
        self._synced.pop(stream_id, None)

    async def _push(self, stream_id: str, *, end: bool = False) -> None:
        synced = self._synced.get(stream_id, -1)
        new = self.local.chunks(stream_id, max(synced, 0))  # what Redis lacks, taken before any await
        count = max(synced, 0) + len(new)
        key = self._key(stream_id)
        try:
            if not end:  # the end marker is always tried: followers elsewhere wait for it
                self.health.check()
            async with self.client.pipeline(transaction=True) as pipe:
                if synced < 0:
                    pipe.delete(key)
                    pipe.xadd(key, {"k": "open"})
                    synced = 0
                for index, chunk in enumerate(new, synced):
                    fields = {"k": "c", "i": index, "d": json.dumps(chunk, separators=(",", ":"))}
                    pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
                if end:
                    pipe.xadd(key, {"k": "end", "n": count})
                pipe.expire(key, max(1, round(self.retain_seconds)))
                await pipe.execute()
            self._synced[stream_id] = count
            self.health.ok()
        except redis_errors() as exc:
            self._synced[stream_id] = -1
            self.health.failed(exc, "live streams are followed in this process only until it returns")

    async def exists(self, stream_id: str) -> bool:
        if await self.local.exists(stream_id):
            return True
        try:
            self.health.check()
            found = bool(await self.client.exists(self._key(stream_id)))
            self.health.ok()
            return found
        except redis_errors() as exc:
            self.health.failed(exc, "streams of other processes are replayed from their records")
            return False

    async def follow(self, stream_id: str, start: int = 0) -> AsyncIterator[dict[str, Any]]:
        if await self.local.exists(stream_id):
            async for chunk in self.local.follow(stream_id, start):
                yield chunk
            return
        key = self._key(stream_id)
        expected = max(start, 0)  # the next index to yield
        last_id = "0-0"
        try:
            self.health.check()
            if not await self.client.exists(key):
                return
            task = asyncio.current_task()
            while True:
                response: Any = await self.client.xread({key: last_id}, count=500, block=self.block_ms)
                if task is not None and task.cancelling():
                    # A cancel that arrived during the blocking read can be lost inside redis-py
                    # (seen under load: the follower of a gone client read its stream to the end).
                    raise asyncio.CancelledError
                if not response:
                    if not await self.client.exists(key):
                        # Expired before its end: the producer is gone; the record has the rest.
                        yield _lost(stream_id, "its live stream expired before it ended")
                        return
                    continue
                for entry_id, fields in response[0][1]:
                    kind = fields.get("k")
                    if last_id == "0-0" and kind == "c" and int(fields["i"]) > expected:
                        # The head was trimmed (a stream longer than `maxlen`): start where it is.
                        expected = int(fields["i"])
                    last_id = entry_id
                    if kind == "c":
                        index = int(fields["i"])
                        # Skip what we have; a hole (writes lost while Redis was away) fills when
                        # the producer rewrites the stream.
                        if index == expected:
                            expected += 1
                            yield json.loads(fields["d"])
                    elif kind == "end" and int(fields["n"]) <= expected:
                        return
        except redis_errors() as exc:
            self.health.failed(exc, "stopped following %s", stream_id)
            # Never a quiet end: a follower that stopped here would look like a whole reply.
            yield _lost(stream_id, "Redis, which carried its live stream, became unreachable")

    async def abandon(self, stream_id: str) -> None:
        """End the stream of a generation whose producer died (the sweeper marked it
        `interrupted`): an `abort` chunk and the end marker, so its followers stop waiting."""
        if await self.local.exists(stream_id):
            await self.local.abandon(stream_id)
            return
        key = self._key(stream_id)
        try:
            last: Any = await self.client.xrevrange(key, count=1)
            if not last or last[0][1].get("k") == "end":
                return  # gone, or ended after all
            fields = last[0][1]
            index = int(fields["i"]) + 1 if fields.get("k") == "c" else 0
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xadd(key, {"k": "c", "i": index, "d": json.dumps({"type": "abort"})})
                pipe.xadd(key, {"k": "end", "n": index + 1})
                pipe.expire(key, max(1, round(self.retain_seconds)))
                await pipe.execute()
        except redis_errors() as exc:
            self.health.failed(exc, "followers of %s stop when its stream expires", stream_id)

    async def discard(self, generation_id: str) -> None:
        """Forget a stream's buffer everywhere (erasure)."""
        await self.local.discard(generation_id)
        self._synced.pop(generation_id, None)
        try:
            await self.client.delete(self._key(generation_id))
        except redis_errors() as exc:
            self.health.failed(exc, "stream %s was not deleted from Redis", generation_id)
            raise

    async def aclose(self) -> None:
        await self.local.aclose()
