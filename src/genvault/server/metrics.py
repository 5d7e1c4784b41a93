"""Prometheus metrics.

Two kinds, named so a dashboard cannot confuse them:

- Counters (`*_total`) only ever go up. They count what this process saw finish, fed by the
  engine's finalize listeners (the final record), and start at zero when the process starts:
  sum them over processes and use `rate()` / `increase()`. An erasure or a retention run deletes
  rows but never lowers a counter.
- Gauges named `genvault_db_*` are totals read from the database at scrape time: what is stored
  now, whichever process wrote it. They go down when rows are deleted, as they should.

Latency and time-to-first-token histograms are observed in this process as generations finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from genvault.records import Generation
from genvault.store.schema import generations

__all__ = ["Metrics"]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_KINDS = ("input", "output", "cached_input", "reasoning")


class _Stored(Collector):
    """Database totals at scrape time: gauges, since deleting rows lowers them."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def collect(self) -> Any:
        count = GaugeMetricFamily(
            "genvault_db_generations", "Generations stored now, by status and model", labels=["status", "model"]
        )
        tokens = GaugeMetricFamily(
            "genvault_db_tokens", "Tokens of the generations stored now, by model and kind", labels=["model", "kind"]
        )
        cost = GaugeMetricFamily(
            "genvault_db_cost_usd", "Cost in USD of the generations stored now, by model", labels=["model"]
        )
        by_model: dict[str, list[int]] = {}
        for row in self.rows:
            count.add_metric([row.status, row.model], row.n)
            acc = by_model.setdefault(row.model, [0, 0, 0, 0, 0])
            for i, value in enumerate((row.input, row.output, row.cached, row.reasoning, row.cost)):
                acc[i] += int(value or 0)
        for model, values in by_model.items():
            for kind, value in zip(_KINDS, values[:4], strict=True):
                tokens.add_metric([model, kind], value)
            cost.add_metric([model], values[4] / 1e9)
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
        self.finished = Counter(
            "genvault_generations_finished",
            "Generations this process finished, by final status and model",
            ["status", "model"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "genvault_tokens",
            "Tokens of the generations this process finished, by model and kind",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "genvault_cost_usd",
            "Cost in USD of the generations this process finished (priced ones), by model",
            ["model"],
            registry=self.registry,
        )
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
        self._series: dict[tuple[str, str], tuple[Any, Any, tuple[Any, ...], Any, Any]] = {}

    def observe(self, record: Generation) -> None:
        """A finalize listener: count one final record (called once per finished generation)."""
        finished, latency, tokens, cost, ttft = self._children(record.model, record.status)
        finished.inc()
        usage = record.usage
        values = (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens)
        for counter, value in zip(tokens, values, strict=True):
            if value:  # never negative: a counter refuses a negative increment
                counter.inc(max(0, value))
        if record.cost_nano_usd:
            cost.inc(max(0, record.cost_nano_usd) / 1e9)
        if record.finished_at is not None:
            latency.observe((record.finished_at - record.created_at).total_seconds())
        if record.first_token_at is not None:
            ttft.observe((record.first_token_at - record.created_at).total_seconds())

    def _children(self, model: str, status: str) -> tuple[Any, Any, tuple[Any, ...], Any, Any]:
        """The labelled series of one model and status, looked up once (`labels()` takes a lock
        and builds its key on every call; this runs once per generation)."""
        found = self._series.get((model, status))
        if found is None:
            found = self._series[(model, status)] = (
                self.finished.labels(status, model),
                self.latency.labels(model, status),
                tuple(self.tokens.labels(model, kind) for kind in _KINDS),
                self.cost.labels(model),
                self.ttft.labels(model),
            )
        return found

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
        registry.register(_Stored(list(rows)))
        return generate_latest(registry) + generate_latest(self.registry)
