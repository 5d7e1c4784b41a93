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

import bisect
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select

from genvault.records import Generation
from genvault.store.schema import generations

__all__ = ["Metrics"]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_KINDS = ("input", "output", "cached_input", "reasoning")
_BOUNDS = (*map(float, _BUCKETS), float("inf"))  # the histograms' upper bounds, +Inf last
_LE = tuple(map(floatToGoString, _BOUNDS))  # as the `le` label writes them


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


class _Series:
    """One series' values, kept as prometheus_client's child keeps them (floats from 0.0, the
    time it was created), without its lock: a finalize listener updates it and `/metrics` reads it,
    both on the event loop's thread."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class _HistogramSeries:
    """One histogram series: the count in each bucket (not cumulative), the sum, the time it was
    created."""

    __slots__ = ("counts", "created", "sum")

    def __init__(self) -> None:
        self.counts = [0.0] * len(_BOUNDS)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.sum += amount
        # the first bucket whose bound is >= amount: prometheus_client's loop, by bisection in C
        self.counts[bisect.bisect_left(_BOUNDS, amount)] += 1.0


# one model and status's series: finished, latency, tokens by kind, cost, time to first token
_Children = tuple[_Series, _HistogramSeries, tuple[_Series, ...], _Series, _HistogramSeries]


class _Finished(Collector):
    """What this process saw finish, as counters and histograms: exactly the families, samples,
    order and values prometheus_client's `Counter` and `Histogram` would give for the same
    increments and observations (with their `_created` series), kept in plain floats.

    Those classes take a lock per increment and walk the buckets in Python per observation:
    ~54,000 instructions per finished generation, in a chat turn of ~7.4 M (docs/benchmarks.md,
    liteturn4); this is a dict lookup and a few float additions."""

    def __init__(self) -> None:
        # by label values, in the order the series were first seen (the order they are exposed)
        self.finished: dict[tuple[str, str], _Series] = {}  # (status, model)
        self.tokens: dict[tuple[str, str], _Series] = {}  # (model, kind)
        self.cost: dict[tuple[str], _Series] = {}  # (model,)
        self.latency: dict[tuple[str, str], _HistogramSeries] = {}  # (model, status)
        self.ttft: dict[tuple[str], _HistogramSeries] = {}  # (model,)
        self._series: dict[tuple[str, str], _Children] = {}  # (model, status)

    def children(self, model: str, status: str) -> _Children:
        """The series of one model and status, created (all five families) when first seen."""
        found = self._series.get((model, status))
        if found is None:
            finished = self.finished.setdefault((status, model), _Series())
            latency = self.latency.setdefault((model, status), _HistogramSeries())
            tokens = tuple(self.tokens.setdefault((model, kind), _Series()) for kind in _KINDS)
            cost = self.cost.setdefault((model,), _Series())
            ttft = self.ttft.setdefault((model,), _HistogramSeries())
            found = self._series[(model, status)] = (finished, latency, tokens, cost, ttft)
        return found

    def collect(self) -> Any:
        created = prometheus_metrics._use_created  # PROMETHEUS_DISABLE_CREATED_SERIES, as the classes read it
        yield _family(
            "counter",
            "genvault_generations_finished",
            "Generations this process finished, by final status and model",
            ("status", "model"),
            self.finished,
            created,
        )
        yield _family(
            "counter",
            "genvault_tokens",
            "Tokens of the generations this process finished, by model and kind",
            ("model", "kind"),
            self.tokens,
            created,
        )
        yield _family(
            "counter",
            "genvault_cost_usd",
            "Cost in USD of the generations this process finished (priced ones), by model",
            ("model",),
            self.cost,
            created,
        )
        yield _family(
            "histogram",
            "genvault_generation_seconds",
            "Time from record creation to final state",
            ("model", "status"),
            self.latency,
            created,
        )
        yield _family(
            "histogram",
            "genvault_time_to_first_token_seconds",
            "Time from record creation to the first streamed event",
            ("model",),
            self.ttft,
            created,
        )


def _family(
    kind: str,
    name: str,
    documentation: str,
    labelnames: tuple[str, ...],
    series: dict[Any, _Series] | dict[Any, _HistogramSeries],
    created: bool,
) -> Metric:
    """A counter's or histogram's family with its series' samples, as the classes expose them."""
    family = Metric(name, documentation, kind)
    for labelvalues, one in series.items():
        labels = dict(zip(labelnames, labelvalues, strict=True))
        if isinstance(one, _Series):
            family.add_sample(name + "_total", labels, one.value)
        else:
            cumulative = 0.0
            for le, count in zip(_LE, one.counts, strict=True):
                cumulative += count
                family.add_sample(name + "_bucket", {**labels, "le": le}, cumulative)
            family.add_sample(name + "_count", labels, cumulative)
            family.add_sample(name + "_sum", labels, one.sum)
        if created:
            family.add_sample(name + "_created", labels, one.created)
    return family


class Metrics:
    def __init__(self, refusals: Mapping[str, int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if refusals is not None:
            self.registry.register(_Refusals(refusals))
        self._finished = _Finished()
        self.registry.register(self._finished)

    def observe(self, record: Generation) -> None:
        """A finalize listener: count one final record (called once per finished generation)."""
        usage = record.usage
        self._count(
            record.model,
            record.status,
            (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens),
            record.cost_nano_usd,
            record.created_at,
            record.finished_at,
            record.first_token_at,
        )

    def observe_final(self, pending: Generation, values: dict[str, Any]) -> None:
        """`observe(gen_store.final_record(pending, values))`, the same counts, from the pending
        record and the finalize's values (`Engine.final_listeners`) without that record built."""
        get = values.get
        self._count(
            pending.model,
            values["status"],
            (get("input_tokens"), get("output_tokens"), get("cached_input_tokens"), get("reasoning_tokens")),
            get("cost_nano_usd"),
            pending.created_at,
            get("finished_at"),
            get("first_token_at"),
        )

    def _count(
        self,
        model: str,
        status: str,
        token_values: tuple[int | None, ...],
        cost_nano_usd: int | None,
        created_at: datetime,
        finished_at: datetime | None,
        first_token_at: datetime | None,
    ) -> None:
        finished, latency, tokens, cost, ttft = self._finished.children(model, status)
        finished.value += 1.0
        for counter, value in zip(tokens, token_values, strict=True):
            if value:  # never negative: a counter never goes down
                counter.value += max(0, value)
        if cost_nano_usd:
            cost.value += max(0, cost_nano_usd) / 1e9
        if finished_at is not None:
            latency.observe((finished_at - created_at).total_seconds())
        if first_token_at is not None:
            ttft.observe((first_token_at - created_at).total_seconds())

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
