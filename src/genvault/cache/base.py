"""The cache backend protocol: where finished results are remembered, and who leads a request
that is running now.

`get`/`put` map a cache key to the `complete` generation that answered it, for a TTL. `claim`
makes one generation the leader of a key across processes (`None`: you lead; otherwise the
leader's id), renewed while it runs and released when it ends. `forget_user` deletes every entry
of one user (erasure).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Cache"]


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, generation_id: str, user_id: str, ttl_seconds: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def forget_user(self, user_id: str) -> int:
        """Delete all cache entries of `user_id`; returns how many there were."""
        ...

    async def claim(self, key: str, generation_id: str, lease_seconds: float) -> str | None: ...

    async def renew(self, key: str, generation_id: str, lease_seconds: float) -> None: ...

    async def release(self, key: str, generation_id: str) -> None: ...

    async def aclose(self) -> None: ...
