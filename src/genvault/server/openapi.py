"""What the OpenAPI document says about bodies the routes read themselves.

Some routes parse their body by hand (the chat route for speed and precise messages; the create
routes because they take a form or JSON; uploads because they take any bytes), so FastAPI cannot
see it. These helpers describe those bodies, and the SSE responses, from the same Pydantic models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from genvault.server.errors import ERROR_RESPONSES

__all__ = ["SSE_RESPONSE", "TEXT_ERRORS", "json_body", "json_or_form_body"]

# A UI message stream (AI SDK v5): `data: {chunk}` events, then `data: [DONE]`.
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The AI SDK UI message stream: one `data: {chunk JSON}` event per chunk, then `data: [DONE]`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

# The AI SDK chat routes answer errors as a plain sentence, which `useChat` shows as is.
TEXT_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": response["description"].split(" (`")[0] + " (plain text, shown by `useChat` as is).",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    for status, response in ERROR_RESPONSES.items()
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": _schema(model)}}}}


def json_or_form_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = _schema(model)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }
