"""`genvault serve`: the HTTP server (uvicorn) on the configured database."""

from __future__ import annotations

import os
import sys
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
    _on_the_system_allocator()
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


def _on_the_system_allocator() -> None:
    """Run the server with `PYTHONMALLOC=malloc` (re-executing itself once, same pid) unless the
    environment chose an allocator. Python's own small-object allocator keeps a 1 MiB arena as long
    as one object in it lives, so after a burst of streams the process stayed ~30 MB above its
    start however little it still held; on glibc's allocator the quiet-time `malloc_trim`
    (`genvault.liveness.memory`) gives it back (docs/benchmarks.md, "Many slow streams at once").
    `PYTHONMALLOC=pymalloc` keeps Python's."""
    if "PYTHONMALLOC" in os.environ or not sys.platform.startswith("linux"):
        return
    os.environ["PYTHONMALLOC"] = "malloc"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "genvault", *sys.argv[1:]])
