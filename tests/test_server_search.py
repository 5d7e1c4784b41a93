"""`GET /api/search`, and `?q=` on `/api/chats` and `/api/generations`, under API-key auth:
owned results, admins' scopes, and malformed queries answered 400 with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.keys import create_key


def msg(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides={"auth": "api_key"}
    )
    headers = {}
    for name in ("alice", "bob", "root"):
        await vault.create_user(name, is_admin=name == "root")
        async with vault.store.write() as conn:
            headers[name] = {"Authorization": f"Bearer {(await create_key(conn, name, 'test'))[1]}"}
    for name in ("alice", "bob"):
        await vault.create_chat(f"{name}-chat", title=f"{name} plans the migration", user_id=name)
        await vault.append_messages(f"{name}-chat", [msg("m1", f"{name} says: the invoice 4711 is late")], user_id=name)
        record = await vault.generate(f"{name} asks for a limerick about invoices", user_id=name)
        await vault.wait(record.id, user_id=name)
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "headers": headers, "vault": vault}


async def get(world: dict[str, Any], who: str, path: str, **params: Any) -> httpx.Response:
    return await world["http"].get(path, params=params, headers=world["headers"].get(who, {}))


async def test_a_user_finds_their_own_messages_titles_and_generations(world: dict[str, Any]) -> None:
    response = await get(world, "alice", "/api/search", q="invoice*")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {(h["kind"], h["user_id"]) for h in body["items"]} == {("message", "alice"), ("generation", "alice")}
    message = next(h for h in body["items"] if h["kind"] == "message")
    assert message["url"] == "/chat/alice-chat?message=m1"
    assert message["snippet"] == "alice says: the <mark>invoice</mark> 4711 is late"
    assert body["next_cursor"] is None
    titles = (await get(world, "alice", "/api/search", q="migration", kind="chat")).json()["items"]
    assert [h["chat_id"] for h in titles] == ["alice-chat"]


@pytest.mark.parametrize(
    ("who", "user", "status", "owners"),
    [
        ("alice", None, 200, {"alice"}),
        ("alice", "alice", 200, {"alice"}),
        ("alice", "bob", 403, None),
        ("alice", "*", 403, None),
        ("root", "bob", 200, {"bob"}),
        ("root", "*", 200, {"alice", "bob"}),
        ("anonymous", None, 401, None),
    ],
)
async def test_who_may_search_whose_records(
    world: dict[str, Any], who: str, user: str | None, status: int, owners: set[str] | None
) -> None:
    params = {"q": "4711"} | ({"user": user} if user else {})
    response = await get(world, who, "/api/search", **params)
    assert response.status_code == status, response.text
    if owners is not None:
        assert {h["user_id"] for h in response.json()["items"]} == owners


@pytest.mark.parametrize(
    ("q", "says"),
    [
        ('"open', "unclosed quote"),
        ("-only", "only leaves words out"),
        ("a*", "at least 2"),
        ("***", "at the end"),
        ("(((", "no letters or digits"),
    ],
)
async def test_a_malformed_query_is_a_400_that_says_what_is_wrong(world: dict[str, Any], q: str, says: str) -> None:
    for path in ("/api/search", "/api/chats", "/api/generations"):
        response = await get(world, "alice", path, q=q)
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert says in error["message"]


async def test_a_bad_cursor_or_filter_is_a_4xx_not_a_server_error(world: dict[str, Any]) -> None:
    assert (await get(world, "alice", "/api/search", q="invoice", cursor="nope")).status_code == 400
    assert (await get(world, "alice", "/api/search", q="invoice", kind="file")).status_code == 422
    assert (await get(world, "alice", "/api/search", q="invoice", limit=0)).status_code == 422
    assert (await get(world, "alice", "/api/search")).status_code == 422


async def test_list_endpoints_filter_by_q_for_real(world: dict[str, Any]) -> None:
    chats = (await get(world, "alice", "/api/chats", q="4711")).json()["items"]
    assert [c["id"] for c in chats] == ["alice-chat"]
    assert (await get(world, "alice", "/api/chats", q="nothing")).json()["items"] == []
    everything = (await get(world, "alice", "/api/generations")).json()["items"]
    limericks = (await get(world, "alice", "/api/generations", q="limerick")).json()["items"]
    assert len(everything) == 1
    assert [g["id"] for g in limericks] == [everything[0]["id"]]
    assert (await get(world, "alice", "/api/generations", q="4711")).json()["items"] == []
    assert (await get(world, "bob", "/api/generations", q="limerick")).json()["items"][0]["user_id"] == "bob"


async def test_pages_of_results_follow_the_cursor(world: dict[str, Any]) -> None:
    vault = world["vault"]
    await vault.append_messages("alice-chat", [msg(f"p{i}", f"pangolin number {i}") for i in range(7)], user_id="alice")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"q": "pangolin", "limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (await get(world, "alice", "/api/search", **params)).json()
        seen += [h["message_id"] for h in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"p{i}" for i in range(7))
