"""`GET /v1/models` (the models this server is configured for, with prices where known) and
`POST /v1/images/generations` (OpenAI Images, over genvault's image generations).

`POST /v1/embeddings` is in `embeddings.py`.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from genvault.errors import InvalidRequest, NotFound, ProviderError
from genvault.money import usd_text
from genvault.server.deps import VaultDep
from genvault.server.gateway._common import GENERATION_HEADER, gateway_user, read_body, require
from genvault.vault import Vault

__all__ = ["configured_models", "router"]

router = APIRouter(tags=["gateway"])


def configured_models(vault: Vault) -> list[dict[str, Any]]:
    """The models a client can name here (`genvault.catalog`), OpenAI-shaped, each with its
    USD-per-million-token prices when genvault knows them."""
    models = []
    for model in vault.models():
        entry: dict[str, Any] = {"id": model.name, "object": "model", "created": 0, "owned_by": model.provider}
        if model.input_mtok is not None and model.output_mtok is not None:
            entry["pricing"] = {
                "input": usd_text(model.input_mtok),
                "output": usd_text(model.output_mtok),
                "currency": "USD",
                "per": "1M tokens",
                "source": model.price_source,
            }
        models.append(entry)
    return models


@router.get("/v1/models")
async def list_models(request: Request, vault: VaultDep) -> JSONResponse:
    await gateway_user(request, vault)
    return JSONResponse({"object": "list", "data": configured_models(vault)})


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request, vault: VaultDep) -> JSONResponse:
    """One configured model (the SDKs' `models.retrieve`); its name may hold slashes."""
    await gateway_user(request, vault)
    for entry in configured_models(vault):
        if entry["id"] == model:
            return JSONResponse(entry)
    raise NotFound(f"no model {model[:200]!r} is configured here; GET /v1/models lists them")


@router.post("/v1/images/generations")
async def generate_images(request: Request, vault: VaultDep) -> JSONResponse:
    """OpenAI Images: the record is made first (`X-Genvault-Generation-Id`), the images are kept in
    the blob store and answered as permanent URLs or, with `response_format: b64_json`, inline."""
    user = await gateway_user(request, vault)
    body = await read_body(request)
    prompt, size, n = body.get("prompt"), body.get("size") or "auto", body.get("n", 1)
    require(isinstance(prompt, str), "prompt is required")
    response_format = body.get("response_format") or "url"
    require(response_format in ("url", "b64_json"), "response_format must be url or b64_json")
    record = await vault.generate_image(
        str(prompt),
        model=body.get("model"),
        size=size,
        n=n,
        user_id=user,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    headers = {GENERATION_HEADER: record.id}
    record = await vault.wait(record.id, user_id=user)
    if record.status != "complete":
        raise ProviderError(record.error or f"the image generation ended {record.status}")
    data: list[dict[str, Any]] = []
    if response_format == "url":
        base = str(request.base_url).rstrip("/")
        data = [{"url": url if url.startswith("http") else base + url} for url in record.image_urls]
    else:
        for file in await vault.generation_files(record.id, user_id=user):
            raw = await vault.read_file(file.id, user_id=user)
            data.append({"b64_json": base64.b64encode(raw).decode("ascii")})
    if not data:
        raise InvalidRequest("the model made no image for this prompt")
    return JSONResponse({"created": int(time.time()), "data": data}, headers=headers)
