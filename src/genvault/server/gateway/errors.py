"""Errors in the wire shape of the endpoint called, so each SDK raises its usual exception.

OpenAI-style endpoints answer `{"error": {"message", "type", "param", "code"}}`; `/v1/messages`
answers Anthropic's `{"type": "error", "error": {"type", "message"}}`. The status code is the
one genvault's error maps to (`server/errors.py`), so `openai.BadRequestError`,
`anthropic.AuthenticationError` and the like come out of the SDKs unchanged.
"""

from __future__ import annotations

from typing import Literal

from fastapi.responses import JSONResponse

__all__ = ["failed_generation", "gateway_error", "gateway_error_body", "is_gateway_path"]

Api = Literal["openai", "anthropic"]

_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}


def is_gateway_path(path: str) -> bool:
    return path.startswith("/v1/")


def _api_for(path: str) -> Api:
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def gateway_error(
    path_or_api: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error response of the API at `path_or_api` (a request path, `openai` or `anthropic`)."""
    api = path_or_api if path_or_api in ("openai", "anthropic") else _api_for(path_or_api)
    headers = dict(headers or {})
    if status >= 500:
        # Whatever failed was already retried upstream (the provider layer does); a client SDK
        # retrying would start new generations.
        headers["x-should-retry"] = "false"
    return JSONResponse(gateway_error_body(api, status, code, message), status_code=status, headers=headers)


def gateway_error_body(path_or_api: str, status: int, code: str, message: str) -> dict[str, object]:
    """The error body alone (for ASGI middleware that answers before any route)."""
    api = path_or_api if path_or_api in ("openai", "anthropic") else _api_for(path_or_api)
    if api == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def failed_generation(api: Api, message: str, headers: dict[str, str], status: int | None = None) -> JSONResponse:
    """A non-streamed call whose generation ended without output: the upstream's status when it
    answered with an error (else 502), its message, and the record's id in the headers."""
    code = status if status is not None and 400 <= status <= 599 else 502
    return gateway_error(api, code, "upstream_error", message, headers)
