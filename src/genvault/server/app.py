"""`create_app(settings)`: the FastAPI application. Nothing connects until the app starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from genvault.server import gateway
from genvault.server.errors import ERROR_RESPONSES, install_error_handlers
from genvault.server.guard import InputGuard, check_path_ids
from genvault.server.key_scope import KeyScope
from genvault.server.limits import BodySizeLimit
from genvault.server.metrics import Metrics
from genvault.server.routes import (
    chat_stream,
    chats,
    files,
    generations,
    health,
    images,
    limits,
    pages,
    search,
    usage,
    users,
)
from genvault.settings import Settings
from genvault.vault import Vault

__all__ = ["create_app"]

STATIC = Path(__file__).with_name("static")


def create_app(settings: Settings | None = None, *, vault: Vault | None = None) -> FastAPI:
    """The app. Pass a `vault` to share one (tests inject scripted providers that way); otherwise
    the app builds one from `settings` and owns it."""
    owned = vault is None
    the_vault = vault or Vault(settings or Settings())
    metrics = Metrics(refusals=the_vault.limits.refusals)
    the_vault.engine.listeners.append(metrics.observe)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_vault.start()
        try:
            yield
        finally:
            if owned:
                await the_vault.aclose()

    app = FastAPI(
        title="genvault",
        summary="Keeps every AI generation: IDs before the call, saved while streaming, resumable.",
        version="0.1.0",
        lifespan=lifespan,
        # Every route, including ones added later: ids in the path meet the id rule.
        dependencies=[Depends(check_path_ids)],
        responses=ERROR_RESPONSES,
    )
    app.state.vault = the_vault
    app.state.metrics = metrics
    install_error_handlers(app)
    # Outermost last: the size limit bounds what the guard reads whole.
    app.add_middleware(InputGuard)
    app.add_middleware(BodySizeLimit, max_bytes=the_vault.settings.max_body_bytes)
    app.add_middleware(KeyScope)
    for module in (chat_stream, chats, files, generations, images, limits, search, usage, users, health, pages):
        app.include_router(module.router)
    app.include_router(gateway.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
