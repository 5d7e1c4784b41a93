"""Feedback: thumbs up/down with a comment on a generation or an assistant message, by its owner,
through the library, HTTP and the CLI; counted in usage, exported, erased, gone with its target."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from genvault.cli import app as cli_app
from genvault.errors import InvalidRequest, NotFound
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.keys import create_key
from genvault.vault import Vault


def user_message(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def make_vault(vault_factory: Any, **overrides: Any) -> Vault:
    vault: Vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides=overrides
    )
    return vault


async def chat_reply(vault: Vault, chat_id: str, user_id: str = "local") -> str:
    turn = await vault.chat(chat_id, message=user_message(f"u-{chat_id}", "hello"), user_id=user_id)
    await vault.wait(turn.generation.id, user_id=user_id)
    return turn.message_id


async def test_a_rating_of_a_generation_is_set_replaced_read_and_cleared(vault_factory: Any) -> None:
    vault = await make_vault(vault_factory)
    record = await vault.wait((await vault.generate("rate me")).id)
    first = await vault.feedback.rate_generation(record.id, 1, "  spot on  ", user_id="local")
    assert (first.rating, first.comment, first.target, first.generation_id) == (1, "spot on", "generation", record.id)
    again = await vault.feedback.rate_generation(record.id, "down", None, user_id="local")
    assert (again.id, again.rating, again.comment) == (first.id, -1, None)  # replaced, one row
    assert again.created_at == first.created_at
    assert await vault.feedback.generation_rating(record.id, user_id="local") == again
    assert await vault.feedback.clear_generation(record.id, user_id="local") is True
    assert await vault.feedback.clear_generation(record.id, user_id="local") is False
    assert await vault.feedback.generation_rating(record.id, user_id="local") is None


@pytest.mark.parametrize(
    ("rating", "comment"),
    [(0, None), (2, None), (True, None), ("sideways", None), (None, None), (1, "x" * 2001), (1, "nul\x00"), (1, 5)],
)
async def test_a_bad_rating_or_comment_is_refused_and_nothing_is_written(
    vault_factory: Any, rating: Any, comment: Any
) -> None:
    vault = await make_vault(vault_factory)
    record = await vault.wait((await vault.generate("rate me")).id)
    with pytest.raises(InvalidRequest):
        await vault.feedback.rate_generation(record.id, rating, comment, user_id="local")
    assert await vault.feedback.generation_rating(record.id, user_id="local") is None


async def test_only_the_owner_rates_and_only_assistant_messages(vault_factory: Any) -> None:
    vault = await make_vault(vault_factory)
    await vault.create_user("alice")
    await vault.create_user("bob")
    record = await vault.wait((await vault.generate("alice's", user_id="alice")).id, user_id="alice")
    reply = await chat_reply(vault, "shared", "alice")
    await vault.update_chat("shared", user_id="alice", visibility="public")
    with pytest.raises(NotFound):
        await vault.feedback.rate_generation(record.id, 1, user_id="bob")
    with pytest.raises(NotFound):  # a reader of a shared chat: read-only, as every write there
        await vault.feedback.rate_message("shared", reply, 1, user_id="bob")
    with pytest.raises(NotFound):
        await vault.feedback.rate_message("shared", "no-such-message", 1, user_id="alice")
    with pytest.raises(InvalidRequest, match="assistant"):
        await vault.feedback.rate_message("shared", "u-shared", 1, user_id="alice")
    rated = await vault.feedback.rate_message("shared", reply, -1, "too long", user_id="alice")
    assert (rated.target, rated.chat_id, rated.message_id, rated.rating) == ("message", "shared", reply, -1)
    assert await vault.feedback.chat_ratings("shared", user_id="alice") == [rated]
    with pytest.raises(NotFound):
        await vault.feedback.chat_ratings("shared", user_id="bob")


async def test_usage_counts_thumbs_of_generations_and_of_the_replies_they_wrote(vault_factory: Any) -> None:
    vault = await make_vault(vault_factory)
    texts = [await vault.wait((await vault.generate(f"prompt {n}")).id) for n in range(3)]
    reply = await chat_reply(vault, "c1")
    await vault.feedback.rate_generation(texts[0].id, 1, user_id="local")
    await vault.feedback.rate_generation(texts[1].id, 1, user_id="local")
    await vault.feedback.rate_generation(texts[2].id, -1, user_id="local")
    await vault.feedback.rate_message("c1", reply, -1, user_id="local")
    [row] = await vault.usage(group_by="user")
    assert (row.generations, row.thumbs_up, row.thumbs_down) == (4, 2, 2)  # a join multiplies nothing
    await vault.delete_chat("c1")  # its reply's rating goes with it
    [row] = await vault.usage(group_by="user")
    assert (row.generations, row.thumbs_up, row.thumbs_down) == (3, 2, 1)


async def test_feedback_is_exported_erased_and_restored_with_the_user(vault_factory: Any) -> None:
    vault = await make_vault(vault_factory)
    await vault.create_user("dora")
    record = await vault.wait((await vault.generate("x", user_id="dora")).id, user_id="dora")
    await vault.feedback.rate_generation(record.id, 1, "kept", user_id="dora")
    raw = [line async for line in vault.export(user_id="dora")]
    lines = [json.loads(line) for line in raw]
    rows = [line["row"] for line in lines if line.get("table") == "feedback"]
    assert [(r["generation_id"], r["rating"], r["comment"]) for r in rows] == [(record.id, 1, "kept")]
    receipt = await vault.erase_user("dora")
    assert receipt.counts["feedback"] == 1
    assert await vault.user_exists("dora") is False

    await vault.import_archive(raw)
    restored = await vault.feedback.generation_rating(record.id, user_id="dora")
    assert restored is not None
    assert (restored.rating, restored.comment) == (1, "kept")


# -- HTTP -----------------------------------------------------------------------------------------


@pytest.fixture
async def api(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    vault = await make_vault(vault_factory, auth="api_key")
    keys = {}
    for name in ("alice", "bob"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    record = await vault.wait((await vault.generate("hi", user_id="alice")).id, user_id="alice")
    reply = await chat_reply(vault, "chat1", "alice")
    await vault.update_chat("chat1", user_id="alice", visibility="link")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "keys": keys, "vault": vault, "gen": record.id, "reply": reply}


def as_(api: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api['keys'][who]}"} if who != "anonymous" else {}


async def test_the_feedback_routes_set_show_and_clear_ratings(api: dict[str, Any]) -> None:
    http, alice, gen, reply = api["http"], as_(api, "alice"), api["gen"], api["reply"]
    put = await http.put(f"/api/generations/{gen}/feedback", json={"rating": 1, "comment": "good"}, headers=alice)
    assert put.status_code == 200, put.text
    assert (put.json()["rating"], put.json()["comment"]) == (1, "good")
    record = (await http.get(f"/api/generations/{gen}", headers=alice)).json()
    assert (record["feedback"]["rating"], record["feedback"]["comment"]) == (1, "good")
    assert (await http.delete(f"/api/generations/{gen}/feedback", headers=alice)).status_code == 204
    assert (await http.get(f"/api/generations/{gen}", headers=alice)).json()["feedback"] is None

    path = f"/api/chats/chat1/messages/{reply}/feedback"
    assert (await http.put(path, json={"rating": "down"}, headers=alice)).json()["rating"] == -1
    listed = (await http.get("/api/chats/chat1/feedback", headers=alice)).json()
    assert [(f["message_id"], f["rating"]) for f in listed] == [(reply, -1)]
    usage = (await http.get("/api/usage?group_by=user", headers=alice)).json()
    assert (usage[0]["thumbs_up"], usage[0]["thumbs_down"]) == (0, 1)
    assert (await http.delete(path, headers=alice)).status_code == 204
    assert (await http.get("/api/chats/chat1/feedback", headers=alice)).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"rating": 0},
        {"rating": "meh"},
        {"rating": True},
        {},
        {"rating": 1, "comment": "x" * 2001},
        {"rating": 1, "x": 1},
    ],
)
async def test_bad_feedback_over_http_is_a_4xx_and_changes_nothing(api: dict[str, Any], body: Any) -> None:
    http, alice = api["http"], as_(api, "alice")
    for path in (f"/api/generations/{api['gen']}/feedback", f"/api/chats/chat1/messages/{api['reply']}/feedback"):
        response = await http.put(path, json=body, headers=alice)
        assert response.status_code in (400, 422), response.text
    assert (await http.get(f"/api/generations/{api['gen']}", headers=alice)).json()["feedback"] is None
    assert (await http.get("/api/chats/chat1/feedback", headers=alice)).json() == []
    user_message_path = "/api/chats/chat1/messages/u-chat1/feedback"
    assert (await http.put(user_message_path, json={"rating": 1}, headers=alice)).status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/generations/{gen}/feedback"),
        ("DELETE", "/api/generations/{gen}/feedback"),
        ("PUT", "/api/chats/chat1/messages/{reply}/feedback"),
        ("DELETE", "/api/chats/chat1/messages/{reply}/feedback"),
        ("GET", "/api/chats/chat1/feedback"),
    ],
)
async def test_strangers_and_link_readers_get_404_and_the_anonymous_401(
    api: dict[str, Any], method: str, path: str
) -> None:
    http, url = api["http"], path.format(gen=api["gen"], reply=api["reply"])
    body = {"rating": 1} if method == "PUT" else None
    await api["vault"].feedback.rate_generation(api["gen"], -1, "alice's", user_id="alice")
    assert (await http.request(method, url, json=body, headers=as_(api, "bob"))).status_code == 404
    assert (await http.request(method, url, json=body)).status_code == 401
    kept = await api["vault"].feedback.generation_rating(api["gen"], user_id="alice")
    assert kept is not None
    assert (kept.rating, kept.comment) == (-1, "alice's")
    assert await api["vault"].feedback.chat_ratings("chat1", user_id="alice") == []


# -- CLI ------------------------------------------------------------------------------------------


def test_genvault_feedback_rates_shows_and_clears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    cli = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = cli.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    generated = json.loads(run("generate", "rate this", "--json"))
    gen = generated["id"]
    assert "thumbs up" in run("feedback", "up", gen, "-m", "nice")
    shown = json.loads(run("feedback", "show", gen, "--json"))
    assert (shown["rating"], shown["comment"]) == (1, "nice")
    assert "thumbs down" in run("feedback", "down", gen)
    usage = json.loads(run("usage", "--json"))
    assert (usage[0]["thumbs_up"], usage[0]["thumbs_down"]) == (0, 1)
    assert "thumbs down" in run("usage")
    assert "removed" in run("feedback", "clear", gen)
    assert "no rating" in run("feedback", "show", gen)
    assert "no generation" in run("feedback", "up", "gen_missing", code=2)
    assert "no chat" in run("feedback", "up", "msg1", "--chat", "nochat", code=2)
