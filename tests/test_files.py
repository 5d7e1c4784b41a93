"""Files through the Vault: stored once by content, recorded per reference, access-checked like
the chat they belong to, refused (with nothing stored) when settings do not allow them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from genvault.errors import BlobNotFound, InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from genvault.ids import ID_PATTERN
from genvault.store.schema import blobs

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


async def stored_rows(vault: Any) -> list[dict[str, Any]]:
    async with vault.store.read() as conn:
        return [dict(r) for r in (await conn.execute(blobs.select())).mappings().all()]


async def object_keys(vault: Any) -> list[str]:
    return [key async for key in vault.blobs.iter_keys()]


async def test_a_stored_file_has_a_permanent_url_and_reads_back(vault_factory: Any) -> None:
    vault = await vault_factory()
    record = await vault.store_file(PNG, media_type="image/png", user_id="local", filename="cat.png")
    assert ID_PATTERN.match(record.id)
    assert record.id.startswith("file_")
    assert record.url == f"/files/{record.id}"
    assert record.sha256 == hashlib.sha256(PNG).hexdigest()
    assert (record.size, record.media_type, record.filename, record.user_id) == (
        len(PNG),
        "image/png",
        "cat.png",
        "local",
    )
    assert await vault.get_file(record.id, user_id="local") == record
    assert await vault.read_file(record.id, user_id="local") == PNG


async def test_the_url_is_absolute_when_a_public_url_is_set(vault_factory: Any) -> None:
    vault = await vault_factory(settings_overrides={"public_url": "https://vault.example.com/"})
    record = await vault.store_file(PNG, media_type="image/png", user_id="local")
    assert record.url == f"https://vault.example.com/files/{record.id}"


async def test_the_same_bytes_twice_are_two_records_sharing_one_object(vault_factory: Any) -> None:
    vault = await vault_factory()
    first = await vault.store_file(PNG, media_type="image/png", user_id="local")
    second = await vault.store_file(PNG, media_type="image/png", user_id="bob")
    assert first.id != second.id
    assert first.sha256 == second.sha256
    assert await object_keys(vault) == [first.sha256]
    # The object stays while any record references it.
    await vault.delete_file(first.id, user_id="local")
    assert await vault.read_file(second.id, user_id="bob") == PNG
    await vault.delete_file(second.id, user_id="bob")
    assert await object_keys(vault) == []
    with pytest.raises(NotFound):
        await vault.get_file(second.id, user_id="bob")


async def test_another_users_file_is_not_found(vault_factory: Any) -> None:
    vault = await vault_factory()
    record = await vault.store_file(PNG, media_type="image/png", user_id="alice")
    with pytest.raises(NotFound, match="no file"):
        await vault.get_file(record.id, user_id="bob")
    with pytest.raises(NotFound):
        await vault.read_file(record.id, user_id="bob")
    with pytest.raises(NotFound):
        await vault.delete_file(record.id, user_id="bob")
    assert await vault.read_file(record.id, user_id="alice") == PNG


async def test_a_file_of_a_shared_chat_is_readable_by_others_but_not_deletable(vault_factory: Any) -> None:
    vault = await vault_factory()
    await vault.ensure_user("alice")
    await vault.create_chat("c1", user_id="alice")
    record = await vault.store_file(PNG, media_type="image/png", user_id="alice", chat_id="c1", message_id="m1")
    with pytest.raises(NotFound):
        await vault.get_file(record.id, user_id="bob")
    await vault.update_chat("c1", user_id="alice", visibility="link")
    assert await vault.read_file(record.id, user_id="bob") == PNG
    with pytest.raises(NotFound):
        await vault.delete_file(record.id, user_id="bob")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"media_type": "application/x-msdownload"}, UnsupportedMediaType, "not accepted"),
        ({"media_type": "not a type"}, InvalidRequest, "type/subtype"),
        ({"media_type": "image/png", "filename": "../../etc/passwd"}, InvalidRequest, "looks like a path"),
        ({"media_type": "image/png", "filename": "a\\b.png"}, InvalidRequest, "looks like a path"),
        ({"media_type": "image/png", "filename": ".."}, InvalidRequest, "looks like a path"),
        ({"media_type": "image/png", "filename": "a\nb.png"}, InvalidRequest, "control"),
    ],
)
async def test_a_refused_file_stores_nothing(
    vault_factory: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    vault = await vault_factory()
    with pytest.raises(error, match=message):
        await vault.store_file(PNG, user_id="local", **kwargs)
    assert await stored_rows(vault) == []
    assert await object_keys(vault) == []


async def test_a_file_over_the_size_limit_is_refused_and_nothing_stored(vault_factory: Any) -> None:
    vault = await vault_factory(settings_overrides={"max_file_bytes": 100})
    with pytest.raises(PayloadTooLarge, match="limit is 100 bytes"):
        await vault.store_file(PNG, media_type="image/png", user_id="local")
    assert await stored_rows(vault) == []
    assert await object_keys(vault) == []


async def test_media_type_parameters_and_case_are_normalized(vault_factory: Any) -> None:
    vault = await vault_factory()
    record = await vault.store_file(b"hello", media_type="Text/Plain; charset=utf-8", user_id="local")
    assert record.media_type == "text/plain"


async def test_a_record_whose_object_vanished_says_so(vault_factory: Any) -> None:
    vault = await vault_factory()
    record = await vault.store_file(PNG, media_type="image/png", user_id="local")
    await vault.blobs.delete(record.sha256)
    with pytest.raises(BlobNotFound, match=record.sha256):
        await vault.read_file(record.id, user_id="local")
