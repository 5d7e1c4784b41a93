"""`genvault models`: the providers this configuration can call, their models and prices."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Annotated

import typer

from genvault.cli._app import app, console, settings_from
from genvault.cli._render import Column, fitted_table

__all__ = ["models"]


@dataclass
class _Model:
    name: str  # provider/model, as `-m` takes it
    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    price_source: str | None = None
    note: str = ""


@dataclass
class _Provider:
    name: str
    configured: bool
    how: str  # what configures it (or what is missing)
    models: list[_Model] = field(default_factory=list)


def _price(value: Decimal | None) -> str:
    return "-" if value is None else f"${value.normalize():f}"


def _providers(show_all: bool, deprecated: bool) -> list[_Provider]:
    from genvault.pricing import listed_prices
    from genvault.providers.images import TEST_IMAGE_MODEL
    from genvault.providers.testmodel import TEST_MODEL, TEST_PROVIDER

    settings = settings_from()
    overrides = settings.price_overrides
    found: list[_Provider] = [
        _Provider(
            TEST_PROVIDER,
            True,
            "built in, offline",
            [
                _Model(f"{TEST_PROVIDER}/{TEST_MODEL}", note="text, no network"),
                _Model(f"{TEST_PROVIDER}/{TEST_IMAGE_MODEL}", note="images, no network"),
            ],
        )
    ]
    for name, variable in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")):
        configured = bool(os.environ.get(variable, "").strip())
        provider = _Provider(name, configured, variable if configured else f"set {variable}")
        if configured or show_all:
            for row in listed_prices(name):
                if row.deprecated and not deprecated:
                    continue
                provider.models.append(
                    _Model(
                        f"{name}/{row.model}",
                        row.input_mtok,
                        row.output_mtok,
                        row.cache_read_mtok,
                        "genai-prices",
                        row.name or "",
                    )
                )
        found.append(provider)
    for name, compatible in sorted(settings.compatible_providers.items()):
        key = compatible.api_key_env
        configured = key is None or bool(os.environ.get(key, "").strip())
        how = f"OpenAI-compatible at {compatible.base_url}" + ("" if configured else f"; set {key}")
        found.append(_Provider(name, configured, how))
    # Overridden prices: listed under their provider (a model genai-prices may not know).
    by_name = {p.name: p for p in found}
    for model_name, price in sorted(overrides.items()):
        provider_name = model_name.partition("/")[0]
        owner = by_name.get(provider_name)
        if owner is None:
            continue
        existing = next((m for m in owner.models if m.name == model_name), None)
        if existing is None:
            existing = _Model(model_name)
            owner.models.append(existing)
        existing.input_mtok, existing.output_mtok = price.input_mtok, price.output_mtok
        existing.cache_read_mtok = price.cache_read_mtok
        existing.price_source = "override"
    return found


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
    providers = _providers(show_all, deprecated)
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
