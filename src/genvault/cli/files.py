"""`genvault files add|get|show`: put a file in the blob store, fetch or describe a stored one."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import app, console, fail, run_with_vault

if TYPE_CHECKING:
    from genvault.records import FileRecord
    from genvault.vault import Vault

files_app = typer.Typer(help="Stored files (uploads and generated images).", no_args_is_help=True)
app.add_typer(files_app, name="files")

UserOption = Annotated[str, typer.Option("--user", help="Acting user id")]


@files_app.command("add")
def files_add(
    path: Annotated[Path, typer.Argument(help="The file to store", exists=True, dir_okay=False, readable=True)],
    media_type: Annotated[
        str | None, typer.Option("--type", help="Media type (default: guessed from the name)")
    ] = None,
    user: UserOption = "local",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Store a file; prints its permanent URL."""
    kind = media_type or mimetypes.guess_type(path.name)[0]
    if kind is None:
        fail(f"cannot tell the media type of {path.name}: pass --type, e.g. --type image/png", code=2)
    data = path.read_bytes()

    async def body(vault: Vault) -> FileRecord:
        return await vault.store_file(data, media_type=str(kind), user_id=user, filename=path.name)

    record = run_with_vault(body)
    console.out(json.dumps(record.model_dump(mode="json")) if as_json else record.url, highlight=False)


@files_app.command("get")
def files_get(
    file_id: Annotated[str, typer.Argument(help="file_… id")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the bytes")],
    user: UserOption = "local",
) -> None:
    """Write a stored file's bytes to a path."""

    async def body(vault: Vault) -> bytes:
        return await vault.read_file(file_id, user_id=user)

    data = run_with_vault(body)
    out.write_bytes(data)
    console.out(f"{len(data)} bytes → {out}", highlight=False)


@files_app.command("show")
def files_show(file_id: Annotated[str, typer.Argument(help="file_… id")], user: UserOption = "local") -> None:
    """A stored file's record as JSON."""

    async def body(vault: Vault) -> FileRecord:
        return await vault.get_file(file_id, user_id=user)

    console.print_json(json.dumps(run_with_vault(body).model_dump(mode="json")))


@files_app.command("gc")
def files_gc(
    older_than_hours: Annotated[float, typer.Option("--older-than-hours", help="Only objects older than this")] = 1.0,
) -> None:
    """Delete stored objects that no file record references any more."""
    from datetime import timedelta

    async def body(vault: Vault) -> tuple[int, int]:
        return await vault.sweep_unreferenced_blobs(older_than=timedelta(hours=older_than_hours))

    deleted, freed = run_with_vault(body)
    console.out(f"deleted {deleted} unreferenced objects, {freed} bytes", highlight=False)
