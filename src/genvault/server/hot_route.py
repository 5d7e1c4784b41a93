"""`POST /api/chat` from the server straight to its endpoint, past the framework's layers.

Every request through the FastAPI app passes ServerErrorMiddleware, FastAPI's telemetry and body
limit layers, genvault's middlewares, ExceptionMiddleware, FastAPI's exit stack, the router and
the route's own exception wrapper; three of those wrap `send`, so each SSE frame of a reply went
through three more closures. A chat turn is the busiest route and needs none of it: `TurnFront`
sits in front of the app's whole stack and hands that one route to the same genvault
middlewares (same-origin, trace context when telemetry is on, key scope, body size, input guard:
the same classes, in the same order) and then to the endpoint, whose errors it answers with the
app's own exception handlers (so a 400, 409, 429 or 503 reads exactly as before). Every other
request goes to the app's stack unchanged.

The reply is sent by `send_following` rather than Starlette's `StreamingResponse.__call__`,
which under uvicorn's ASGI spec 2.3 opens an anyio task group with a second task per response to
listen for the disconnect. Here one plain asyncio task listens and cancels the response's own
task when the client goes: the follower stops, and the generation, which belongs to the engine,
carries on (as before). A reply this process runs is followed in its hub with a sink
(`streaming.HubReply`, `streaming.DirectSend`): once the response has sent what was published, the
generation's task writes each later token to the client itself, without waking this one.

That sink calls the server's `send` from the generation's task. Nothing between the server and
this endpoint wraps `send` (`TurnFront` is the app's outermost layer, and genvault's middlewares
pass it on as they got it; tested), so no wrapper's context variables are involved here; a
wrapper outside the app would see the generation task's context, a copy of this request's taken
when the turn started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from genvault.server.streaming import DirectSend, HubReply, LastFrame

__all__ = ["TurnFront", "send_following"]

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class TurnFront:
    """In front of the app's stack: `POST /api/chat` to `chain` (the genvault middlewares around
    `TurnFront.endpoint`), everything else to `stack`."""

    def __init__(self, stack: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp], app: FastAPI, endpoint: Endpoint) -> None:
        self.stack = stack
        self.app = app
        self.endpoint = endpoint
        self.chain = wrap(self._endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/chat" and scope["method"] == "POST":
            await self.chain(scope, receive, send)
        else:
            await self.stack(scope, receive, send)

    async def _endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handler, last_resort = self._handler_for(exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            await (answer if isinstance(answer, Response) else await answer)(scope, receive, send)
            if last_resort:
                raise  # as ServerErrorMiddleware does: the server logs it too
            return
        if type(response) is StreamingResponse:
            await send_following(response, scope, receive, send)
        else:
            await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> tuple[Handler | None, bool]:
        """The app's handler for `exc` as Starlette looks it up (by the exception's classes, most
        specific first); True when it is the catch-all `Exception` one (a 500)."""
        handlers: dict[Any, Handler] = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls], cls is Exception
        return None, False


async def send_following(response: StreamingResponse, scope: Scope, receive: Receive, send: Send) -> None:
    """`response` (a reply's SSE stream) sent to the end, or until the client disconnects: then
    this task is cancelled out of the follower, and returns normally."""
    task = asyncio.current_task()
    assert task is not None
    state = {"sending": True, "gone": False}
    iterator = response.body_iterator
    direct: DirectSend | None = None
    if type(iterator) is HubReply:  # a token's event written by the generation's task (`DirectSend`)
        iterator, direct = iterator.writing_to(send)
        send = direct.send

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if state["sending"]:
            state["gone"] = True
            if direct is not None:
                direct.stop()  # now, not when the cancel reaches the response: nothing more is written
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        ended = False
        async for chunk in iterator:
            if type(chunk) is LastFrame:  # `[DONE]`: with the end of the body, in one write
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                ended = True
                break
            body = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(response.charset)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not state["gone"]:
            raise
        task.uncancel()  # ours, for the disconnect: the request ends normally
    finally:
        state["sending"] = False
        watcher.cancel()
        if direct is not None:
            direct.stop()
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()  # the follower's own cleanup, when it stopped at a send
    if response.background is not None:
        await response.background()
