"""Image generations over HTTP: `POST /api/images` → pending record → `303` to `/image/{id}` for a
form, `201` JSON for an API client (follow `/api/generations/{id}` for `image_urls`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict

from genvault.server.bodies import read_form_or_json
from genvault.server.deps import UserDep, VaultDep
from genvault.server.openapi import json_or_form_body

router = APIRouter(tags=["images"])


class ImageCreate(BaseModel):
    """Body of `POST /api/images` (JSON, or a form with the same field names)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    model: str | None = None
    size: str = "auto"
    n: int = 1
    idempotency_key: str | None = None


class ImageCreated(BaseModel):
    id: str
    url: str
    status: str
    image_urls: list[str]


@router.post(
    "/api/images",
    status_code=201,
    response_model=ImageCreated,
    responses={303: {"description": "form posts are redirected to the image page"}},
    openapi_extra=json_or_form_body(ImageCreate),
)
async def create_image(
    request: Request,
    vault: VaultDep,
    user: UserDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Create the pending image record, start the model, and point at the record at once."""
    body, is_form = await read_form_or_json(request, ImageCreate, example='{"prompt": "a red fox"}')
    record = await vault.generate_image(
        body.prompt,
        model=body.model,
        size=body.size,
        n=body.n,
        user_id=user,
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    if is_form:
        return RedirectResponse(record.url, status_code=303)
    created = ImageCreated(id=record.id, url=record.url, status=record.status, image_urls=record.image_urls)
    return JSONResponse(created.model_dump(), status_code=201, headers={"Location": f"/api/generations/{record.id}"})
