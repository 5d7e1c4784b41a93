"""Every route × every kind of caller, with API-key auth: anonymous, the owner, another user, and
another user viewing a chat shared by link. Strangers see 404 (nothing is revealed), the
anonymous 401 (except where a link share allows reading), shared chats are read-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.keys import create_key

USER_MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"auth": "api_key"})
    keys = {}
    for name in ("alice", "bob"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    for chat_id in ("private", "shared"):
        turn = await vault.chat(chat_id, message=USER_MESSAGE, user_id="alice")
        await vault.wait(turn.generation.id, user_id="alice")
    await vault.update_chat("shared", user_id="alice", visibility="link")
    text_gen = await vault.generate("alice's prompt", user_id="alice")
    await vault.wait(text_gen.id, user_id="alice")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "keys": keys, "gen": text_gen.id, "vault": vault}


def headers(world: dict[str, Any], who: str) -> dict[str, str]:
    return {} if who == "anonymous" else {"Authorization": f"Bearer {world['keys'][who]}"}


# (method, path, json body) → expected status for (anonymous, owner alice, stranger bob), on the
# private chat; and on the link-shared chat for bob (the link viewer) where it differs.
READS = [
    ("GET", "/api/chats/{chat}", None, (404, 200, 404), 200),
    ("GET", "/api/chats/{chat}/messages", None, (404, 200, 404), 200),
    ("GET", "/api/chat/{chat}/stream", None, (404, 204, 404), 204),
]
WRITES = [
    ("POST", "/api/chat/{chat}/cancel", None, (401, 409, 404), 404),
    ("PATCH", "/api/chats/{chat}", {"title": "renamed"}, (401, 200, 404), 404),
    ("DELETE", "/api/chats/{chat}/messages/u1", None, (401, 204, 404), 404),
    ("DELETE", "/api/chats/{chat}", None, (401, 204, 404), 404),
]
GENERATIONS = [
    ("GET", "/api/generations/{gen}", None, (401, 200, 404)),
    ("GET", "/api/generations/{gen}/stream", None, (401, 200, 404)),
    ("POST", "/api/generations/{gen}/cancel", None, (401, 409, 404)),
]
PRINCIPALS = ("anonymous", "alice", "bob")


async def call(world: dict[str, Any], who: str, method: str, path: str, body: Any) -> httpx.Response:
    return await world["http"].request(method, path, json=body, headers=headers(world, who))


@pytest.mark.parametrize(("method", "path", "body", "expected", "link_viewer"), READS + WRITES)
async def test_chat_routes_answer_each_caller_as_the_matrix_says(
    world: dict[str, Any], method: str, path: str, body: Any, expected: tuple[int, int, int], link_viewer: int
) -> None:
    # Strangers first: they must change nothing the owner then sees.
    for who, status in sorted(zip(PRINCIPALS, expected, strict=True), key=lambda p: p[0] == "alice"):
        response = await call(world, who, method, path.format(chat="private"), body)
        assert response.status_code == status, (who, response.text)
    response = await call(world, "bob", method, path.format(chat="shared"), body)
    assert response.status_code == link_viewer, response.text
    anonymous_on_shared = await call(world, "anonymous", method, path.format(chat="shared"), body)
    assert anonymous_on_shared.status_code == (link_viewer if method == "GET" else 401)


@pytest.mark.parametrize(("method", "path", "body", "expected"), GENERATIONS)
async def test_generation_routes_answer_each_caller_as_the_matrix_says(
    world: dict[str, Any], method: str, path: str, body: Any, expected: tuple[int, int, int]
) -> None:
    for who, status in zip(PRINCIPALS, expected, strict=True):
        response = await call(world, who, method, path.format(gen=world["gen"]), body)
        assert response.status_code == status, (who, response.text)


async def test_lists_and_usage_show_only_the_callers_own_records(world: dict[str, Any]) -> None:
    for path in ("/api/chats", "/api/generations", "/api/usage", "/api/generate", "/api/chat"):
        method = "POST" if path in ("/api/generate", "/api/chat") else "GET"
        assert (await call(world, "anonymous", method, path, {})).status_code == 401
    assert [c["id"] for c in (await call(world, "bob", "GET", "/api/chats", None)).json()["items"]] == []
    assert (await call(world, "bob", "GET", "/api/generations", None)).json()["items"] == []
    assert (await call(world, "bob", "GET", "/api/usage", None)).json() == []
    alice_chats = (await call(world, "alice", "GET", "/api/chats", None)).json()["items"]
    assert sorted(c["id"] for c in alice_chats) == ["private", "shared"]
    assert len((await call(world, "alice", "GET", "/api/generations", None)).json()["items"]) == 3


async def test_a_stranger_cannot_write_into_someone_elses_chat_through_post_chat(world: dict[str, Any]) -> None:
    body = {"id": "private", "messages": [{**USER_MESSAGE, "id": "evil"}], "trigger": "submit-message"}
    response = await call(world, "bob", "POST", "/api/chat", body)
    assert response.status_code == 409
    messages = (await call(world, "alice", "GET", "/api/chats/private", None)).json()["messages"]
    assert "evil" not in [m["id"] for m in messages]


async def test_bad_and_revoked_keys_are_401(world: dict[str, Any]) -> None:
    http = world["http"]
    assert (await http.get("/api/chats", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await http.get("/api/chats", headers={"Authorization": "Basic abc"})).status_code == 401
    from genvault.store.keys import list_keys, revoke_key

    async with world["vault"].store.write() as conn:
        key_id = (await list_keys(conn, "bob"))[0]["id"]
        await revoke_key(conn, key_id)
    response = await call(world, "bob", "GET", "/api/chats", None)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
