"""The only place genvault errors become HTTP responses.

JSON routes answer `{"error": {"code", "message"}}`; the AI SDK chat routes answer plain text,
which the `useChat` client shows as `error.message`. No stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from genvault.errors import (
    Busy,
    Conflict,
    Forbidden,
    GenvaultError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    StorageError,
    Unauthorized,
    UnsupportedMediaType,
)
from genvault.server.gateway.errors import gateway_error, is_gateway_path

__all__ = ["ERROR_RESPONSES", "ErrorBody", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[GenvaultError], int]] = [
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (InvalidRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (LimitExceeded, 429),
    (ProviderError, 502),
    (StorageError, 503),
]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every JSON error: a stable `code` and a `message` that says what to do."""

    error: ErrorDetail


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# In the OpenAPI document of every route (the AI SDK chat routes say theirs are plain text).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Bad input (`invalid_request`): the message says what to fix. Nothing was written."),
    401: _documented("No or unknown credentials (`unauthorized`)."),
    403: _documented("Not allowed (`forbidden`)."),
    404: _documented("No such record, or not yours (`not_found`): the two are not told apart."),
    405: _documented("Method not allowed (`method_not_allowed`); the `Allow` header lists the methods."),
    409: _documented("Conflicts with the current state (`conflict`), e.g. a reply already running."),
    413: _documented("The body is larger than the limit (`payload_too_large`)."),
    415: _documented("A media type that is not accepted (`unsupported_media_type`)."),
    422: _documented("The request does not match the schema (`invalid_request`)."),
    502: _documented("The model provider failed (`provider_error`)."),
    503: _documented("The database or another service is unavailable (`storage_error`); retry later."),
}


def status_for(exc: GenvaultError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _wants_text(request: Request) -> bool:
    # useChat reads a failed response with response.text(): give it a readable sentence.
    return request.url.path == "/api/chat" or request.url.path.startswith("/api/chat/")


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    retry_after: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    if retry_after is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_after)}
    if is_gateway_path(request.url.path):
        # The OpenAI or Anthropic shape of the endpoint called, so its SDK raises as usual.
        return gateway_error(request.url.path, 400 if status == 422 else status, code, message, headers)
    if _wants_text(request):
        return PlainTextResponse(message, status_code=status, headers=headers)
    body = {"error": {"code": code, "message": message, **(extra or {})}}
    return JSONResponse(body, status_code=status, headers=headers)


def _limit_response(request: Request, exc: LimitExceeded) -> Response:
    """429 naming the limit, its use and its reset, with `Retry-After` and the IETF draft's
    `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` (seconds) headers."""
    headers = {"RateLimit-Limit": exc.limit_value, "RateLimit-Remaining": "0"}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
        headers["RateLimit-Reset"] = str(exc.retry_after)
    extra = {
        "limit": exc.limit,
        "subject": exc.subject,
        "limit_value": exc.limit_value,
        "used": exc.used,
        "resets_at": exc.resets_at.isoformat() if exc.resets_at else None,
    }
    return error_response(request, 429, exc.code, exc.message, extra=extra, headers=headers)


def _allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    methods: set[str] = set()
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included routers
            methods.update(_allowed_methods(route.original_router.routes, path))
        elif isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods.update(route.methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GenvaultError)
    async def _genvault(request: Request, exc: GenvaultError) -> Response:
        if isinstance(exc, LimitExceeded):
            return _limit_response(request, exc)
        status = status_for(exc)
        if isinstance(exc, Busy):  # expected under saturation: one line per refusal, not a warning
            log.info("%s %s refused: %s", request.method, request.url.path, exc.message)
        elif status >= 500:
            log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
        retry_after = exc.retry_after if isinstance(exc, Busy) else None
        return error_response(request, status, exc.code, exc.message, retry_after=retry_after)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            location = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{location}: {err.get('msg', 'invalid')}")
        return error_response(request, 422, "invalid_request", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        # Keep the exception's headers: a 405 must say what is allowed (`Allow`, RFC 9110 §15.5.6),
        # and every method of the path, where Starlette names only the first route's.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request.app.router.routes, request.url.path))
        return error_response(request, exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "internal server error")
