"""`create_app(settings)`: the FastAPI application. Nothing connects until the app starts."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from genvault.server import gateway
from genvault.server.errors import ERROR_RESPONSES, install_error_handlers
from genvault.server.guard import InputGuard, check_path_ids
from genvault.server.hot_route import TurnFront
from genvault.server.key_scope import KeyScope
from genvault.server.limits import BodySizeLimit
from genvault.server.metrics import Metrics
from genvault.server.routes import (
    chat_stream,
    chats,
    feedback,
    files,
    generations,
    health,
    images,
    limits,
    log_page,
    login,
    models,
    pages,
    search,
    usage,
    users,
    webhooks,
)
from genvault.server.sessions import SameOrigin
from genvault.server.tracing import TraceContext
from genvault.server.warm import warm_asgi
from genvault.settings import Settings
from genvault.vault import Vault

__all__ = ["create_app"]

STATIC = Path(__file__).with_name("static")
# Container allocations (net of frees) between two young collections in `genvault serve` (Python's
# default is 700). 300 streams at 20 tokens/s: 0.9 → 0.2 µs of CPU per token in collections
# (docs/benchmarks.md, "Many slow streams: the per-token path").
YOUNG_COLLECTION_THRESHOLD = 7000


class GenvaultApp(FastAPI):
    """FastAPI with `front` (when set) in front of its whole middleware stack."""

    front: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.front is None else self.front(stack)


def create_app(
    settings: Settings | None = None, *, vault: Vault | None = None, freeze_gc: bool = False, warm_pool: bool = False
) -> FastAPI:
    """The app. Pass a `vault` to share one (tests inject scripted providers that way); otherwise
    the app builds one from `settings` and owns it.

    `freeze_gc` (`genvault serve`'s): once started, the objects that exist then (the imported
    modules, the warmed caches: ~200,000) move out of the cyclic garbage collector's sight
    (`gc.freeze`), so its full collections while hundreds of replies stream visit only what the
    requests made. Each such collection held the event loop for 100-180 ms of CPU at 300 streams
    before (docs/benchmarks.md, issue 15's third round). For a process that owns its interpreter:
    tests and embedding applications leave it off.

    It also raises the young generation's threshold (`YOUNG_COLLECTION_THRESHOLD`), for the same
    reason: a young collection walks every object made since the last one that is still alive,
    and while hundreds of replies stream that is each suspended task's coroutines, futures and
    generator hand-offs (~5,000 objects), so each cost ~1.4 ms whatever triggered it; at Python's
    700 they came every few hundred tokens.

    `warm_pool` (`genvault serve`'s too): on PostgreSQL, the hot paths' connections are opened
    at start (`Store.warm`) instead of by the first turns that need them. A burst of turns on a
    fresh server opened all of them at once, its first turns waiting behind the connects (up to
    280 ms each under 300 streams started over 3 s, docs/benchmarks.md, pgburst). Each is made
    ready for a turn's statements (`warming.ready`: a backend's first turn cost it ~5 ms more
    CPU), and the first-token writer's connection for its mark (`Liveness.warm`). Tests and
    embedding applications leave it off: each app would hold its whole pool open."""
    owned = vault is None
    the_vault = vault or Vault(settings or Settings())
    metrics = Metrics(refusals=the_vault.limits.refusals)
    the_vault.engine.final_listeners.append(metrics.observe_final)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_vault.start()
        if warm_pool:
            await the_vault.store.warm()
            await the_vault.engine.liveness.warm()
        await warm_asgi()  # before the first requests, and before the freeze
        if freeze_gc:
            gc.collect()  # start-up's garbage first: frozen, it would never be freed
            gc.freeze()
            gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            if owned:
                await the_vault.aclose()

    app = GenvaultApp(
        title="genvault",
        summary="Keeps every AI generation: IDs before the call, saved while streaming, resumable.",
        version="0.1.0",
        lifespan=lifespan,
        # Every route, including ones added later: ids in the path meet the id rule.
        dependencies=[Depends(check_path_ids)],
        responses=ERROR_RESPONSES,
        # /docs is served below from assets in the package, never a CDN (the pages' rule); ReDoc
        # would need its script from a CDN, so there is none.
        docs_url=None,
        redoc_url=None,
    )
    app.state.vault = the_vault
    app.state.metrics = metrics
    install_error_handlers(app)
    # genvault's middlewares, innermost first (each wraps the ones before it): the size limit
    # bounds what the guard reads whole; a caller's `traceparent` is the generations' parent; and
    # outermost, a cross-site state-changing request is refused before anything reads it. One
    # list for the app's stack and for the hot route in front of it, so both run the same ones.
    middlewares: list[tuple[Any, dict[str, Any]]] = [
        (InputGuard, {}),
        (BodySizeLimit, {"max_bytes": the_vault.settings.max_body_bytes}),
        (KeyScope, {}),
    ]
    if the_vault.telemetry is not None:
        middlewares.append((TraceContext, {}))
    middlewares.append((SameOrigin, {"public_url": the_vault.settings.public_url}))
    for middleware, options in middlewares:
        app.add_middleware(middleware, **options)

    def genvault_middlewares(endpoint: ASGIApp) -> ASGIApp:
        """The same middlewares, in the same order, around a hot route's endpoint."""
        wrapped = endpoint
        for middleware, options in middlewares:
            wrapped = middleware(wrapped, **options)
        return wrapped

    # `POST /api/chat` past the framework's layers (`server/hot_route.py`), errors still answered
    # by the handlers installed above.
    app.front = lambda stack: TurnFront(stack, genvault_middlewares, app, chat_stream.post_chat_direct)
    # The gateway's routes first: Starlette tries routes in order, and a `/v1` call (the busiest
    # path) otherwise compared its path with every route above it. None of theirs is under /v1.
    app.include_router(gateway.router)
    routers = (chat_stream, chats, feedback, files, generations, images, limits, models, search, usage, users, webhooks)
    for module in (*routers, health, login, log_page, pages):
        app.include_router(module.router)
    # In front of all: the three /v1 generation calls as plain Starlette routes to the same
    # endpoints; their `APIRoute`s stay behind for the schema. (A chat turn's POST does not reach
    # the routes at all: `TurnFront` takes it first.)
    app.router.routes[:0] = gateway.fast_routes()
    _offline_docs(app)  # before /static, whose mount would answer /static/swagger-ui/... first
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at `/docs`, its script and style from the `swagger-ui-bundle-v2` package."""
    app.mount("/static/swagger-ui", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        html = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            oauth2_redirect_url=redirect,
        )
        # Screen readers need the page's language (axe: html-has-lang); FastAPI's page has none.
        body = bytes(html.body).replace(b"<html>", b'<html lang="en">', 1)
        return HTMLResponse(body, status_code=html.status_code)

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
