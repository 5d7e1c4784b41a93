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
    app_ = create_app(settings, freeze_gc=True)
    if app_.state.vault.telemetry is not None:  # the standard OTEL_* variables: see the README
        import os

        where = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        content = "with" if app_.state.vault.telemetry.capture_content else "without"
        err_console.print(
            f"OpenTelemetry: a span per generation to {where} ({content} prompts and outputs)", soft_wrap=True
        )
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level="info", proxy_headers=True)
