"""The models this configuration can call, with their prices: one list for `genvault models`,
`GET /api/models` (the chat page's model picker) and the gateway's `GET /v1/models`.

Invariants:
- A provider's models are listed only when it is configured (its API key is set, or it is the
  offline provider); `show_all` lists the others too, for `genvault models --all`.
- Prices are USD per million tokens at a model's base rate (a tiered price by its lowest tier),
  from `GENVAULT_PRICE_OVERRIDES` first and genai-prices otherwise; `None` is unknown, never 0.
  The offline models are free (`price_source="offline"`).
- Nothing here reveals configuration a user should not see (base URLs, key variables): `how`
  is for the operator's CLI only and stays out of the HTTP answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from genvault import pricing
from genvault.providers.base import StreamUsage
from genvault.providers.images import TEST_IMAGE_MODEL
from genvault.providers.testmodel import TEST_MODEL, TEST_PROVIDER
from genvault.settings import Settings

__all__ = ["CatalogModel", "CatalogProvider", "configured_models", "list_providers"]

ModelKind = Literal["text", "image"]
# genai-prices lists every priced model of a provider; these are not chat models.
_NOT_CHAT = ("embedding", "tts", "whisper", "transcribe", "moderation", "realtime", "audio")
_ONE_TOKEN = StreamUsage(input_tokens=1, output_tokens=1)
_FREE = (Decimal(0), Decimal(0), None, "offline")


@dataclass
class CatalogModel:
    name: str  # provider/model, as `-m`, the `model` field and the picker take it
    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    price_source: str | None = None  # "genai-prices", "override", "offline"; None: no price known
    note: str = ""
    kind: ModelKind = "text"

    @property
    def provider(self) -> str:
        return self.name.partition("/")[0]

    @property
    def priced(self) -> bool:
        return self.input_mtok is not None and self.output_mtok is not None


@dataclass
class CatalogProvider:
    name: str
    configured: bool
    how: str  # what configures it (or what is missing); for the operator
    models: list[CatalogModel] = field(default_factory=list)


def _kind(model_id: str) -> ModelKind | None:
    lowered = model_id.lower()
    if any(word in lowered for word in _NOT_CHAT):
        return None
    return "image" if "image" in lowered or "dall-e" in lowered else "text"


def list_providers(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    show_all: bool = False,
    deprecated: bool = False,
) -> list[CatalogProvider]:
    """Every provider this configuration knows, whether it is configured, and its models."""
    env = os.environ if environ is None else environ
    found: list[CatalogProvider] = [
        CatalogProvider(
            TEST_PROVIDER,
            True,
            "built in, offline",
            [
                CatalogModel(f"{TEST_PROVIDER}/{TEST_MODEL}", *_FREE, note="text, no network"),
                CatalogModel(f"{TEST_PROVIDER}/{TEST_IMAGE_MODEL}", *_FREE, note="images, no network", kind="image"),
            ],
        )
    ]
    for name, variable in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")):
        configured = bool(env.get(variable, "").strip())
        provider = CatalogProvider(name, configured, variable if configured else f"set {variable}")
        if configured or show_all:
            for row in pricing.listed_prices(name):
                kind = _kind(row.model)
                if (row.deprecated and not deprecated) or kind is None:
                    continue
                provider.models.append(
                    CatalogModel(
                        f"{name}/{row.model}",
                        row.input_mtok,
                        row.output_mtok,
                        row.cache_read_mtok,
                        "genai-prices",
                        row.name or "",
                        kind,
                    )
                )
        found.append(provider)
    for name, compatible in sorted(settings.compatible_providers.items()):
        key = compatible.api_key_env
        configured = key is None or bool(env.get(key, "").strip())
        how = f"OpenAI-compatible at {compatible.base_url}" + ("" if configured else f"; set {key}")
        found.append(CatalogProvider(name, configured, how))
    # Overridden prices: listed under their provider (a model genai-prices may not know).
    by_name = {p.name: p for p in found}
    for model_name, price in sorted(settings.price_overrides.items()):
        owner = by_name.get(model_name.partition("/")[0])
        if owner is None:
            continue
        existing = next((m for m in owner.models if m.name == model_name), None)
        if existing is None:
            existing = CatalogModel(model_name)
            owner.models.append(existing)
        existing.input_mtok, existing.output_mtok = price.input_mtok, price.output_mtok
        existing.cache_read_mtok = price.cache_read_mtok
        existing.price_source = "override"
    return found


def _priced(name: str, kind: ModelKind, settings: Settings) -> CatalogModel:
    """A model named by the settings alone (a default), priced as a request to it would be."""
    provider, _, model = name.partition("/")
    if provider == TEST_PROVIDER:
        return CatalogModel(name, *_FREE, kind=kind)
    cost = pricing.compute_cost(provider, model, _ONE_TOKEN, settings.price_overrides)
    entry = CatalogModel(name, kind=kind)
    if cost.unit_prices is not None:
        entry.input_mtok = Decimal(cost.unit_prices["input"])
        entry.output_mtok = Decimal(cost.unit_prices["output"])
        entry.price_source = "override" if cost.source == "override" else "genai-prices"
    return entry


def configured_models(settings: Settings, environ: Mapping[str, str] | None = None) -> list[CatalogModel]:
    """What a client can name here, sorted by name: the configured providers' models, every
    model with a price override, and the default text and image models."""
    models: dict[str, CatalogModel] = {}
    for provider in list_providers(settings, environ):
        for model in provider.models:
            if provider.configured or model.price_source == "override":
                models[model.name] = model
    defaults: tuple[tuple[str, ModelKind], ...] = (
        (settings.default_model, "text"),
        (settings.default_image_model, "image"),
    )
    # Overrides of providers the catalog does not list (one injected into the Vault, say) too.
    named = [*defaults, *((name, "text") for name in settings.price_overrides)]
    for name, kind in named:
        if name not in models:
            models[name] = _priced(name, kind, settings)
    return [models[name] for name in sorted(models)]
