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


def test_the_finished_series_are_what_prometheus_clients_classes_expose(monkeypatch: pytest.MonkeyPatch) -> None:
    # `Metrics` keeps the finished counters and histograms in plain floats; its exposition is the
    # one prometheus_client's Counter and Histogram give for the same records, byte for byte
    # (series order, `_created`, bucket edges included).
    from datetime import UTC, datetime, timedelta

    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from genvault.records import Generation, Usage
    from genvault.server.metrics import _BUCKETS, _KINDS, Metrics

    monkeypatch.setattr("time.time", lambda: 1_765_000_000.25)
    registry = CollectorRegistry(auto_describe=True)
    finished = Counter(
        "genvault_generations_finished",
        "Generations this process finished, by final status and model",
        ["status", "model"],
        registry=registry,
    )
    tokens = Counter(
        "genvault_tokens",
        "Tokens of the generations this process finished, by model and kind",
        ["model", "kind"],
        registry=registry,
    )
    cost = Counter(
        "genvault_cost_usd",
        "Cost in USD of the generations this process finished (priced ones), by model",
        ["model"],
        registry=registry,
    )
    latency = Histogram(
        "genvault_generation_seconds",
        "Time from record creation to final state",
        ["model", "status"],
        buckets=_BUCKETS,
        registry=registry,
    )
    ttft = Histogram(
        "genvault_time_to_first_token_seconds",
        "Time from record creation to the first streamed event",
        ["model"],
        buckets=_BUCKETS,
        registry=registry,
    )
    metrics = Metrics()
    assert generate_latest(metrics.registry) == generate_latest(registry)  # nothing finished yet

    start = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    # seconds to the end and to the first token: on, under and over bucket edges, and none
    timings = [(0.05, 0.01), (0.050001, None), (1.0, 0.5), (2.5, 0.25), (299.9, 120.0), (301.0, 0.0), (7.0, None)]
    usages = [
        Usage(input_tokens=3, output_tokens=20),
        Usage(),
        Usage(input_tokens=-1, output_tokens=5, reasoning_tokens=7, cached_input_tokens=2),
    ]
    for i, (total, first) in enumerate(timings):
        record = Generation(
            id=f"gen_{i}",
            kind="chat",
            user_id="u",
            status=("complete", "error", "cancelled")[i % 3],
            model=("offline/a", "offline/b")[i % 2],
            provider="offline",
            request={},
            usage=usages[i % 3],
            cost_nano_usd=(None, 0, 1_234_567, -5)[i % 4],
            created_at=start,
            finished_at=start + timedelta(seconds=total),
            first_token_at=None if first is None else start + timedelta(seconds=first),
        )
        metrics.observe(record)
        child = finished.labels(record.status, record.model)
        latency_child = latency.labels(record.model, record.status)
        token_children = [tokens.labels(record.model, kind) for kind in _KINDS]
        cost_child = cost.labels(record.model)
        ttft_child = ttft.labels(record.model)
        child.inc()
        usage = record.usage
        for counter, value in zip(
            token_children,
            (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens),
            strict=True,
        ):
            if value:
                counter.inc(max(0, value))
        if record.cost_nano_usd:
            cost_child.inc(max(0, record.cost_nano_usd) / 1e9)
        latency_child.observe((record.finished_at - start).total_seconds())  # type: ignore[operator]
        if record.first_token_at is not None:
            ttft_child.observe((record.first_token_at - start).total_seconds())
        assert generate_latest(metrics.registry) == generate_latest(registry)
    assert b'genvault_generation_seconds_bucket{le="0.05",model="offline/a",status="complete"} 1.0' in generate_latest(
        metrics.registry
    )


def _series_values(metrics: Any) -> Any:
    """Every series' values (not their `_created` times) of what `metrics` saw finish."""
    finished = metrics._finished

    def histogram(series: Any) -> Any:
        return {key: (one.counts, one.sum) for key, one in series.items()}

    return (
        {key: one.value for key, one in finished.finished.items()},
        {key: one.value for key, one in finished.tokens.items()},
        {key: one.value for key, one in finished.cost.items()},
        histogram(finished.latency),
        histogram(finished.ttft),
    )


def test_observing_the_finalize_values_counts_what_the_final_record_would() -> None:
    """The server's metrics listen to the finalize's values (`Engine.final_listeners`): the same
    counts as the final record `final_record(pending, values)` gives `observe`."""
    from datetime import UTC, datetime, timedelta

    from genvault.server.metrics import Metrics
    from genvault.store.generations import final_record, pending_record

    start = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    by_record, by_values = Metrics(), Metrics()
    for i in range(6):
        pending = pending_record(
            {
                "id": f"gen_{i}",
                "kind": "chat",
                "user_id": "u",
                "model": ("offline/a", "offline/b")[i % 2],
                "provider": "offline",
                "request": {},
                "created_at": start,
            }
        )
        values: dict[str, Any] = {
            "status": ("complete", "error", "cancelled")[i % 3],
            "error": None,
            "input_tokens": (3, None, -1)[i % 3],
            "output_tokens": (20, None, 5)[i % 3],
            "cached_input_tokens": (None, None, 2)[i % 3],
            "cache_write_tokens": None,
            "reasoning_tokens": (None, 0, 7)[i % 3],
            "total_tokens": None,
            "cost_nano_usd": (None, 0, 1_234_567, -5)[i % 4],
            "started_at": start,
            "first_token_at": None if i % 2 else start + timedelta(seconds=0.25 * i),
            "finished_at": start + timedelta(seconds=(0.05, 1.0, 301.0)[i % 3]),
        }
        if i == 5:
            values["usage_estimated"] = True
        by_record.observe(final_record(pending, values))
        by_values.observe_final(pending, values)
        assert _series_values(by_values) == _series_values(by_record)
    assert _series_values(by_values)[0][("complete", "offline/a")] == 1.0


async def test_the_server_counts_through_the_finalize_values(open_client: tuple[httpx.AsyncClient, Any]) -> None:
    http, vault = open_client
    assert vault.engine.listeners == []  # no final record is built for the metrics
    assert [listener.__name__ for listener in vault.engine.final_listeners] == ["observe_final"]
    await _generate(http, vault, "one")
    samples = _samples((await http.get("/metrics")).text)
    assert samples[("genvault_generations_finished_total", (("model", MODEL), ("status", "complete")))] == 1
    assert samples[("genvault_tokens_total", (("kind", "output"), ("model", MODEL)))] == 3
