"""`GET /api/users/{id}/export` and `DELETE /api/users/{id}` under API-key auth: the user
themself or an admin may; another user gets 404 (as for an account that does not exist), the
anonymous 401."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.audit import list_events, user_hash
from genvault.store.keys import create_key
from live_server import serve
from traces import rows_mentioning

USER_MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides={"auth": "api_key"}
    )
    keys = {}
    for name in ("alice", "bob", "root"):
        await vault.create_user(name, is_admin=name == "root")
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    for user in ("alice", "bob"):
        turn = await vault.chat(f"{user}-chat", message=USER_MESSAGE, user_id=user)
        await vault.wait(turn.generation.id, user_id=user)
        await vault.store_file(f"{user} file".encode(), media_type="text/plain", user_id=user)
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "keys": keys, "vault": vault}


def auth(world: dict[str, Any], who: str) -> dict[str, str]:
    return {} if who == "anonymous" else {"Authorization": f"Bearer {world['keys'][who]}"}


async def archive_of(world: dict[str, Any], user: str) -> bytes:
    return b"".join([line async for line in world["vault"].export(user_id=user)])


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("bob", 404), ("alice", 200), ("root", 200)])
async def test_export_answers_each_caller_as_the_matrix_says(world: dict[str, Any], who: str, status: int) -> None:
    response = await world["http"].get("/api/users/alice/export", headers=auth(world, who))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert "genvault-alice.jsonl" in response.headers["content-disposition"]
        assert response.content == await archive_of(world, "alice")
        lines = [json.loads(line) for line in response.content.splitlines()]
        assert lines[0]["user_id"] == "alice"
        assert lines[-1]["end"]["objects"] == 1
    else:
        assert response.json()["error"]["code"] == {401: "unauthorized", 404: "not_found"}[status]


async def test_an_admin_exporting_a_user_that_does_not_exist_gets_404(world: dict[str, Any]) -> None:
    response = await world["http"].get("/api/users/ghost/export", headers=auth(world, "root"))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no user 'ghost'"


async def test_strangers_and_the_anonymous_cannot_erase_and_change_nothing(world: dict[str, Any]) -> None:
    before = await archive_of(world, "alice")
    assert (await world["http"].delete("/api/users/alice")).status_code == 401
    assert (await world["http"].delete("/api/users/alice", headers=auth(world, "bob"))).status_code == 404
    assert await archive_of(world, "alice") == before


async def test_a_user_erases_themself_and_gets_a_receipt_then_their_key_is_gone(world: dict[str, Any]) -> None:
    bob_before = await archive_of(world, "bob")
    response = await world["http"].delete("/api/users/alice", headers=auth(world, "alice"))
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["user_id"] == "alice"
    assert receipt["audit_id"].startswith("aud_")
    assert receipt["counts"]["chats"] == 1
    assert receipt["counts"]["api_keys"] == 1
    assert receipt["counts"]["blob_objects"] == 1
    # No row anywhere holds her id, the audit event included: it names her, and her as the one
    # who asked, by pseudonym.
    assert await rows_mentioning(world["vault"].store, "alice") == {}
    async with world["vault"].store.read() as conn:
        (event,) = await list_events(conn, subject_user_id="alice")
    assert event["id"] == receipt["audit_id"]
    assert event["actor_user_id"] is None
    assert event["actor_user_hash"] == event["subject_user_hash"] == user_hash("alice")
    # Her key went with her; an admin may repeat the erasure safely.
    again = await world["http"].delete("/api/users/alice", headers=auth(world, "alice"))
    assert again.status_code == 401
    repeat = await world["http"].delete("/api/users/alice", headers=auth(world, "root"))
    assert repeat.status_code == 200
    assert set(repeat.json()["counts"].values()) == {0}
    assert await archive_of(world, "bob") == bob_before
    assert await rows_mentioning(world["vault"].store, "alice") == {}
    async with world["vault"].store.read() as conn:
        latest = (await list_events(conn, subject_user_id="alice"))[0]
    assert latest["id"] == repeat.json()["audit_id"]
    assert latest["actor_user_id"] == "root"


async def test_the_export_streams_over_a_real_server_line_by_line(world: dict[str, Any]) -> None:
    vault = world["vault"]
    for i in range(30):  # enough lines that the archive arrives in several chunks
        await vault.import_chat(f"extra-{i}", [{**USER_MESSAGE, "id": f"x{i}"}], user_id="alice")
    expected = await archive_of(world, "alice")
    async with (
        serve(create_app(vault=vault)) as base,
        httpx.AsyncClient(base_url=base) as http,
        http.stream("GET", "/api/users/alice/export", headers=auth(world, "alice")) as response,
    ):
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        lines = [line async for line in response.aiter_lines()]
    assert "\n".join(lines) + "\n" == expected.decode()
