"""Request bodies that arrive either as JSON (API clients) or as an HTML form (the pages).

A form post wants a `303` redirect to the record's page; a JSON client wants `201` and the
record. Both shapes are validated by the same Pydantic model, so they fail the same way.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from genvault.errors import InvalidRequest
from genvault.server.guard import body_checked
from genvault.validation import loads_json
from genvault.vault import invalid

__all__ = ["FORM_TYPES", "read_form_or_json"]

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

M = TypeVar("M", bound=BaseModel)


async def read_form_or_json(
    request: Request, model: type[M], *, example: str, form_params: tuple[str, ...] = ()
) -> tuple[M, bool]:
    """The body as `model`, and whether it came from a form. Empty form fields count as absent;
    `form_params` are form fields that belong under the model's `params` object."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        form = await request.form()
        data: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
        data.pop("csrf_token", None)  # the page session's CSRF field (server.sessions), not content
        if form_params:
            data["params"] = {k: data.pop(k) for k in form_params if k in data}
        is_form = True
    else:
        raw = await request.body()
        data = loads_json(raw, checked=body_checked(request)) if raw else {}
        if not isinstance(data, dict):
            raise InvalidRequest(f"body must be a JSON object like {example}")
        is_form = False
    try:
        return model.model_validate(data), is_form
    except ValidationError as exc:
        raise invalid(exc, "request") from None
