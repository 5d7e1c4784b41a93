"""The `genvault` command line (Typer + Rich), split by noun: one module per command group.

Each command builds the settings from flags and `GENVAULT_*` variables, opens a `Vault`, calls it,
and renders the result. Errors the caller can fix print one line (exit 2); failures exit 1.
"""

from __future__ import annotations

from genvault.cli import (  # noqa: F401  (registers the commands)
    archive,
    chats,
    db,
    embed,
    feedback,
    files,
    generate,
    image,
    limits,
    logs,
    models,
    ops,
    search,
    serve,
    sessions,
    usage,
    users,
    webhooks,
)
from genvault.cli._app import app, state
from genvault.cli._help import polish

polish(app)

__all__ = ["app", "main"]


def main() -> None:
    state.own_process = True
    app()
