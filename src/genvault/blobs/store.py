"""`BlobStore`: content-addressed bytes on obstore (a local directory, S3, or memory).

Invariants:
- An object's key is the sha256 of its bytes (`sha256/ab/abcdef…`), so storing the same bytes
  twice writes one object, and a key never names two different contents.
- An object appears under its final key only complete: bytes go to a temporary key first
  (`tmp/<id>`) and are renamed into place. A writer killed midway leaves at most a temporary
  object, never a partial one under a final key; `sweep_temporary()` removes such leftovers.
- The store knows nothing of users or records: the `blobs` table says who references an object,
  and only the Vault decides when an unreferenced object may go.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import LocalStore, MemoryStore, S3Store

from genvault.errors import BlobNotFound, InvalidRequest, StorageError
from genvault.ids import new_id
from genvault.settings import Settings

__all__ = ["SHA256_PATTERN", "BlobStore", "blob_store_from_settings"]

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_OBJECTS = "sha256"
_TEMPORARY = "tmp"

T = TypeVar("T")

# obstore reports a missing object as its own NotFoundError or as Python's FileNotFoundError,
# depending on the call; any other failure derives from its BaseError or from OSError.
_MISSING = (NotFoundError, FileNotFoundError)
_FAILED = (BaseError, OSError, RuntimeError, ValueError)


def _key(sha256: str) -> str:
    # Checked before it becomes a path: a caller's string can never point outside the store.
    if not isinstance(sha256, str) or not SHA256_PATTERN.match(sha256):
        raise InvalidRequest(f"{sha256!r} is not a sha256: expected 64 lower-case hex digits")
    return f"{_OBJECTS}/{sha256[:2]}/{sha256}"


class BlobStore:
    """Bytes by sha256 over any obstore store. Every method is async and safe to call concurrently."""

    def __init__(self, store: Any, *, description: str = "blob store") -> None:
        self.store = store
        self.description = description

    @classmethod
    def local(cls, directory: Path) -> BlobStore:
        directory.mkdir(parents=True, exist_ok=True)
        return cls(LocalStore(directory, mkdir=True), description=f"local directory {directory}")

    @classmethod
    def memory(cls) -> BlobStore:
        """The in-memory twin, for tests and throw-away vaults."""
        return cls(MemoryStore(), description="memory")

    async def _call(self, what: str, sha256: str | None, action: Callable[[], Awaitable[T]]) -> T:
        try:
            return await action()
        except _MISSING:
            if sha256 is None:
                raise StorageError(f"{self.description}: {what} found nothing") from None
            raise BlobNotFound(sha256) from None
        except _FAILED as exc:
            # obstore's errors derive from these; keep the message, drop the Rust backtrace.
            raise StorageError(f"{self.description}: {what} failed: {str(exc).splitlines()[0]}") from exc

    async def put(self, data: bytes) -> str:
        """Store `data`; return its sha256 (hex). Storing bytes already present writes nothing."""
        sha256 = hashlib.sha256(data).hexdigest()
        key = _key(sha256)
        if await self.exists(sha256):
            return sha256
        temporary = f"{_TEMPORARY}/{new_id('put')}"
        await self._call("writing", None, lambda: obstore.put_async(self.store, temporary, data))
        try:
            # Rename is atomic on a filesystem; on S3 it is a server-side copy then delete, and the
            # copy makes the final object appear whole or not at all.
            await self._call("publishing", None, lambda: obstore.rename_async(self.store, temporary, key))
        except BaseException:
            await self._delete_quietly(temporary)
            raise
        return sha256

    async def get(self, sha256: str) -> bytes:
        key = _key(sha256)

        async def read() -> bytes:
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())

        return await self._call("reading", sha256, read)

    async def get_range(self, sha256: str, start: int, end: int) -> bytes:
        """Bytes `start` (inclusive) to `end` (exclusive), like a slice; `end` past the size is
        clamped to it."""
        if start < 0 or end < start:
            raise InvalidRequest(f"byte range {start}-{end} is not valid: need 0 <= start <= end")
        key = _key(sha256)
        size = await self.stat(sha256)
        end = min(end, size)
        if start >= end:
            return b""

        async def read() -> bytes:
            return bytes(await obstore.get_range_async(self.store, key, start=start, end=end))

        return await self._call("reading a range", sha256, read)

    async def stat(self, sha256: str) -> int:
        """The object's size in bytes."""
        key = _key(sha256)
        meta = await self._call("stat", sha256, lambda: obstore.head_async(self.store, key))
        return int(meta["size"])

    async def exists(self, sha256: str) -> bool:
        try:
            await self.stat(sha256)
        except BlobNotFound:
            return False
        return True

    async def delete(self, sha256: str) -> None:
        """Remove the object. Deleting a missing object is not an error (erasure may repeat)."""
        key = _key(sha256)
        await self._delete_quietly(key, raise_errors=True)

    async def _delete_quietly(self, key: str, *, raise_errors: bool = False) -> None:
        try:
            await obstore.delete_async(self.store, key)
        except _MISSING:
            pass
        except _FAILED as exc:
            if raise_errors:
                raise StorageError(f"{self.description}: deleting failed: {str(exc).splitlines()[0]}") from exc

    async def iter_keys(self) -> AsyncIterator[str]:
        """The sha256 of every complete object (temporary objects are not listed)."""
        async for meta in self._list(_OBJECTS):
            name = str(meta["path"]).rsplit("/", 1)[-1]
            if SHA256_PATTERN.match(name):
                yield name

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        stream = obstore.list(self.store, prefix)
        try:
            async for batch in stream:
                for meta in batch:
                    yield dict(meta)
        except _MISSING:
            return  # a local store whose folder was never created lists nothing
        except _FAILED as exc:
            raise StorageError(f"{self.description}: listing failed: {str(exc).splitlines()[0]}") from exc

    async def sweep_temporary(self, *, older_than: timedelta = timedelta(hours=1)) -> int:
        """Delete temporary objects left by writers that died; returns how many went. Only old
        ones: a younger one may belong to a write still in progress."""
        cutoff = datetime.now(UTC) - older_than
        stale = [str(m["path"]) async for m in self._list(_TEMPORARY) if m["last_modified"] < cutoff]
        for key in stale:
            await self._delete_quietly(key)
        return len(stale)


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """The configured store: a local directory by default, S3 when `blob_store="s3"`."""
    if settings.blob_store == "local":
        return BlobStore.local(settings.resolved_blob_dir)
    if not settings.s3_bucket:
        raise InvalidRequest("blob_store is s3 but s3_bucket is not set: name the bucket (GENVAULT_S3_BUCKET)")
    config: dict[str, Any] = {}
    if settings.s3_endpoint:
        config["endpoint"] = settings.s3_endpoint
    if settings.s3_region:
        config["region"] = settings.s3_region
    if settings.s3_access_key_id:
        config["access_key_id"] = settings.s3_access_key_id
    if settings.s3_secret_access_key:
        config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    store = S3Store(
        settings.s3_bucket,
        prefix=settings.s3_prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options={"allow_http": settings.s3_allow_http},
    )
    where = f"s3://{settings.s3_bucket}/{settings.s3_prefix or ''}"
    return BlobStore(store, description=f"S3 bucket {where}")
