"""How records look in a terminal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from rich.table import Table
from rich.text import Text

from genvault.money import usd_label

if TYPE_CHECKING:
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
    """Exact dollars, at least to the cent, as on the pages (`money.usd_label`): never rounded."""
    return usd_label(value)


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


def summary_parts(record: Generation) -> list[str]:
    """The pieces of a record's one-line summary (`summary` joins them)."""
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
    return parts


def summary_line(record: Generation) -> str:
    """`complete · 12 in / 80 out tokens · cost $0.0001 · /generate/gen_…` as one string."""
    return " · ".join(summary_parts(record))


def join_wrapped(parts: list[str], width: int) -> str:
    """Rich markup: `parts` joined by ` · `, broken into lines of at most `width` cells only
    between parts, so a line never ends in a dangling `·` and no part (an id, a URL) is split."""
    lines: list[str] = []
    line, length = "", 0
    for part in parts:
        size = Text.from_markup(part).cell_len
        if line and length + 3 + size > width:
            lines.append(line)
            line, length = "", 0
        line, length = (f"{line} · {part}", length + 3 + size) if line else (part, size)
    lines.append(line)
    return "\n".join(lines)


def summary(record: Generation, width: int) -> Text:
    """The record's summary wrapped for `width` (`join_wrapped`); print it with
    `soft_wrap=True`, so Rich does not wrap it again."""
    return Text.from_markup(join_wrapped(summary_parts(record), width))


@dataclass
class Column:
    """One column of a `fitted_table`. `keep`: never dropped nor truncated (ids, amounts).
    Otherwise `drop` orders what goes first when the terminal is narrow (higher first), and
    `flex` columns (free text) shrink with an ellipsis before any is dropped."""

    header: str
    keep: bool = False
    drop: int = 0
    flex: bool = False
    justify: Literal["left", "right"] = "left"
    min_flex: int = 12


def fitted_table(columns: list[Column], rows: list[list[str]], width: int, **table_options: Any) -> Table:
    """A Rich table that fits `width`: `keep` columns always whole (no_wrap, never cropped),
    `flex` columns cut with an ellipsis, and optional columns dropped (highest `drop` first)
    while the table would not fit otherwise."""
    natural = [
        max([Text.from_markup(c.header).cell_len, *(Text.from_markup(r[i]).cell_len for r in rows)])
        for i, c in enumerate(columns)
    ]
    shown = list(range(len(columns)))

    def needed() -> int:
        # Two cells of padding per column (box=None, pad_edge), flex columns at their minimum.
        return sum(min(natural[i], columns[i].min_flex) if columns[i].flex else natural[i] for i in shown) + 2 * len(
            shown
        )

    for index in sorted((i for i, c in enumerate(columns) if not c.keep), key=lambda i: -columns[i].drop):
        if needed() <= width:
            break
        if columns[index].drop > 0:
            shown.remove(index)
    # Widths set here, so Rich never shrinks a column itself: fixed columns get their natural
    # width, flex columns share what is left (the narrowest first, each at most its natural width).
    widths = {i: natural[i] for i in shown if not columns[i].flex}
    flex = sorted((i for i in shown if columns[i].flex), key=lambda i: natural[i])
    left = width - sum(widths.values()) - 2 * len(shown)
    for count, i in enumerate(flex):
        widths[i] = max(1, min(natural[i], left // (len(flex) - count)))
        left -= widths[i]
    fits = left >= 0
    table = Table(box=None, header_style="bold", **table_options)
    for i in shown:
        column = columns[i]
        if column.flex:
            table.add_column(column.header, width=widths[i], overflow="ellipsis", no_wrap=True, justify=column.justify)
        else:
            # Whole on one line; on a terminal too narrow even for these, folded, never cropped.
            table.add_column(column.header, width=widths[i], overflow="fold", no_wrap=fits, justify=column.justify)
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def generations_table(records: list[Generation], width: int) -> Table:
    columns = [
        Column("id", keep=True),
        Column("created (UTC)", drop=4),
        Column("kind", drop=5),
        Column("model", flex=True, min_flex=14),
        Column("status", keep=True),
        Column("tokens in/out", drop=3, justify="right"),
        Column("cost", keep=True, justify="right"),
        Column("prompt", flex=True, drop=1, min_flex=10),
    ]
    rows = []
    for r in records:
        prompt = str(r.request.get("prompt") or r.request.get("summary") or "")
        rows.append(
            [
                r.id,
                when(r.created_at),
                r.kind,
                r.model,
                status(r.status),
                f"{tokens(r.usage.input_tokens)}/{tokens(r.usage.output_tokens)}",
                usd(r.cost_usd),
                prompt.replace("\n", " ")[:200],
            ]
        )
    return fitted_table(columns, rows, width)


def usage_table(rows: list[UsageRow], group_by: str, width: int) -> Table:
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
        "up": sum(r.thumbs_up for r in rows),
        "down": sum(r.thumbs_down for r in rows),
    }
    rated = totals["up"] or totals["down"]
    columns = [
        Column(group_by, keep=True),
        Column("generations", keep=True, justify="right"),
        Column("input", drop=2, justify="right"),
        Column("output", drop=2, justify="right"),
        Column("cached", drop=4, justify="right"),
        Column("reasoning", drop=5, justify="right"),
        Column("cost", keep=True, justify="right"),
        Column("unpriced", drop=1 if totals["unpriced"] else 6, justify="right"),
        Column("cache hits", drop=3, justify="right"),
        Column("saved", drop=3, justify="right"),
        # Generations cut short before the provider sent usage: their tokens and cost are estimates.
        Column("estimated", drop=1 if totals["estimated"] else 6, justify="right"),
        # Feedback (`genvault feedback`): shown when anything in the report was rated.
        Column("thumbs up", drop=3 if rated else 6, justify="right"),
        Column("thumbs down", drop=3 if rated else 6, justify="right"),
    ]
    body = [
        [
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
            f"{r.thumbs_up:,}",
            f"{r.thumbs_down:,}",
        ]
        for r in rows
    ]
    footer = [
        "total",
        f"{totals['generations']:,}",
        f"{totals['input']:,}",
        f"{totals['output']:,}",
        f"{totals['cached']:,}",
        f"{totals['reasoning']:,}",
        row_cost(totals["cost"], totals["generations"], totals["unpriced"]),
        f"{totals['unpriced']:,}",
        f"{totals['hits']:,}",
        "unknown" if totals["hits"] and not totals["saved"] and totals["unpriced"] else usd(totals["saved"]),
        f"{totals['estimated']:,}",
        f"{totals['up']:,}",
        f"{totals['down']:,}",
    ]
    table = fitted_table(columns, [*body, footer], width)
    table.rows[-1].end_section = False
    # The totals row, set apart: the last row gets a rule above it.
    if len(table.rows) > 1:
        table.rows[-2].end_section = True
    return table
