"""Files in chats: `data:` URL uploads and files a model streams are kept in the blob store and
persisted as URL-bearing parts (never base64 in a row); the provider still gets the bytes; refused
uploads (path-like names, disallowed types, oversized) store nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from genvault.messages.sse import parse_sse
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.schema import blobs, generations, messages, parts

PNG = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"seed").digest() * (2 * 1024 * 1024 // 32)  # ~2 MB


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def with_file(message_id: str, url: str, media_type: str = "image/png", **extra: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "role": "user",
        "parts": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "file", "mediaType": media_type, "url": url, **extra},
        ],
    }


@pytest.fixture
def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
async def client(vault_factory: Any, provider: tm.TestProvider) -> AsyncIterator[httpx.AsyncClient]:
    vault = await vault_factory(
        providers={"offline": provider}, settings_overrides={"auth": "header", "max_file_bytes": 3 * 1024 * 1024}
    )
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://genvault.test", headers={"X-Forwarded-User": "alice"}
    ) as http:
        http.vault = vault  # type: ignore[attr-defined]
        yield http


async def everything_stored(vault: Any) -> dict[str, Any]:
    async with vault.store.read() as conn:
        return {
            "blobs": (await conn.execute(select(blobs))).all(),
            "messages": (await conn.execute(select(messages))).all(),
            "generations": (await conn.execute(select(generations))).all(),
            "objects": [k async for k in vault.blobs.iter_keys()],
        }


async def test_a_2mb_data_url_image_is_stored_as_a_url_part_and_the_model_still_gets_the_bytes(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    vault: Any = client.vault  # type: ignore[attr-defined]
    message = with_file("u1", data_url(PNG), filename="cat.png")
    response = await client.post("/api/chat", json={"id": "c1", "messages": [message], "trigger": "submit-message"})
    assert response.status_code == 200, response.text
    assert parse_sse(response.content)[-1] == "[DONE]"

    # The stored message holds the permanent URL, and the URL serves the original bytes.
    stored = (await client.get("/api/chats/c1")).json()["messages"]
    file_part = stored[0]["parts"][1]
    assert file_part["url"].startswith("/files/file_")
    assert file_part["mediaType"] == "image/png"
    assert file_part["filename"] == "cat.png"
    served = await client.get(file_part["url"])
    assert served.status_code == 200
    assert served.content == PNG

    # No row anywhere holds the base64 (or any data: URL).
    encoded = base64.b64encode(PNG).decode()[:64]
    async with vault.store.read() as conn:
        part_rows = (await conn.execute(select(parts))).mappings().all()
        gen_rows = (await conn.execute(select(generations))).mappings().all()
        [blob] = (await conn.execute(select(blobs))).mappings().all()
    for row in [*part_rows, *gen_rows]:
        text = str(dict(row))
        assert encoded not in text
        assert "data:image" not in text
    assert (blob["chat_id"], blob["message_id"], blob["part_position"], blob["user_id"]) == ("c1", "u1", 1, "alice")
    assert blob["size"] == len(PNG)

    # Converting the chat for the provider yields the bytes; the provider did receive them.
    [converted] = [m for m in await vault.model_messages("c1", user_id="alice") if m["role"] == "user"]
    assert converted["content"][1]["data"] == PNG
    sent = provider.calls[-1].messages[0]["content"]
    assert sent[1]["type"] == "file"
    assert sent[1]["data"] == PNG


async def test_the_next_turn_still_sends_the_earlier_upload_to_the_model(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    first = with_file("u1", data_url(PNG[:5000]))
    await client.post("/api/chat", json={"id": "c1", "messages": [first], "trigger": "submit-message"})
    await client.post(
        "/api/chat",
        json={
            "id": "c1",
            "messages": [{"id": "u2", "role": "user", "parts": [{"type": "text", "text": "And now?"}]}],
            "trigger": "submit-message",
        },
    )
    history = provider.calls[-1].messages
    assert history[0]["content"][1]["data"] == PNG[:5000]
    assert history[-1]["content"][0]["text"] == "And now?"


@pytest.mark.parametrize(
    ("part", "status", "message"),
    [
        ({"filename": "../../etc/passwd"}, 400, "looks like a path"),
        ({"filename": "..\\..\\boot.ini"}, 400, "looks like a path"),
        ({"mediaType": "application/x-sh", "url": data_url(b"#!/bin/sh", "application/x-sh")}, 415, "not accepted"),
        ({"url": data_url(b"x" * (3 * 1024 * 1024 + 10))}, 413, "limit"),
        ({"url": "data:image/png;base64,@@@not-base64@@@"}, 400, "base64"),
    ],
)
async def test_a_refused_upload_answers_4xx_and_stores_nothing(
    client: httpx.AsyncClient, part: dict[str, Any], status: int, message: str
) -> None:
    vault: Any = client.vault  # type: ignore[attr-defined]
    file_part = {"type": "file", "mediaType": "image/png", "url": data_url(PNG[:100]), **part}
    body = {
        "id": "c1",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}, file_part]}],
        "trigger": "submit-message",
    }
    response = await client.post("/api/chat", json=body)
    assert response.status_code == status, response.text
    assert message in response.text
    assert await everything_stored(vault) == {"blobs": [], "messages": [], "generations": [], "objects": []}


async def test_a_message_may_not_cite_another_users_file(client: httpx.AsyncClient) -> None:
    vault: Any = client.vault  # type: ignore[attr-defined]
    secret = await vault.store_file(b"bob's secret", media_type="text/plain", user_id="bob")
    body = {"id": "c1", "messages": [with_file("u1", secret.url, "text/plain")], "trigger": "submit-message"}
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 404
    assert (await everything_stored(vault))["messages"] == []


async def test_uploading_into_someone_elses_chat_stores_nothing(client: httpx.AsyncClient) -> None:
    vault: Any = client.vault  # type: ignore[attr-defined]
    await vault.ensure_user("bob")
    await vault.create_chat("bobs", user_id="bob")
    body = {"id": "bobs", "messages": [with_file("u1", data_url(b"zz"))], "trigger": "submit-message"}
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 409
    assert (await everything_stored(vault))["objects"] == []


async def test_a_file_the_model_streams_is_kept_as_a_url_part(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    vault: Any = client.vault  # type: ignore[attr-defined]
    drawn = b"\x89PNG\r\n\x1a\nmodel-made"
    provider.enqueue(tm.text("Here you go:"), tm.file("image/png", drawn))
    body = {
        "id": "c1",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "draw"}]}],
        "trigger": "submit-message",
    }
    response = await client.post("/api/chat", json=body)
    streamed = [e for e in parse_sse(response.content)[:-1] if e.get("type") == "file"]
    assert len(streamed) == 1
    assert streamed[0]["url"].startswith("/files/file_")  # live followers never see base64 either
    reply = (await client.get("/api/chats/c1")).json()["messages"][-1]
    [file_part] = [p for p in reply["parts"] if p["type"] == "file"]
    assert file_part == streamed[0] | {"type": "file"}
    assert (await client.get(file_part["url"])).content == drawn
    [row] = [r._asdict() for r in (await everything_stored(vault))["blobs"]]
    assert row["generation_id"] is not None
    assert row["message_id"] == reply["id"]
    assert reply["parts"][row["part_position"]] == file_part


async def test_a_retried_upload_with_the_same_idempotency_key_is_the_same_turn_and_file(
    client: httpx.AsyncClient,
) -> None:
    vault: Any = client.vault  # type: ignore[attr-defined]
    body = {"id": "c1", "messages": [with_file("u1", data_url(PNG[:3000]))], "trigger": "submit-message"}
    first = await client.post("/api/chat", json=body, headers={"Idempotency-Key": "retry-1"})
    again = await client.post("/api/chat", json=body, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    stored = await everything_stored(vault)
    assert len(stored["generations"]) == 1
    assert len(stored["blobs"]) == 1
    assert len(stored["objects"]) == 1
