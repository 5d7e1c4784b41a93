"""Prometheus metrics.

Counts, tokens and cost are read from the database at scrape time, so every server process
reports the same totals and a restart loses nothing. Latency and time-to-first-token histograms
are observed in this process as its generations finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from genvault.records import Generation
from genvault.store.schema import generations

__all__ = ["Metrics"]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class _Snapshot(Collector):
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def collect(self) -> Any:
        count = GaugeMetricFamily("genvault_generations", "Generations by status and model", labels=["status", "model"])
        tokens = CounterMetricFamily("genvault_tokens", "Tokens by model and kind", labels=["model", "kind"])
        cost = CounterMetricFamily("genvault_cost_usd", "Cost in USD by model (priced generations)", labels=["model"])
        by_model: dict[str, list[int]] = {}
        for row in self.rows:
            count.add_metric([row.status, row.model], row.n)
            acc = by_model.setdefault(row.model, [0, 0, 0, 0, 0])
            for i, value in enumerate((row.input, row.output, row.cached, row.reasoning, row.cost)):
                acc[i] += int(value or 0)
        for model, (inp, out, cached, reasoning, nano) in by_model.items():
            tokens.add_metric([model, "input"], inp)
            tokens.add_metric([model, "output"], out)
            tokens.add_metric([model, "cached_input"], cached)
            tokens.add_metric([model, "reasoning"], reasoning)
            cost.add_metric([model], nano / 1e9)
        yield count
        yield tokens
        yield cost


class _Refusals(Collector):
    """Requests a limit refused, by limit, in this process (`Limits.refusals`)."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "genvault_limit_refusals", "Requests refused by a limit (429), by limit", labels=["limit"]
        )
        for limit, n in sorted(self.counts.items()):
            family.add_metric([limit], n)
        yield family


class Metrics:
    def __init__(self, refusals: Mapping[str, int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if refusals is not None:
            self.registry.register(_Refusals(refusals))
        self.latency = Histogram(
            "genvault_generation_seconds",
            "Time from record creation to final state",
            ["model", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "genvault_time_to_first_token_seconds",
            "Time from record creation to the first streamed event",
            ["model"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, record: Generation) -> None:
        if record.finished_at is not None:
            self.latency.labels(record.model, record.status).observe(
                (record.finished_at - record.created_at).total_seconds()
            )
        if record.first_token_at is not None:
            self.ttft.labels(record.model).observe((record.first_token_at - record.created_at).total_seconds())

    async def render(self, conn: Any) -> bytes:
        rows = (
            await conn.execute(
                select(
                    generations.c.status,
                    generations.c.model,
                    func.count().label("n"),
                    func.sum(generations.c.input_tokens).label("input"),
                    func.sum(generations.c.output_tokens).label("output"),
                    func.sum(generations.c.cached_input_tokens).label("cached"),
                    func.sum(generations.c.reasoning_tokens).label("reasoning"),
                    func.sum(generations.c.cost_nano_usd).label("cost"),
                ).group_by(generations.c.status, generations.c.model)
            )
        ).all()
        registry = CollectorRegistry(auto_describe=True)
        registry.register(_Snapshot(list(rows)))
        return generate_latest(registry) + generate_latest(self.registry)
