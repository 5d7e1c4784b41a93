"""`GET /files/{id}` over HTTP: access like the owning record, exact headers, ranges, HEAD,
conditional requests; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.server import create_app
from genvault.server.routes.files import RangeNotSatisfiable, parse_range
from genvault.store.keys import create_key

DATA = bytes(range(256)) * 10  # 2560 bytes


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    vault = await vault_factory(settings_overrides={"auth": "api_key"})
    keys = {}
    for name in ("alice", "bob"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    await vault.create_chat("shared", user_id="alice")
    await vault.update_chat("shared", user_id="alice", visibility="link")
    files = {
        "private": await vault.store_file(DATA, media_type="image/png", user_id="alice", filename="día 1.png"),
        "shared": await vault.store_file(DATA, media_type="image/png", user_id="alice", chat_id="shared"),
    }
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "keys": keys, "files": files, "vault": vault}


def as_(world: dict[str, Any], who: str, **extra: str) -> dict[str, str]:
    auth = {} if who == "anonymous" else {"Authorization": f"Bearer {world['keys'][who]}"}
    return {**auth, **extra}


async def test_the_owner_gets_the_bytes_with_permanent_headers(world: dict[str, Any]) -> None:
    record = world["files"]["private"]
    response = await world["http"].get(record.url, headers=as_(world, "alice"))
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["content-disposition"] == "inline; filename*=UTF-8''d%C3%ADa%201.png"


@pytest.mark.parametrize(
    ("who", "private", "shared"), [("alice", 200, 200), ("bob", 404, 200), ("anonymous", 404, 200)]
)
async def test_others_see_a_file_only_when_its_chat_is_shared(
    world: dict[str, Any], who: str, private: int, shared: int
) -> None:
    for which, status in (("private", private), ("shared", shared)):
        response = await world["http"].get(world["files"][which].url, headers=as_(world, who))
        assert response.status_code == status, (which, response.text)
        if status == 404:
            assert response.json()["error"]["code"] == "not_found"
            assert DATA not in response.content


@pytest.mark.parametrize("path", ["/files/nope", "/files/..%2F..%2Fetc%2Fpasswd", "/files/file_" + "0" * 26])
async def test_unknown_or_malformed_ids_are_404(world: dict[str, Any], path: str) -> None:
    response = await world["http"].get(path, headers=as_(world, "alice"))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-9", 0, 10), ("bytes=100-", 100, 2560), ("bytes=-16", 2544, 2560), ("bytes=2550-99999", 2550, 2560)],
)
async def test_a_range_request_returns_exactly_those_bytes(
    world: dict[str, Any], header: str, start: int, end: int
) -> None:
    url = world["files"]["private"].url
    response = await world["http"].get(url, headers=as_(world, "alice", Range=header))
    assert response.status_code == 206
    assert response.content == DATA[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start)


async def test_an_unsatisfiable_range_is_416_with_the_size(world: dict[str, Any]) -> None:
    url = world["files"]["private"].url
    response = await world["http"].get(url, headers=as_(world, "alice", Range="bytes=5000-"))
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_if_range_with_another_etag_sends_the_whole_file(world: dict[str, Any]) -> None:
    url = world["files"]["private"].url
    response = await world["http"].get(url, headers=as_(world, "alice", Range="bytes=0-1", **{"If-Range": '"old"'}))
    assert response.status_code == 200
    assert response.content == DATA


async def test_head_gives_the_headers_without_the_body(world: dict[str, Any]) -> None:
    url = world["files"]["private"].url
    response = await world["http"].head(url, headers=as_(world, "alice"))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'


async def test_a_matching_if_none_match_is_304(world: dict[str, Any]) -> None:
    url = world["files"]["private"].url
    etag = (await world["http"].head(url, headers=as_(world, "alice"))).headers["etag"]
    response = await world["http"].get(url, headers=as_(world, "alice", **{"If-None-Match": etag}))
    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("bytes=0-0", (0, 1)), ("bytes=0-1,4-5", None), ("items=0-1", None), ("bytes=5-2", None)],
)
def test_parse_range_serves_one_range_and_ignores_what_it_does_not_serve(
    header: str | None, expected: tuple[int, int] | None
) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=-0"])
def test_parse_range_refuses_ranges_outside_the_file(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 10)
