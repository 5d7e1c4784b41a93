"""`genvault serve`: the HTTP server (uvicorn) on the configured database."""

from __future__ import annotations

from typing import Annotated

import typer

from genvault.cli._app import app, err_console, settings_from


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (env GENVAULT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env GENVAULT_PORT)")] = None,
    auth: Annotated[str | None, typer.Option(help="none, api_key or header (env GENVAULT_AUTH)")] = None,
) -> None:
    """Serve the API, the AI SDK chat endpoints and the pages."""
    import uvicorn

    from genvault.server import create_app

    settings = settings_from(host=host, port=port, auth=auth)
    err_console.print(
        f"genvault on [bold]http://{settings.host}:{settings.port}[/] · database "
        f"{settings.resolved_database_url.split('@')[-1]} · auth {settings.auth} · default model "
        f"{settings.default_model}",
        highlight=False,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", proxy_headers=True)
