"""Text generations over HTTP: generate-then-redirect, records, replayable streams, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from genvault.errors import InvalidRequest
from genvault.feedback import Rating
from genvault.records import Generation, Page
from genvault.server.bodies import read_form_or_json
from genvault.server.deps import UserDep, VaultDep
from genvault.server.openapi import SSE_RESPONSE, json_or_form_body
from genvault.server.routes.search import search_scope
from genvault.server.streaming import ui_message_stream_response

router = APIRouter(tags=["generations"])


class GenerateCreate(BaseModel):
    """Body of `POST /api/generate` (JSON, or a form with the same field names)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    model: str | None = None
    system: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    # `false`: always call the model; `cache_ttl`: reuse an identical answer at most this old (s).
    cache: bool = True
    cache_ttl: float | None = Field(default=None, gt=0)
    # Labels (`genvault.labels`): short strings, and a small JSON object.
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class LabelsUpdate(BaseModel):
    """Body of `PATCH /api/generations/{id}`: what is given replaces; `[]` / `{}` clear."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class GenerateCreated(BaseModel):
    id: str
    url: str
    status: str


@router.post(
    "/api/generate",
    status_code=201,
    response_model=GenerateCreated,
    responses={303: {"description": "form posts are redirected to the record's page"}},
    openapi_extra=json_or_form_body(GenerateCreate),
)
async def create_generation(
    request: Request,
    vault: VaultDep,
    user: UserDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Create the pending record, start the generation, and point at it at once."""
    body, is_form = await read_form_or_json(
        request, GenerateCreate, example='{"prompt": "..."}', form_params=("temperature", "max_tokens")
    )
    record = await vault.generate(
        body.prompt,
        model=body.model,
        system=body.system,
        params=body.params,
        user_id=user,
        idempotency_key=body.idempotency_key or idempotency_key,
        cache=body.cache,
        cache_ttl=body.cache_ttl,
        tags=body.tags,
        metadata=body.metadata,
    )
    if is_form:
        return RedirectResponse(record.url, status_code=303)
    created = GenerateCreated(id=record.id, url=record.url, status=record.status)
    return JSONResponse(created.model_dump(), status_code=201, headers={"Location": f"/api/generations/{record.id}"})


@router.get("/api/generations", response_model=Page[Generation])
async def list_generations(
    vault: VaultDep,
    user: UserDep,
    model: str | None = None,
    status: Literal["pending", "streaming", "complete", "error", "cancelled", "interrupted"] | None = None,
    kind: Literal["text", "chat", "image", "embedding"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
    q: Annotated[str | None, Query(description="only records whose prompt or output matches this search")] = None,
    tag: Annotated[str | None, Query(description="only records carrying this tag")] = None,
    who: Annotated[str | None, Query(alias="user", description="admins: another user's id, or * for everyone")] = None,
) -> Page[Generation]:
    return await vault.list_generations(
        user_id=await search_scope(vault, user, who),
        model=model,
        status=status,
        kind=kind,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
        q=q,
        tag=tag,
    )


class GenerationPublic(Generation):
    """A record as `GET /api/generations/{id}` answers it: with your rating of it, if any."""

    feedback: Rating | None = None


@router.get("/api/generations/{generation_id}", response_model=GenerationPublic)
async def get_generation(generation_id: str, vault: VaultDep, user: UserDep) -> GenerationPublic:
    record = await vault.get_generation(generation_id, user_id=user)
    rating = await vault.feedback.generation_rating(generation_id, user_id=user)
    return GenerationPublic.model_validate({**record.model_dump(), "feedback": rating})


@router.patch(
    "/api/generations/{generation_id}", response_model=Generation, openapi_extra=json_or_form_body(LabelsUpdate)
)
async def update_generation_labels(generation_id: str, request: Request, vault: VaultDep, user: UserDep) -> Generation:
    """Replace the record's `tags` and/or `metadata` (any status); bad labels: 400, nothing written."""
    body, _ = await read_form_or_json(request, LabelsUpdate, example='{"tags": ["eval"], "metadata": {"run": 7}}')
    return await vault.update_labels(generation_id, tags=body.tags, metadata=body.metadata, user_id=user)


@router.get("/api/generations/{generation_id}/stream", response_class=Response, responses=SSE_RESPONSE)
async def stream_generation(
    generation_id: str,
    vault: VaultDep,
    user: UserDep,
    start: Annotated[int, Query(alias="from", ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """The UI message stream from chunk `from`: replay, then live until the end. A finished
    generation replays from its stored record. Each event carries `id: N` (its chunk's index), so
    an `EventSource` that reconnects with `Last-Event-ID: N` resumes at chunk N + 1."""
    if last_event_id is not None:
        if not last_event_id.strip().isascii() or not last_event_id.strip().isdecimal():
            raise InvalidRequest(f"Last-Event-ID must be a chunk index (a whole number), got {last_event_id[:40]!r}")
        start = int(last_event_id) + 1
    await vault.get_generation(generation_id, user_id=user)
    return ui_message_stream_response(
        vault.replay(generation_id, start=start, user_id=user), compat=vault.settings.stream_compat, first_id=start
    )


@router.post("/api/generations/{generation_id}/cancel", response_model=Generation)
async def cancel_generation(generation_id: str, vault: VaultDep, user: UserDep) -> Generation:
    return await vault.cancel(generation_id, user_id=user)
