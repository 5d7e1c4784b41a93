"""The only place genvault errors become HTTP responses.

JSON routes answer `{"error": {"code", "message"}}`; the AI SDK chat routes answer plain text,
which the `useChat` client shows as `error.message`. No stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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

__all__ = ["error_response", "install_error_handlers", "status_for"]

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
    *,
    retry_after: int | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if _wants_text(request):
        return PlainTextResponse(message, status_code=status, headers=headers or None)
    body = {"error": {"code": code, "message": message, **(extra or {})}}
    return JSONResponse(body, status_code=status, headers=headers or None)


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GenvaultError)
    async def _genvault(request: Request, exc: GenvaultError) -> Response:
        if isinstance(exc, LimitExceeded):
            return _limit_response(request, exc)
        status = status_for(exc)
        if status >= 500:
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
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "internal server error")
