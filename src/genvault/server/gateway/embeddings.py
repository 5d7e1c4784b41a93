"""`POST /v1/embeddings` (OpenAI Embeddings) over genvault's embedding generations: the record
is committed before the upstream call (`X-Genvault-Generation-Id`), the vectors are kept in it,
and an identical request is answered from the dedup cache."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from genvault.embeddings import decode_vector, embedding_result
from genvault.server.deps import VaultDep
from genvault.server.gateway._common import (
    GENERATION_HEADER,
    Started,
    call_options,
    drain,
    gateway_user,
    read_body,
    require,
)
from genvault.server.gateway.errors import failed_generation

__all__ = ["router"]

router = APIRouter(tags=["gateway"])


@router.post("/v1/embeddings")
async def create_embeddings(request: Request, vault: VaultDep) -> JSONResponse:
    user = await gateway_user(request, vault)
    body = await read_body(request)
    model = body.get("model")
    require(isinstance(model, str) and bool(model.strip()), "model is required (e.g. offline/test-embedding)")
    require("input" in body, "input is required: a string, a list of strings, or token ids")
    encoding = body.get("encoding_format") or "float"
    require(encoding in ("float", "base64"), "encoding_format must be float or base64")
    dimensions = body.get("dimensions")
    require(
        dimensions is None or (isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0),
        "dimensions must be a positive integer",
    )
    cache, tags, metadata = call_options(request)
    record = await vault.embed(
        body["input"],
        model=str(model),
        dimensions=dimensions,
        user_id=user,
        idempotency_key=request.headers.get("idempotency-key"),
        cache=cache,
        tags=tags,
        metadata=metadata,
        request_json=body,
    )
    headers = {GENERATION_HEADER: record.id}
    # Follow it to the end, as the other non-streamed calls do: a provider error's HTTP status is
    # known only while the run is here.
    chunks = vault.follow_here(record.id, user_id=None) or vault.replay(record.id, user_id=None)
    status = await drain(vault, Started(record, chunks), lambda _chunk: None)
    final = await vault.wait(record.id, user_id=user)
    if final.status != "complete":
        return failed_generation("openai", final.error or f"the embedding call ended {final.status}", headers, status)
    vectors = embedding_result(final)
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": i, "embedding": v if encoding == "base64" else decode_vector(v)}
        for i, v in enumerate(vectors)
    ]
    tokens = final.usage.input_tokens or 0
    answer = {
        "object": "list",
        "data": data,
        "model": final.model.partition("/")[2] or final.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": final.usage.total_tokens or tokens},
    }
    return JSONResponse(answer, headers=headers)
