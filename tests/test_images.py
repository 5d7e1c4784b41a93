"""Image generation: pending record → offline test image model → images in the blob store,
linked to the record → complete with image URLs, usage and cost; over the library, HTTP, the
page, and across a server restart."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from genvault.errors import InvalidRequest
from genvault.providers.images import draw
from genvault.server import create_app
from genvault.store.schema import blobs, generations
from live_server import serve


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, after checking the signature and every chunk CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        chunks.append((kind, body))
        offset += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert len(zlib.decompress(chunks[1][1])) == height * (1 + 3 * width)
    return width, height


async def test_an_image_generation_stores_real_pngs_linked_to_its_record(vault_factory: Any) -> None:
    vault = await vault_factory()
    pending = await vault.generate_image("a red fox in the snow", size="64x32", n=2)
    assert pending.status == "pending"
    assert pending.kind == "image"
    assert pending.url == f"/image/{pending.id}"
    record = await vault.wait(pending.id)
    assert record.status == "complete", record.error
    assert record.model == "offline/test-image"
    assert record.usage.input_tokens == 6
    files = await vault.generation_files(record.id)
    assert record.image_urls == [f.url for f in files]
    assert len(files) == 2
    # Positions of the file parts in the record's message (after its step-start part).
    parts = record.result_message["parts"]
    assert [parts[f.part_position]["url"] for f in files] == record.image_urls
    for index, file in enumerate(files):
        data = await vault.read_file(file.id, user_id="local")
        assert png_size(data) == (64, 32)
        assert data == draw("a red fox in the snow", index, 64, 32)
        assert (file.media_type, file.generation_id, file.size) == ("image/png", record.id, len(data))
    assert files[0].sha256 != files[1].sha256
    # The record keeps URLs, never the image bytes.
    async with vault.store.read() as conn:
        row = (await conn.execute(generations.select().where(generations.c.id == record.id))).mappings().one()
    assert "base64" not in str(row["result_message"])


async def test_the_same_prompt_draws_the_same_picture_and_stores_one_object(vault_factory: Any) -> None:
    vault = await vault_factory()
    first = await vault.wait((await vault.generate_image("lighthouse")).id)
    second = await vault.wait((await vault.generate_image("lighthouse")).id)
    other = await vault.wait((await vault.generate_image("lighthouse at night")).id)
    a, b, c = [(await vault.generation_files(r.id))[0] for r in (first, second, other)]
    assert a.id != b.id
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256
    assert len([k async for k in vault.blobs.iter_keys()]) == 2


async def test_a_priced_image_model_records_its_cost(vault_factory: Any) -> None:
    overrides = {"price_overrides": {"offline/test-image": {"input_mtok": "2", "output_mtok": "40"}}}
    vault = await vault_factory(settings_overrides=overrides)
    record = await vault.wait((await vault.generate_image("one two three four")).id)
    assert record.usage.input_tokens == 4
    assert record.cost_nano_usd == 4 * 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"size": "huge"}, "size must be"),
        ({"size": "4096x4096"}, "8 to 1024 pixels"),
        ({"n": 0}, "1 to 10"),
        ({"n": 11}, "1 to 10"),
        ({"model": "offline/test-model"}, "one image model"),
        ({"model": "nowhere/pic"}, "no image models"),
        ({"model": "openai/gpt-image-1"}, "OPENAI_API_KEY"),
    ],
)
async def test_a_bad_image_request_is_refused_before_anything_is_written(
    vault_factory: Any, kwargs: dict[str, Any], message: str
) -> None:
    vault = await vault_factory()
    args = {"prompt": "a cat", **kwargs}
    with pytest.raises(InvalidRequest, match=message):
        await vault.generate_image(args.pop("prompt"), **args)
    async with vault.store.read() as conn:
        assert (await conn.execute(generations.select())).all() == []
        assert (await conn.execute(blobs.select())).all() == []


# -- HTTP and the page -----------------------------------------------------------------------------


@pytest.fixture
async def http(vault_factory: Any) -> Any:
    vault = await vault_factory(settings_overrides={"auth": "header"})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as client:
        client.vault = vault  # type: ignore[attr-defined]
        yield client


ALICE = {"X-Forwarded-User": "alice"}
BOB = {"X-Forwarded-User": "bob"}


async def test_post_json_answers_201_and_the_record_then_lists_image_urls(http: Any) -> None:
    response = await http.post("/api/images", json={"prompt": "a blue whale", "size": "32x32", "n": 1}, headers=ALICE)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"/image/{body['id']}"
    assert body["status"] == "pending"
    assert response.headers["location"] == f"/api/generations/{body['id']}"
    await http.vault.wait(body["id"], user_id="alice")
    record = (await http.get(f"/api/generations/{body['id']}", headers=ALICE)).json()
    assert record["status"] == "complete"
    assert record["kind"] == "image"
    assert len(record["image_urls"]) == 1
    image = await http.get(record["image_urls"][0], headers=ALICE)
    assert image.status_code == 200
    assert png_size(image.content) == (32, 32)
    assert (await http.get(record["image_urls"][0], headers=BOB)).status_code == 404


async def test_a_form_post_redirects_to_the_image_page_which_shows_the_images(http: Any) -> None:
    response = await http.post("/api/images", data={"prompt": "a <b>bold</b> owl", "n": "2"}, headers=ALICE)
    assert response.status_code == 303
    page_url = response.headers["location"]
    assert page_url.startswith("/image/gen_")
    await http.vault.wait(page_url.rsplit("/", 1)[1], user_id="alice")
    page = await http.get(page_url, headers=ALICE)
    assert page.status_code == 200
    files = await http.vault.generation_files(page_url.rsplit("/", 1)[1], user_id="alice")
    for file in files:
        assert f'<img src="{file.url}"' in page.text
    assert "a &lt;b&gt;bold&lt;/b&gt; owl" in page.text
    assert "offline/test-image" in page.text
    assert (await http.get(page_url, headers=BOB)).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prompt": "x", "n": 99}, 400, "1 to 10"),
        ({"prompt": "x", "size": "../../etc"}, 400, "size must be"),
        ({"prompt": "x", "colour": "red"}, 400, "colour"),
        ({}, 400, "prompt"),
    ],
)
async def test_bad_http_requests_are_4xx_with_a_sentence(
    http: Any, body: dict[str, Any], status: int, message: str
) -> None:
    response = await http.post("/api/images", json=body, headers=ALICE)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


async def test_anonymous_callers_cannot_make_images(http: Any) -> None:
    assert (await http.post("/api/images", json={"prompt": "x"})).status_code == 401


# -- acceptance: a permanent URL survives a restart ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("blob_backend", ["local", "s3"])
async def test_an_image_is_reachable_at_its_url_after_a_server_restart(
    request: pytest.FixtureRequest, settings_factory: Any, database: tuple[str, str | None], blob_backend: str
) -> None:
    extra = request.getfixturevalue("s3_settings") if blob_backend == "s3" else {}
    settings = settings_factory(auth="header", database_schema=database[1], **extra)

    # Generous timeouts: a loaded machine (every test worker busy) once took httpx's default 5 s.
    async with serve(create_app(settings)) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        created = await client.post("/api/images", json={"prompt": "a harbour at noon", "size": "40x20"}, headers=ALICE)
        assert created.status_code == 201, created.text
        record_url = f"/api/generations/{created.json()['id']}"
        async with asyncio.timeout(60):
            while True:
                record = (await client.get(record_url, headers=ALICE)).json()
                if record["status"] != "pending" and record["status"] != "streaming":
                    break
                await asyncio.sleep(0.02)
        assert record["status"] == "complete", record
        [url] = record["image_urls"]

    expected = draw("a harbour at noon", 0, 40, 20)
    async with serve(create_app(settings)) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        response = await client.get(url, headers=ALICE)
        assert response.status_code == 200
        assert response.content == expected
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-length"] == str(len(expected))
        assert response.headers["etag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
        assert "immutable" in response.headers["cache-control"]

        partial = await client.get(url, headers={**ALICE, "Range": "bytes=8-23"})
        assert partial.status_code == 206
        assert partial.content == expected[8:24]
        assert partial.headers["content-range"] == f"bytes 8-23/{len(expected)}"

        assert (await client.get(url, headers=BOB)).status_code == 404
        assert (await client.get(url)).status_code == 404  # anonymous


def test_the_test_image_model_is_deterministic_and_prompt_sensitive(tmp_path: Path) -> None:
    assert draw("x", 0, 16, 16) == draw("x", 0, 16, 16)
    assert draw("x", 0, 16, 16) != draw("y", 0, 16, 16)
    assert draw("x", 0, 16, 16) != draw("x", 1, 16, 16)
    assert png_size(draw("x", 0, 17, 9)) == (17, 9)


async def test_a_retried_image_request_with_the_same_key_is_the_same_record(vault_factory: Any) -> None:
    vault = await vault_factory()
    first = await vault.generate_image("a kite", idempotency_key="img-1")
    again = await vault.generate_image("a kite", idempotency_key="img-1")
    assert again.id == first.id
    await vault.wait(first.id)
    assert len(await vault.generation_files(first.id)) == 1
    with pytest.raises(Exception, match="different request"):
        await vault.generate_image("a boat", idempotency_key="img-1")


async def test_a_model_file_of_a_refused_type_ends_the_record_in_error_and_stores_nothing(vault_factory: Any) -> None:
    from genvault.providers.images import GeneratedImage, ImageRequest, ImageResult

    class Executable:
        name = "evil"

        def check(self, request: ImageRequest) -> None:
            return None

        async def generate_images(self, request: ImageRequest) -> ImageResult:
            return ImageResult([GeneratedImage("application/x-msdownload", b"MZ")])

    vault = await vault_factory(image_providers={"evil": Executable()})
    record = await vault.wait((await vault.generate_image("x", model="evil/exe")).id)
    assert record.status == "error"
    assert "not accepted" in (record.error or "")
    assert record.image_urls == []
    assert [k async for k in vault.blobs.iter_keys()] == []
