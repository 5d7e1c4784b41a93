"""The input guard: bad bytes are refused at the door, for every route, before any route runs.

- The path and the query string must be valid UTF-8 once percent-decoded and hold no control
  character (NUL included): PostgreSQL cannot compare text with U+0000, so a `%00` in an id, a
  filter or a cursor would otherwise reach the database and fail there (503), while SQLite
  answered something else.
- A JSON body (`application/json`, `…+json`) must be UTF-8 and nest at most `MAX_JSON_DEPTH`
  deep. The depth is found by scanning the bytes, before any parser recurses into them. A
  url-encoded form must be UTF-8 once percent-decoded (Starlette would quietly decode it as
  Latin-1 and store the mojibake).

Everything refused here is a 400 that names the problem, in the route's error shape (plain text
on the AI SDK chat routes, `{"error": …}` elsewhere). Ids' length and characters are checked by
`check_path_ids` (a dependency of every route) and by the `Vault` itself.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genvault.errors import PayloadTooLarge
from genvault.server.gateway.errors import gateway_error_body, is_gateway_path
from genvault.validation import MAX_JSON_DEPTH, check_id, check_user_id, find_bad_char, json_depth_exceeds

__all__ = ["InputGuard", "body_checked", "check_path_ids", "checked_body", "send_error"]

# Set in the scope of a request whose JSON body passed the guard: the body as the guard read it
# whole (what a route's `request.body()` would read again from the replayed message). Its
# presence says the body was checked: routes need not check it again.
_BODY = "genvault.json_body"


def body_checked(request: Request) -> bool:
    return _BODY in request.scope


def checked_body(scope: Scope) -> bytes | None:
    """The JSON body this guard read whole and checked, or None (not checked here: read it)."""
    body: bytes | None = scope.get(_BODY)
    return body


_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _is_chat_route(path: str) -> bool:
    return path == "/api/chat" or path.startswith("/api/chat/")


async def send_error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Answer an error from ASGI middleware, in the shape the route's clients read."""
    path = scope.get("path", "")
    if _is_chat_route(path):
        body, content_type = message.encode(), b"text/plain; charset=utf-8"
    elif is_gateway_path(path):  # the OpenAI or Anthropic shape, so the client's SDK raises as usual
        body, content_type = json.dumps(gateway_error_body(path, status, code, message)).encode(), b"application/json"
    else:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _url_problem(scope: Scope) -> str | None:
    raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode()
    for what, raw in (("the path", raw_path), ("the query string", scope.get("query_string", b""))):
        try:
            text = unquote_to_bytes(raw.replace(b"+", b" ") if what == "the query string" else raw).decode("utf-8")
        except UnicodeDecodeError:
            return f"{what} is not valid UTF-8 once percent-decoded; encode it as UTF-8"
        bad = find_bad_char(text)
        if bad is not None:
            return f"{what} contains the control character U+{ord(bad):04X}; ids, keys and filters cannot hold one"
    return None


def _checked_kind(scope: Scope) -> str | None:
    """ "json" or "form" for the bodies the guard checks, None for the rest (uploads: any bytes)."""
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            media: bytes = value.split(b";")[0].strip().lower()
            if media == b"application/json" or media.endswith(b"+json"):
                return "json"
            return "form" if media == b"application/x-www-form-urlencoded" else None
    return None


class InputGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _url_problem(scope)
        if problem is not None:
            await send_error(scope, send, 400, "invalid_request", problem)
            return
        kind = _checked_kind(scope)
        if scope.get("method") not in _BODY_METHODS or kind is None:
            await self.app(scope, receive, send)
            return
        # Read the JSON body whole (the size limit outside this bounds it), check it, hand it on.
        chunks: list[bytes] = []
        while True:
            try:
                message = await receive()
            except PayloadTooLarge as exc:  # from the size limit outside, which the app would map
                await send_error(scope, send, 413, exc.code, exc.message)
                return
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _body_problem(body) if kind == "json" else _form_problem(body)
        if problem is not None:
            await send_error(scope, send, 400, "invalid_request", problem)
            return
        if kind == "json":
            scope[_BODY] = body
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _body_problem(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}); send UTF-8 JSON"
    if json_depth_exceeds(body):
        return f"the body nests arrays and objects more than {MAX_JSON_DEPTH} deep; flatten it"
    return None


def _form_problem(body: bytes) -> str | None:
    try:
        unquote_to_bytes(body.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return "the form is not valid UTF-8 once percent-decoded; send its fields encoded as UTF-8"
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def check_path_ids(request: Request) -> None:
    """Every id in the route's path by the id rule (users' ids by theirs): a dependency of every
    route, so a route added later is covered too. (`async` with nothing to await: FastAPI runs a
    plain `def` dependency in a worker thread, a hop on every request.)"""
    params: dict[str, Any] = request.path_params
    for name, value in params.items():
        if name == "user_id":
            check_user_id(value)
        elif name.endswith("_id"):
            check_id(value, name.replace("_", " "))
