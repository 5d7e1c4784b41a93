"""The generation routes, in-process over ASGI, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.messages.sse import parse_sse
from genvault.providers import testmodel as tm
from genvault.server import create_app


@pytest.fixture
async def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
async def client(vault_factory: Any, provider: tm.TestProvider) -> AsyncIterator[httpx.AsyncClient]:
    vault = await vault_factory(providers={"offline": provider})
    app = create_app(vault=vault)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        http.vault = vault  # type: ignore[attr-defined]
        yield http


async def test_post_json_creates_a_record_and_answers_201_with_its_url(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/generate", json={"prompt": "hello", "params": {"max_tokens": 3}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"/generate/{body['id']}"
    assert body["status"] == "pending"
    assert response.headers["location"] == f"/api/generations/{body['id']}"
    await client.vault.wait(body["id"])  # type: ignore[attr-defined]
    record = (await client.get(f"/api/generations/{body['id']}")).json()
    assert record["status"] == "complete"
    assert record["usage"]["output_tokens"] == 3


async def test_a_form_post_is_redirected_to_the_records_page(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/generate", data={"prompt": "from a form", "model": "offline/test-model"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/generate/gen_")


async def test_the_stream_replays_from_any_chunk_live_and_after_the_end(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    provider.enqueue(tm.text("streamed words here"))
    created = (await client.post("/api/generate", json={"prompt": "x"})).json()
    live = await client.get(f"/api/generations/{created['id']}/stream")
    assert live.headers["content-type"].startswith("text/event-stream")
    assert live.headers["x-vercel-ai-ui-message-stream"] == "v1"
    events = parse_sse(live.content)
    assert events[-1] == "[DONE]"
    assert events[0] == {"type": "start", "messageId": created["id"]}
    text = "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")
    assert text == "streamed words here"
    partial = parse_sse((await client.get(f"/api/generations/{created['id']}/stream?from=2")).content)
    assert partial == events[2:]
    # Once the hub has forgotten it, the record itself replays.
    await client.vault.hub.close(created["id"])  # type: ignore[attr-defined]
    client.vault.hub._streams.clear()  # type: ignore[attr-defined]
    rebuilt = parse_sse((await client.get(f"/api/generations/{created['id']}/stream")).content)
    rebuilt_text = "".join(e["delta"] for e in rebuilt if isinstance(e, dict) and e["type"] == "text-delta")
    assert rebuilt_text == "streamed words here"


async def test_cancel_over_http_keeps_partial_output(client: httpx.AsyncClient, provider: tm.TestProvider) -> None:
    provider.enqueue(tm.text("partial"), tm.delay(30))
    created = (await client.post("/api/generate", json={"prompt": "x"})).json()
    import asyncio

    for _ in range(100):
        run = client.vault.engine._runs.get(created["id"])  # type: ignore[attr-defined]
        if run and run.result_text:
            break
        await asyncio.sleep(0.01)
    response = await client.post(f"/api/generations/{created['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["result_text"] == "partial"
    again = await client.post(f"/api/generations/{created['id']}/cancel")
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": []}, 400, "JSON object"),
        ({"json": {"prompt": ""}}, 400, "prompt is empty"),
        ({"json": {"prompt": "x", "model": "gpt-4"}}, 400, "provider/model"),
        ({"json": {"prompt": "x", "unknown": 1}}, 400, "unknown"),
        ({"json": {"prompt": "x", "params": {"temperature": -1}}}, 400, "temperature"),
        ({"content": b"{" + b" " * 11_000_000 + b"}", "headers": {"content-type": "application/json"}}, 413, "limit"),
    ],
)
async def test_bad_requests_get_a_4xx_with_a_message_and_store_nothing(
    client: httpx.AsyncClient, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = await client.post("/api/generate", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert (await client.get("/api/generations")).json()["items"] == []


async def test_unknown_records_are_404_and_listing_pages(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/generations/gen_nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "no generation 'gen_nope'"}}
    ids = []
    for i in range(3):
        created = (await client.post("/api/generate", json={"prompt": f"p{i}"})).json()
        await client.vault.wait(created["id"])  # type: ignore[attr-defined]
        ids.append(created["id"])
    first = (await client.get("/api/generations?limit=2")).json()
    second = (await client.get(f"/api/generations?limit=2&cursor={first['next_cursor']}")).json()
    assert [r["id"] for r in first["items"] + second["items"]] == list(reversed(ids))
    assert (await client.get("/api/generations?limit=0")).status_code == 422
    usage = (await client.get("/api/usage?group_by=model")).json()
    assert usage[0]["generations"] == 3


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/generate", json={"prompt": "p"})).json()
    await client.vault.wait(created["id"])  # type: ignore[attr-defined]
    assert (await client.get("/healthz")).json()["status"] == "ok"
    text = (await client.get("/metrics")).text
    assert 'genvault_db_generations{model="offline/test-model",status="complete"} 1.0' in text
    assert 'genvault_generations_finished_total{model="offline/test-model",status="complete"} 1.0' in text
    assert "genvault_time_to_first_token_seconds_bucket" in text
    assert 'genvault_tokens_total{kind="output",model="offline/test-model"}' in text
