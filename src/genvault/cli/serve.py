"""`genvault serve`: the HTTP server (uvicorn) on the configured database.

The server runs on glibc's allocator (`PYTHONMALLOC=malloc`) unless `PYTHONMALLOC` is set. It is
read when the process starts, so `serve` re-executes its own command line (same interpreter,
arguments and process id, so signals and the exit status are the command's) with it set, once:
the new image finds `PYTHONMALLOC` set and serves. Why: Python's small-object allocator keeps each
1 MiB arena a burst filled while any one object in it lives, so a server stayed ~30–36 MB above
its start after 100,000 tokens; on glibc's, the quiet-time `malloc_trim` gives more of it back.
`PYTHONMALLOC=pymalloc` keeps Python's own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from genvault.cli._app import app, err_console, settings_from, state

ALLOCATOR_ENV = "PYTHONMALLOC"


def _on_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):  # not glibc (musl, macOS, Windows)
        return False


def allocator_exec(environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]] | None:
    """The (argv, environment) that restart this process on glibc's allocator, or None when it
    should run as it is: `PYTHONMALLOC` already set (by the user, or by the re-execution itself:
    so never a loop), the interpreter ignoring the environment (`-E`/`-I`, where the variable
    would not take and the exec would repeat), not glibc, or not the `genvault` command's own
    process (`serve` called in process, by tests or an embedding program)."""
    environ = os.environ if environ is None else environ
    if ALLOCATOR_ENV in environ or sys.flags.ignore_environment or not state.own_process:
        return None
    if not sys.executable or not _on_glibc():
        return None
    # `sys.orig_argv`: the interpreter's own command line (options, `-m genvault` or the script),
    # not `sys.argv`, which lost the interpreter's options.
    return [sys.executable, *sys.orig_argv[1:]], {**environ, ALLOCATOR_ENV: "malloc"}


def _run_on_malloc() -> None:
    plan = allocator_exec()
    if plan is None:
        return
    argv, env = plan
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:  # cannot exec (a sandbox): serve on the allocator it has
        err_console.print(f"genvault: staying on Python's allocator ({exc})", highlight=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (env GENVAULT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env GENVAULT_PORT)")] = None,
    auth: Annotated[str | None, typer.Option(help="none, api_key or header (env GENVAULT_AUTH)")] = None,
) -> None:
    """Serve the API, the AI SDK chat endpoints and the pages."""
    _run_on_malloc()  # returns only when this process is to serve as it is
    settings = settings_from(host=host, port=port, auth=auth)  # a bad setting fails before the imports

    import uvicorn

    from genvault.server import create_app

    err_console.print(
        f"genvault on [bold]http://{settings.host}:{settings.port}[/] · database "
        f"{settings.resolved_database_url.split('@')[-1]} · auth {settings.auth} · default model "
        f"{settings.default_model}",
        highlight=False,
    )
    app_ = create_app(settings, freeze_gc=True)
    if app_.state.vault.telemetry is not None:  # the standard OTEL_* variables: see the README
        where = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        content = "with" if app_.state.vault.telemetry.capture_content else "without"
        err_console.print(
            f"OpenTelemetry: a span per generation to {where} ({content} prompts and outputs)", soft_wrap=True
        )
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level="info", proxy_headers=True)
