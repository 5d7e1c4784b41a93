"""The blob store contract, run on every backend: bytes by sha256, written whole or not at all."""

from __future__ import annotations

import hashlib

import pytest

from genvault.blobs import BlobNotFound, BlobStore
from genvault.errors import InvalidRequest, NotFound

DATA = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


async def test_put_returns_the_sha256_and_get_returns_the_same_bytes(blob_store: BlobStore) -> None:
    sha = await blob_store.put(DATA)
    assert sha == hashlib.sha256(DATA).hexdigest()
    assert await blob_store.get(sha) == DATA
    assert await blob_store.stat(sha) == len(DATA)
    assert await blob_store.exists(sha)


async def test_putting_identical_bytes_twice_keeps_one_object(blob_store: BlobStore) -> None:
    first = await blob_store.put(DATA)
    second = await blob_store.put(bytes(DATA))
    assert first == second
    assert [key async for key in blob_store.iter_keys()] == [first]


async def test_different_bytes_are_different_objects(blob_store: BlobStore) -> None:
    a = await blob_store.put(b"a")
    b = await blob_store.put(b"b")
    assert sorted([key async for key in blob_store.iter_keys()]) == sorted([a, b])


async def test_empty_bytes_are_a_valid_object(blob_store: BlobStore) -> None:
    sha = await blob_store.put(b"")
    assert await blob_store.get(sha) == b""
    assert await blob_store.stat(sha) == 0


async def test_get_range_returns_the_slice(blob_store: BlobStore) -> None:
    sha = await blob_store.put(DATA)
    assert await blob_store.get_range(sha, 0, 8) == DATA[:8]
    assert await blob_store.get_range(sha, 100, 300) == DATA[100:300]
    assert await blob_store.get_range(sha, len(DATA) - 5, len(DATA) + 100) == DATA[-5:]
    assert await blob_store.get_range(sha, 10, 10) == b""


async def test_delete_removes_the_object_and_repeating_it_is_harmless(blob_store: BlobStore) -> None:
    sha = await blob_store.put(DATA)
    await blob_store.delete(sha)
    assert not await blob_store.exists(sha)
    assert [key async for key in blob_store.iter_keys()] == []
    await blob_store.delete(sha)


async def test_a_missing_object_raises_blob_not_found_naming_it(blob_store: BlobStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    for call in (
        blob_store.get(missing),
        blob_store.stat(missing),
        blob_store.get_range(missing, 0, 1),
    ):
        with pytest.raises(BlobNotFound, match=missing) as info:
            await call
        assert isinstance(info.value, NotFound)
    assert not await blob_store.exists(missing)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "abc", "g" * 64, "0" * 63 + "/", ""])
async def test_a_key_that_is_not_a_sha256_is_refused_before_touching_storage(blob_store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidRequest, match="not a sha256"):
        await blob_store.get(bad)
    with pytest.raises(InvalidRequest, match="not a sha256"):
        await blob_store.delete(bad)


async def test_an_empty_store_lists_nothing(blob_store: BlobStore) -> None:
    assert [key async for key in blob_store.iter_keys()] == []


async def test_an_object_larger_than_one_upload_part_round_trips(blob_store: BlobStore) -> None:
    big = hashlib.sha256(b"seed").digest() * (7 * 1024 * 1024 // 32)  # 7 MiB: multipart on S3
    sha = await blob_store.put(big)
    assert await blob_store.stat(sha) == len(big)
    assert await blob_store.get_range(sha, 6 * 1024 * 1024, 6 * 1024 * 1024 + 10) == big[6 * 1024 * 1024 :][:10]
    assert await blob_store.get(sha) == big


async def test_objects_are_listed_under_their_sha256_only(blob_store: BlobStore) -> None:
    shas = {await blob_store.put(bytes([i]) * i) for i in range(1, 60)}  # more than one list page
    assert {key async for key in blob_store.iter_keys()} == shas
