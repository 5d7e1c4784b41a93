"""`genvault models`: the providers this configuration can call, their models and prices."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated

import typer

from genvault.cli._app import app, console, settings_from
from genvault.cli._render import Column, fitted_table
from genvault.money import usd_label

__all__ = ["models"]


def _price(value: Decimal | None) -> str:
    return "-" if value is None else usd_label(value)


@app.command()
def models(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list the models of providers that are not configured")
    ] = False,
    deprecated: Annotated[bool, typer.Option("--deprecated", help="Include deprecated models")] = False,
    query: Annotated[str | None, typer.Argument(help="Only models whose name contains this")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one provider each")] = False,
) -> None:
    """The providers this configuration can call and their models, with prices per million
    tokens (from genai-prices, or GENVAULT_PRICE_OVERRIDES). OpenAI-compatible servers
    (GENVAULT_COMPATIBLE_PROVIDERS) serve whatever models they have: use provider/model with any."""
    from genvault.catalog import list_providers

    providers = list_providers(settings_from(), show_all=show_all, deprecated=deprecated)
    if query:
        for provider in providers:
            provider.models = [m for m in provider.models if query.lower() in m.name.lower()]
    if as_json:
        for provider in providers:
            console.out(json.dumps(asdict(provider), default=str), highlight=False)
        return
    columns = [
        Column("model", keep=True),
        Column("input", keep=True, justify="right"),
        Column("output", keep=True, justify="right"),
        Column("cached input", drop=2, justify="right"),
        Column("price from", drop=1),
        Column("", flex=True, drop=3),
    ]
    for provider in providers:
        state = "[green]configured[/]" if provider.configured else "[dim]not configured[/]"
        console.print(f"[bold]{provider.name}[/] · {state} · {provider.how}", highlight=False)
        if not provider.models:
            if provider.configured and provider.how.startswith("OpenAI-compatible"):
                console.print(f"  any model it serves: -m {provider.name}/MODEL", highlight=False)
            elif not provider.configured:
                console.print("  [dim](--all lists its models)[/]", highlight=False)
            continue
        rows = [
            [
                m.name,
                _price(m.input_mtok),
                _price(m.output_mtok),
                _price(m.cache_read_mtok),
                m.price_source or "-",
                m.note,
            ]
            for m in provider.models
        ]
        console.print(fitted_table(columns, rows, console.width))
    console.print("[dim]prices in USD per million tokens[/]", highlight=False)
