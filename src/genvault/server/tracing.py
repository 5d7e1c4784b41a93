"""Join the caller's trace: a W3C `traceparent` (and `tracestate`, `baggage`) on any request
becomes the current OpenTelemetry context while the request is handled, so a generation it
starts has its span inside the caller's trace (`genvault.telemetry`). Installed only when
telemetry is on. Pure ASGI, so the context reaches the route in the same task.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TraceContext"]


class TraceContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if "traceparent" not in carrier:
            await self.app(scope, receive, send)
            return
        from opentelemetry import context, propagate

        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
