"""Managing chats over HTTP and the CLI (rename, share, delete, the chat's last model) and
`GET /api/models`, on SQLite and PostgreSQL: strangers get 404 and change nothing, bad input
is a 4xx that changes nothing, and the model list is the one `/v1/models` and `genvault models`
give (one catalog)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from genvault.cli import app
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.keys import create_key

USER_MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
ALT_MODEL = "second/alt-model"
UNPRICED = "second/no-price-known"


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    overrides = {
        "auth": "api_key",
        "default_model": UNPRICED,
        "price_overrides": {ALT_MODEL: {"input_mtok": "1.5", "output_mtok": "6"}},
    }
    providers = {"offline": tm.TestProvider(tokens_per_second=0), "second": tm.TestProvider(tokens_per_second=0)}
    vault = await vault_factory(providers=providers, settings_overrides=overrides)
    keys = {}
    for name in ("alice", "bob"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    await vault.create_chat("mine", title="Alice's chat", user_id="alice")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "keys": keys, "vault": vault}


def as_user(world: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['keys'][who]}"}


# -- GET /api/models ------------------------------------------------------------------------------


async def test_models_needs_a_signed_in_caller(world: dict[str, Any]) -> None:
    assert (await world["http"].get("/api/models")).status_code == 401
    bad_key = {"Authorization": "Bearer gv_not_a_key"}
    assert (await world["http"].get("/api/models", headers=bad_key)).status_code == 401


async def test_models_lists_the_configured_models_with_prices_and_unknown_prices_as_null(
    world: dict[str, Any],
) -> None:
    response = await world["http"].get("/api/models", headers=as_user(world, "alice"))
    assert response.status_code == 200
    body = response.json()
    assert body["default_model"] == UNPRICED
    assert body["default_image_model"] == "offline/test-image"
    models = {m["id"]: m for m in body["models"]}
    assert models["offline/test-model"] == {
        "id": "offline/test-model",
        "provider": "offline",
        "kind": "text",
        "name": "text, no network",
        "price": {
            "input_mtok": "0",
            "output_mtok": "0",
            "cache_read_mtok": None,
            "currency": "USD",
            "source": "offline",
        },
    }
    assert models["offline/test-image"]["kind"] == "image"
    assert models[ALT_MODEL]["price"] == {
        "input_mtok": "1.5",
        "output_mtok": "6",
        "cache_read_mtok": None,
        "currency": "USD",
        "source": "override",
    }
    # A model genvault has no price for says so: null, never "0".
    assert models[UNPRICED]["price"] is None
    assert [m["id"] for m in body["models"]] == sorted(models)
    # No key set: no OpenAI or Anthropic model is offered.
    assert not any(m["provider"] in ("openai", "anthropic") for m in body["models"])
    # The gateway's /v1/models is the same list (one catalog behind both).
    gateway = await world["http"].get("/v1/models", headers=as_user(world, "bob"))
    assert [m["id"] for m in gateway.json()["data"]] == [m["id"] for m in body["models"]]


async def test_models_lists_a_providers_priced_chat_models_once_its_key_is_set(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    body = (await world["http"].get("/api/models", headers=as_user(world, "alice"))).json()
    models = {m["id"]: m for m in body["models"]}
    gpt = models["openai/gpt-4o-mini"]
    assert (gpt["price"]["input_mtok"], gpt["price"]["output_mtok"], gpt["price"]["source"]) == (
        "0.15",
        "0.6",
        "genai-prices",
    )
    assert not any("embedding" in name for name in models)  # not chat models
    assert not any(m["provider"] == "anthropic" for m in body["models"])


async def test_under_a_key_limited_to_some_models_only_those_are_listed(world: dict[str, Any]) -> None:
    async with world["vault"].store.write() as conn:
        _, key = await create_key(conn, "alice", "picker", models=[ALT_MODEL])
    limited = {"Authorization": f"Bearer {key}"}
    body = (await world["http"].get("/api/models", headers=limited)).json()
    assert [m["id"] for m in body["models"]] == [ALT_MODEL]
    gateway = (await world["http"].get("/v1/models", headers=limited)).json()
    assert [m["id"] for m in gateway["data"]] == [ALT_MODEL]


# -- the chat's model -----------------------------------------------------------------------------


async def test_a_chat_remembers_the_model_of_its_latest_turn(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    chat = (await http.get("/api/chats/mine", headers=as_user(world, "alice"))).json()
    assert chat["model"] is None  # no turn yet
    for model in ("offline/test-model", ALT_MODEL):
        body = {"id": "mine", "messages": [{**USER_MESSAGE, "id": f"u-{model}"}], "model": model}
        response = await http.post("/api/chat", json=body, headers=as_user(world, "alice"))
        assert response.status_code == 200, response.text
        await vault.wait(response.headers["x-genvault-generation-id"], user_id="alice")
        chat = (await http.get("/api/chats/mine", headers=as_user(world, "alice"))).json()
        assert chat["model"] == model
    # A stranger learns nothing about it.
    assert (await http.get("/api/chats/mine", headers=as_user(world, "bob"))).status_code == 404
    assert await vault.chat_model("mine", user_id="alice") == ALT_MODEL


# -- rename, share, delete ------------------------------------------------------------------------


async def test_rename_and_share_by_the_owner_are_what_the_store_then_holds(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    renamed = await http.patch("/api/chats/mine", json={"title": "New name"}, headers=as_user(world, "alice"))
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "New name"
    shared = await http.patch("/api/chats/mine", json={"visibility": "link"}, headers=as_user(world, "alice"))
    assert shared.json()["visibility"] == "link"
    stored = await vault.get_chat("mine", user_id="alice")
    assert (stored.title, stored.visibility) == ("New name", "link")
    cleared = await http.patch("/api/chats/mine", json={"title": None}, headers=as_user(world, "alice"))
    assert cleared.json()["title"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),  # nothing to change
        ({"title": "   "}, 400),  # blank: null clears a title
        ({"title": "a\u0000b"}, 400),
        ({"title": "x" * 501}, 422),
        ({"title": 5}, 422),
        ({"visibility": "secret"}, 422),
        ({"visibility": None}, 400),  # nothing to change either
        ({"owner": "bob"}, 422),
        ([], 422),
    ],
)
async def test_bad_changes_are_refused_with_the_reason_and_change_nothing(
    world: dict[str, Any], body: Any, status: int
) -> None:
    http, vault = world["http"], world["vault"]
    before = await vault.get_chat("mine", user_id="alice")
    response = await http.patch("/api/chats/mine", json=body, headers=as_user(world, "alice"))
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert await vault.get_chat("mine", user_id="alice") == before


async def test_a_stranger_can_neither_rename_share_nor_delete_a_chat_and_learns_nothing(
    world: dict[str, Any],
) -> None:
    http, vault = world["http"], world["vault"]
    before = await vault.get_chat("mine", user_id="alice")
    for method, body in (("PATCH", {"title": "mine now"}), ("PATCH", {"visibility": "public"}), ("DELETE", None)):
        response = await http.request(method, "/api/chats/mine", json=body, headers=as_user(world, "bob"))
        assert response.status_code == 404, response.text
        # The same answer as for a chat that does not exist.
        missing = await http.request(method, "/api/chats/nothing-here", json=body, headers=as_user(world, "bob"))
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == response.json()["error"]["code"]
    assert await vault.get_chat("mine", user_id="alice") == before
    assert (await http.delete("/api/chats/mine")).status_code == 401
    deleted = await http.delete("/api/chats/mine", headers=as_user(world, "alice"))
    assert deleted.status_code == 204
    assert (await http.get("/api/chats/mine", headers=as_user(world, "alice"))).status_code == 404


# -- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def chats_of(cli: CliRunner, user: str) -> dict[str, dict[str, Any]]:
    listed = cli.invoke(app, ["chats", "--user", user, "--json"])
    assert listed.exit_code == 0, listed.output
    return {c["id"]: c for c in map(json.loads, listed.stdout.splitlines())}


def test_the_cli_renames_shares_and_deletes_as_the_api_does(cli: CliRunner) -> None:
    started = cli.invoke(app, ["chat", "--user", "local"], input="Hello\n/exit\n")
    assert started.exit_code == 0, started.output
    [chat_id] = chats_of(cli, "local")

    renamed = cli.invoke(app, ["chat", "rename", chat_id, "Greetings"])
    assert renamed.exit_code == 0, renamed.output
    assert chats_of(cli, "local")[chat_id]["title"] == "Greetings"
    shared = cli.invoke(app, ["chat", "share", chat_id, "public"])
    assert shared.exit_code == 0, shared.output
    assert f"/chat/{chat_id}" in shared.stdout
    assert chats_of(cli, "local")[chat_id]["visibility"] == "public"

    # Bad input and another user's name: refused (exit 2), nothing changed.
    for args in (
        ["chat", "share", chat_id, "secret"],
        ["chat", "rename", chat_id, "   "],
        ["chat", "rename", chat_id],
        ["chat", "rename", chat_id, "Mine", "--user", "mallory"],
        ["chat", "delete", chat_id, "--yes", "--user", "mallory"],
        ["chat", "delete", "no-such-chat", "--yes"],
    ):
        refused = cli.invoke(app, args)
        assert refused.exit_code == 2, (args, refused.output)
        assert "Error" in refused.stderr or "Usage" in refused.stderr or "give" in refused.stderr
    kept = chats_of(cli, "local")[chat_id]
    assert (kept["title"], kept["visibility"]) == ("Greetings", "public")

    # Delete asks first: "n" keeps it.
    kept_answer = cli.invoke(app, ["chat", "delete", chat_id], input="n\n")
    assert kept_answer.exit_code == 1
    assert chat_id in chats_of(cli, "local")
    deleted = cli.invoke(app, ["chat", "delete", chat_id], input="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert chats_of(cli, "local") == {}


def test_the_cli_goes_on_with_the_chats_model_unless_told_otherwise(cli: CliRunner, tmp_path: Path) -> None:
    import asyncio

    from genvault.settings import Settings
    from genvault.vault import Vault

    async def first_turn() -> str:
        second = tm.TestProvider(tokens_per_second=0)
        async with Vault(Settings(data_dir=tmp_path), providers={"second": second}) as vault:
            turn = await vault.chat("remembered", message=USER_MESSAGE, model=ALT_MODEL)
            await vault.wait(turn.generation.id)
            return str(await vault.chat_model("remembered"))

    assert asyncio.run(first_turn()) == ALT_MODEL
    # This process has no "second" provider: asking it is how we see the CLI chose that model.
    remembered = cli.invoke(app, ["chat", "-c", "remembered"], input="again\n")
    assert remembered.exit_code == 2
    assert ALT_MODEL in remembered.stderr
    told = cli.invoke(app, ["chat", "-c", "remembered", "-m", "offline/test-model"], input="again\n")
    assert told.exit_code == 0, told.output
