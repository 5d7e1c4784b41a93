"""`/metrics`: counters that only go up (from the engine's events), `genvault_db_*` gauges for
what is stored now, and the optional scrape key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genvault.providers import testmodel as tm
from genvault.server import create_app

MODEL = "offline/test-model"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def _client(vault_factory: Any, **settings: Any) -> tuple[httpx.AsyncClient, Any]:
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides=settings
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(vault=vault)), base_url="http://t")
    return http, vault


@pytest.fixture
async def open_client(vault_factory: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    http, vault = await _client(vault_factory)
    async with http:
        yield http, vault


async def _generate(http: httpx.AsyncClient, vault: Any, prompt: str) -> dict[str, Any]:
    created = (await http.post("/api/generate", json={"prompt": prompt, "params": {"max_tokens": 3}})).json()
    await vault.wait(created["id"])
    return dict((await http.get(f"/api/generations/{created['id']}")).json())


async def test_counters_never_go_down_after_an_erasure(open_client: tuple[httpx.AsyncClient, Any]) -> None:
    http, vault = open_client
    record = await _generate(http, vault, "one")
    await _generate(http, vault, "two")
    before = _samples((await http.get("/metrics")).text)
    finished = ("genvault_generations_finished_total", (("model", MODEL), ("status", "complete")))
    output = ("genvault_tokens_total", (("kind", "output"), ("model", MODEL)))
    stored = ("genvault_db_generations", (("model", MODEL), ("status", "complete")))
    stored_output = ("genvault_db_tokens", (("kind", "output"), ("model", MODEL)))
    assert before[finished] == 2
    assert before[output] == 6
    assert before[stored] == 2
    assert before[stored_output] == 6

    await vault.erase_user(record["user_id"])
    after = _samples((await http.get("/metrics")).text)
    # Every counter is where it was (or higher); only the stored totals went down.
    for key, value in before.items():
        if key[0].endswith("_total"):
            assert after[key] >= value, key
    assert after[finished] == 2
    assert after[output] == 6
    assert after.get(stored, 0) == 0
    assert after.get(stored_output, 0) == 0

    await _generate(http, vault, "three")
    again = _samples((await http.get("/metrics")).text)
    assert again[finished] == 3
    assert again[stored] == 1


async def test_the_metrics_key_is_enforced_when_set(vault_factory: Any) -> None:
    http, _vault = await _client(vault_factory, metrics_token="s3cret-scrape")
    async with http:
        missing = await http.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "genvault_" not in missing.text
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = await http.get("/metrics", headers={"Authorization": "Basic s3cret-scrape"})
        assert basic.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert right.status_code == 200
        assert "# TYPE genvault_db_generations gauge" in right.text
        assert "genvault_generations_finished_total counter" in right.text
        # The scrape key is only for /metrics: the rest of the API is as open as before.
        assert (await http.get("/healthz")).status_code == 200


async def test_the_metrics_are_open_when_no_key_is_set(open_client: tuple[httpx.AsyncClient, Any]) -> None:
    http, _vault = open_client
    assert (await http.get("/metrics")).status_code == 200
