"""How records look in a terminal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.table import Table

from genvault.records import Generation, UsageRow

STATUS_STYLE = {
    "pending": "yellow",
    "streaming": "cyan",
    "complete": "green",
    "error": "red",
    "cancelled": "magenta",
    "interrupted": "red",
}


def usd(value: Decimal | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    return f"${value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"${value:,.4f}"


def row_cost(cost: Decimal, generations: int, unpriced: int) -> str:
    """A usage total: "unknown" when none of its generations had a price, never "$0" (as on the
    /usage page; the `unpriced` column beside it counts the rest)."""
    if generations and unpriced == generations:
        return "unknown"
    return usd(cost)


def tokens(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def status(value: str) -> str:
    return f"[{STATUS_STYLE.get(value, 'white')}]{value}[/]"


def summary_line(record: Generation) -> str:
    u = record.usage
    parts = [
        status(record.status),
        f"{tokens(u.input_tokens)} in / {tokens(u.output_tokens)} out tokens",
    ]
    if u.cached_input_tokens:
        parts.append(f"{tokens(u.cached_input_tokens)} cached")
    if u.reasoning_tokens:
        parts.append(f"{tokens(u.reasoning_tokens)} reasoning")
    parts.append(f"cost {usd(record.cost_usd)}")
    if record.cached_from:
        parts.append(f"from cache ({record.cached_from}, saved {usd(record.saved_usd)})")
    parts.append(record.url)
    return " · ".join(parts)


def generations_table(records: list[Generation]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("id", "created (UTC)", "kind", "model", "status", "tokens in/out", "cost", "prompt"):
        table.add_column(column, overflow="fold" if column == "id" else "ellipsis", no_wrap=column != "prompt")
    for r in records:
        prompt = str(r.request.get("prompt") or r.request.get("summary") or "")
        table.add_row(
            r.id,
            when(r.created_at),
            r.kind,
            r.model,
            status(r.status),
            f"{tokens(r.usage.input_tokens)}/{tokens(r.usage.output_tokens)}",
            usd(r.cost_usd),
            prompt.replace("\n", " ")[:60],
        )
    return table


def usage_table(rows: list[UsageRow], group_by: str) -> Table:
    table = Table(box=None, header_style="bold", show_footer=True)
    totals: dict[str, Any] = {
        "generations": sum(r.generations for r in rows),
        "input": sum(r.input_tokens for r in rows),
        "output": sum(r.output_tokens for r in rows),
        "cached": sum(r.cached_input_tokens for r in rows),
        "reasoning": sum(r.reasoning_tokens for r in rows),
        "cost": sum((r.cost_usd for r in rows), Decimal(0)),
        "unpriced": sum(r.unpriced_generations for r in rows),
        "hits": sum(r.cache_hits for r in rows),
        "saved": sum((r.saved_usd for r in rows), Decimal(0)),
        "estimated": sum(r.estimated_generations for r in rows),
    }
    table.add_column(group_by, footer="total")
    table.add_column("generations", justify="right", footer=f"{totals['generations']:,}")
    table.add_column("input", justify="right", footer=f"{totals['input']:,}")
    table.add_column("output", justify="right", footer=f"{totals['output']:,}")
    table.add_column("cached", justify="right", footer=f"{totals['cached']:,}")
    table.add_column("reasoning", justify="right", footer=f"{totals['reasoning']:,}")
    table.add_column(
        "cost", justify="right", footer=row_cost(totals["cost"], totals["generations"], totals["unpriced"])
    )
    table.add_column("unpriced", justify="right", footer=f"{totals['unpriced']:,}")
    table.add_column("cache hits", justify="right", footer=f"{totals['hits']:,}")
    table.add_column(
        "saved",
        justify="right",
        footer="unknown" if totals["hits"] and not totals["saved"] and totals["unpriced"] else usd(totals["saved"]),
    )
    # Generations cut short before the provider sent usage: their tokens and cost are estimates.
    table.add_column("estimated", justify="right", footer=f"{totals['estimated']:,}")
    for r in rows:
        table.add_row(
            r.key,
            f"{r.generations:,}",
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{r.cached_input_tokens:,}",
            f"{r.reasoning_tokens:,}",
            row_cost(r.cost_usd, r.generations, r.unpriced_generations),
            f"{r.unpriced_generations:,}",
            f"{r.cache_hits:,}",
            "unknown" if r.cache_hits and not r.saved_nano_usd and r.unpriced_generations else usd(r.saved_usd),
            f"{r.estimated_generations:,}",
        )
    return table
