"""Each request's API key lives in `genvault.limits.acting_key` for that request only.

The auth dependency sets it where the endpoint (and the engine's admission) can see it; this
middleware resets it when the request ends, so it never outlives the request, even where the app
runs in its caller's task (in-process clients, tests) and shares its context.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from genvault.limits import acting_key

__all__ = ["KeyScope"]


class KeyScope:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = acting_key.set(None)
        try:
            await self.app(scope, receive, send)
        finally:
            acting_key.reset(token)
