"""The smaller edges of issue 14 (item 8): replay of finished records, SSE ids and Last-Event-ID,
405's Allow header, and the OpenAPI document of the routes that read their own bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from genvault.cli import app as cli_app
from genvault.messages.sse import parse_sse
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.vault import Vault


@pytest.fixture
async def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
async def vault(vault_factory: Any, provider: tm.TestProvider) -> Vault:
    made: Vault = await vault_factory(providers={"offline": provider})
    return made


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield http


def _text(chunks: list[Any]) -> str:
    return "".join(c["delta"] for c in chunks if isinstance(c, dict) and c.get("type") == "text-delta")


class TestStreamOfAFinishedRecord:
    async def test_vault_stream_replays_a_finished_record_from_any_index(
        self, vault: Vault, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("kept for later"))
        record = await vault.generate("x")
        live = [chunk async for chunk in vault.stream(record.id)]
        await vault.wait(record.id)
        await vault.hub.close(record.id)
        vault.hub._streams.clear()  # type: ignore[attr-defined]  # the hub has forgotten it
        replayed = [chunk async for chunk in vault.stream(record.id)]
        assert _text(replayed) == _text(live) == "kept for later"
        assert replayed[0]["type"] == "start"
        assert replayed[-1]["type"] == "finish"
        assert [chunk async for chunk in vault.stream(record.id, start=2)] == replayed[2:]


def test_generate_with_the_same_key_prints_the_stored_output_again(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    cli = CliRunner()
    first = cli.invoke(cli_app, ["generate", "say something", "--key", "K-1"])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip()
    again = cli.invoke(cli_app, ["generate", "say something", "--key", "K-1"])
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    assert first.stderr.split()[0] == again.stderr.split()[0]  # the same record id


class TestSseIds:
    async def test_each_chunk_carries_its_index_and_last_event_id_resumes_after_it(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("one two three four"))
        created = (await client.post("/api/generate", json={"prompt": "x"})).json()
        await client.get(f"/api/generations/{created['id']}")
        whole = await client.get(f"/api/generations/{created['id']}/stream")
        events = parse_sse(whole.content)
        ids = [int(line[4:]) for line in whole.text.splitlines() if line.startswith("id: ")]
        assert ids == list(range(len(events) - 1))  # every chunk but [DONE], in order
        resumed = await client.get(f"/api/generations/{created['id']}/stream", headers={"Last-Event-ID": "2"})
        assert parse_sse(resumed.content) == events[3:]
        assert resumed.text.startswith("id: 3\n")
        # ?from= still works, and the ids stay the chunks' own indexes.
        from_two = await client.get(f"/api/generations/{created['id']}/stream?from=2")
        assert parse_sse(from_two.content) == events[2:]
        assert from_two.text.startswith("id: 2\n")

    async def test_a_last_event_id_that_is_not_an_index_is_a_400(self, client: httpx.AsyncClient) -> None:
        created = (await client.post("/api/generate", json={"prompt": "x"})).json()
        response = await client.get(f"/api/generations/{created['id']}/stream", headers={"Last-Event-ID": "abc"})
        assert response.status_code == 400
        assert "Last-Event-ID must be a chunk index" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/chats/c", {"GET", "PATCH", "DELETE"}),
        ("GET", "/api/generate", {"POST"}),
        ("DELETE", "/api/chat", {"POST"}),
    ],
)
async def test_a_405_says_which_methods_are_allowed(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


class TestOpenApi:
    @pytest.fixture
    async def doc(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def test_the_routes_that_read_their_own_body_document_it(self, doc: dict[str, Any]) -> None:
        chat = doc["paths"]["/api/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert {"id", "messages", "trigger", "messageId"} <= set(chat["properties"])
        for path in ("/api/generate", "/api/images"):
            body = doc["paths"][path]["post"]["requestBody"]["content"]
            assert "prompt" in body["application/json"]["schema"]["required"]
            assert "application/x-www-form-urlencoded" in body
        upload = doc["paths"]["/api/files"]["post"]["requestBody"]["content"]
        assert upload["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"

    def test_the_sse_routes_are_documented_as_event_streams(self, doc: dict[str, Any]) -> None:
        for path, method in (
            ("/api/chat", "post"),
            ("/api/chat/{chat_id}/stream", "get"),
            ("/api/generations/{generation_id}/stream", "get"),
        ):
            assert list(doc["paths"][path][method]["responses"]["200"]["content"]) == ["text/event-stream"]

    def test_error_codes_are_documented_in_the_shape_each_route_answers(self, doc: dict[str, Any]) -> None:
        json_route = doc["paths"]["/api/generations/{generation_id}"]["get"]["responses"]
        for status in ("400", "401", "404", "503"):
            schema = json_route[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}
        chat_route = doc["paths"]["/api/chat"]["post"]["responses"]
        assert all(list(chat_route[s]["content"]) == ["text/plain"] for s in ("400", "404", "409", "422", "503"))


class TestUnpricedUsage:
    """The offline test model has no price: its use, cache hits included, is unpriced, never $0."""

    async def test_cache_hits_of_an_unpriced_model_count_as_unpriced(self, vault: Vault) -> None:
        first = await vault.wait((await vault.generate("same")).id)
        hit = await vault.wait((await vault.generate("same")).id)
        assert first.cost_nano_usd is None
        assert hit.cached_from == first.id
        [row] = await vault.usage()
        assert (row.generations, row.cache_hits, row.unpriced_generations) == (2, 1, 2)

    async def test_the_usage_page_says_unknown_for_unpriced_use_with_cache_hits(
        self, client: httpx.AsyncClient, vault: Vault
    ) -> None:
        for _ in range(3):
            await vault.wait((await vault.generate("same")).id)
        html = (await client.get("/usage")).text
        assert '<td class="num">unknown</td>' in html
        assert "$0.00" not in html

    def test_genvault_usage_says_unknown_for_unpriced_use_with_cache_hits(
        self, tmp_path: Path, monkeypatch: Any
    ) -> None:
        monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
        monkeypatch.setenv("COLUMNS", "200")
        cli = CliRunner()
        for _ in range(2):
            assert cli.invoke(cli_app, ["generate", "same prompt"]).exit_code == 0
        table = cli.invoke(cli_app, ["usage"])
        assert table.exit_code == 0, table.output
        assert "unknown" in table.stdout
        assert "$0" not in table.stdout
