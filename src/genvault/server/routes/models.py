"""`GET /api/models`: the models a user can pick (the chat page's model picker), with prices.

The same list as `genvault models` and the gateway's `GET /v1/models` (`genvault.catalog`),
shaped for the pages: money as decimal strings, an unknown price as null (never "0").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from genvault.catalog import CatalogModel
from genvault.money import usd_text
from genvault.server.deps import UserDep, VaultDep

router = APIRouter(tags=["models"])


class ModelPrice(BaseModel):
    input_mtok: str
    output_mtok: str
    cache_read_mtok: str | None
    currency: Literal["USD"] = "USD"
    source: str


class ModelPublic(BaseModel):
    id: str  # provider/model: the `model` field of POST /api/chat and /api/generate
    provider: str
    kind: Literal["text", "image", "embedding"]
    name: str | None
    # USD per million tokens at the base rate; null when genvault knows no price.
    price: ModelPrice | None

    @classmethod
    def of(cls, model: CatalogModel) -> ModelPublic:
        price = None
        if model.input_mtok is not None and model.output_mtok is not None:
            price = ModelPrice(
                input_mtok=_money(model.input_mtok),
                output_mtok=_money(model.output_mtok),
                cache_read_mtok=None if model.cache_read_mtok is None else _money(model.cache_read_mtok),
                source=model.price_source or "unknown",
            )
        return cls(id=model.name, provider=model.provider, kind=model.kind, name=model.note or None, price=price)


class ModelsList(BaseModel):
    default_model: str
    default_image_model: str
    models: list[ModelPublic]


def _money(value: Decimal) -> str:
    return usd_text(value)


@router.get("/api/models", response_model=ModelsList)
async def list_models(vault: VaultDep, user: UserDep) -> ModelsList:
    """The models this server is configured for: the offline ones, those of every provider
    whose API key is set, the defaults and every model with a price override. Any
    OpenAI-compatible server's models can also be named as `provider/model`."""
    del user  # signed in to see it, like every /api route
    return ModelsList(
        default_model=vault.settings.default_model,
        default_image_model=vault.settings.default_image_model,
        models=[ModelPublic.of(m) for m in vault.models()],
    )
