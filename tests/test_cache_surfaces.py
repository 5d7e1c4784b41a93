"""The dedup cache through HTTP and the CLI: the `cache`/`cache_ttl` fields, `--no-cache`, and
cache hits and savings in `/api/usage` and `genvault usage`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from genvault.cli import app
from genvault.messages.sse import parse_sse
from genvault.providers import testmodel as tm
from genvault.server import create_app

PRICES = {"offline/test-model": {"input_mtok": "1", "output_mtok": "2"}}


@pytest.fixture
async def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
async def client(vault_factory: Any, provider: tm.TestProvider) -> AsyncIterator[httpx.AsyncClient]:
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"price_overrides": PRICES})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        http.vault = vault  # type: ignore[attr-defined]
        yield http


async def generate(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    created = await client.post("/api/generate", json=body)
    assert created.status_code == 201, created.text
    await client.vault.wait(created.json()["id"])  # type: ignore[attr-defined]
    record: dict[str, Any] = (await client.get(f"/api/generations/{created.json()['id']}")).json()
    return record


class TestHttp:
    async def test_a_repeated_post_is_a_cache_hit_and_usage_shows_the_saving(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        first = await generate(client, prompt="over http")
        second = await generate(client, prompt="over http")
        assert provider.call_count == 1
        assert second["cached_from"] == first["id"]
        assert second["cost_usd"] == "0"
        assert second["saved_usd"] == first["cost_usd"]
        [row] = (await client.get("/api/usage")).json()
        assert row["cache_hits"] == 1
        assert row["saved_usd"] == first["cost_usd"]

    async def test_cache_false_in_the_body_always_calls(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        await generate(client, prompt="uncached")
        again = await generate(client, prompt="uncached", cache=False)
        assert provider.call_count == 2
        assert again["cached_from"] is None

    async def test_a_bad_cache_ttl_is_a_400_naming_the_field(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/generate", json={"prompt": "x", "cache_ttl": -5})
        assert response.status_code == 400
        assert "cache_ttl" in response.json()["error"]["message"]

    async def test_a_chat_turn_honours_cache_false_and_rejects_a_bad_value(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "same"}]}
        for chat_id in ("c1", "c2"):
            response = await client.post("/api/chat", json={"id": chat_id, "messages": [message], "cache": False})
            assert parse_sse(response.content)[-1] == "[DONE]"
        assert provider.call_count == 2
        bad = await client.post("/api/chat", json={"id": "c3", "messages": [message], "cache": "no"})
        assert bad.status_code == 400
        assert "cache must be true or false" in bad.text

    async def test_a_chat_hit_streams_under_its_own_message_id(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello twice"}]}
        one = parse_sse((await client.post("/api/chat", json={"id": "a", "messages": [message]})).content)
        two = parse_sse((await client.post("/api/chat", json={"id": "b", "messages": [message]})).content)
        assert provider.call_count == 1
        assert one[0]["messageId"] != two[0]["messageId"]
        text = [
            [e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta"] for events in (one, two)
        ]
        assert "".join(text[0]) == "".join(text[1])
        assert two[-2]["messageMetadata"]["genvault"]["costUsd"] == "0"


class TestPages:
    async def test_the_usage_page_and_the_record_page_show_hits_and_savings(self, client: httpx.AsyncClient) -> None:
        first = await generate(client, prompt="on the page")
        second = await generate(client, prompt="on the page")
        usage = (await client.get("/usage")).text
        assert '<span class="stat-value" data-field="cache_hits">1</span>' in usage
        assert '<th class="num">Cache hits</th>' in usage
        record_page = (await client.get(f"/generate/{second['id']}")).text
        assert f'<a href="/generate/{first["id"]}">{first["id"]}</a>' in record_page
        assert '<dd data-field="saved_usd">$' in record_page


class TestCli:
    @pytest.fixture
    def cli(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
        monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
        monkeypatch.setenv("GENVAULT_PRICE_OVERRIDES", json.dumps(PRICES))
        monkeypatch.setenv("COLUMNS", "200")
        return CliRunner()

    def test_generate_twice_says_the_second_came_from_the_cache(self, cli: CliRunner) -> None:
        first = cli.invoke(app, ["generate", "--json", "cli prompt"])
        second = cli.invoke(app, ["generate", "cli prompt"])
        assert second.exit_code == 0, second.output
        assert f"from cache ({json.loads(first.stdout)['id']}" in second.stderr
        uncached = cli.invoke(app, ["generate", "--json", "--no-cache", "cli prompt"])
        assert json.loads(uncached.stdout)["cached_from"] is None

        rows = json.loads(cli.invoke(app, ["usage", "--json"]).stdout)
        assert rows[0]["generations"] == 3
        assert rows[0]["cache_hits"] == 1
        table = cli.invoke(app, ["usage"])
        assert "cache hits" in table.stdout
        assert "saved" in table.stdout
