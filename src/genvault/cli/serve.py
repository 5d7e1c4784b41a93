"""`genvault serve`: the HTTP server (uvicorn) on the configured database.

It runs on the allocator `--allocator` names (`genvault.allocator`: jemalloc where
installed), applied by re-executing its own command line with the environment that selects it
(same interpreter, arguments and process id, so signals and the exit status are the command's).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from genvault.allocator import ALLOCATORS, Allocator, allocator_exec
from genvault.cli._app import app, err_console, settings_from, state


def _restart_on(allocator: Allocator) -> None:
    """Re-execute this process on `allocator`; returns when it is to serve as it is (already on
    it, or `serve` called in process by tests or an embedding program, never replaced)."""
    plan = allocator_exec(allocator, os.environ, sys.orig_argv) if state.own_process else None
    if plan is None:
        return
    argv, env = plan
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:  # cannot exec (a sandbox): serve on the allocator it has
        err_console.print(f"genvault: staying on the allocator this process has ({exc})", highlight=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (env GENVAULT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env GENVAULT_PORT)")] = None,
    auth: Annotated[str | None, typer.Option(help="none, api_key or header (env GENVAULT_AUTH)")] = None,
    allocator: Annotated[
        str,
        typer.Option(
            envvar="GENVAULT_ALLOCATOR",
            help=f"Memory allocator, one of {', '.join(ALLOCATORS)}: auto is jemalloc where installed "
            "(it gives a burst's memory back), else Python's own; pymalloc opts out (env GENVAULT_ALLOCATOR)",
        ),
    ] = "auto",
) -> None:
    """Serve the API, the AI SDK chat endpoints and the pages."""
    if allocator not in ALLOCATORS:
        raise typer.BadParameter(f"one of {', '.join(ALLOCATORS)}", param_hint="--allocator")
    settings = settings_from(host=host, port=port, auth=auth)  # a bad setting fails before the restart
    _restart_on(allocator)

    import uvicorn

    from genvault.server import create_app

    err_console.print(
        f"genvault on [bold]http://{settings.host}:{settings.port}[/] · database "
        f"{settings.resolved_database_url.split('@')[-1]} · auth {settings.auth} · default model "
        f"{settings.default_model}",
        highlight=False,
    )
    app_ = create_app(settings, freeze_gc=True, warm_pool=True)
    if app_.state.vault.telemetry is not None:  # the standard OTEL_* variables: see the README
        where = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        content = "with" if app_.state.vault.telemetry.capture_content else "without"
        err_console.print(
            f"OpenTelemetry: a span per generation to {where} ({content} prompts and outputs)", soft_wrap=True
        )
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level="info", proxy_headers=True)
