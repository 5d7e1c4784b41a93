"""`genvault image`: one image generation, kept in the blob store; optionally saved to files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import acting_user, app, console, err_console, fail, run_with_vault
from genvault.cli._render import summary

if TYPE_CHECKING:
    from genvault.records import FileRecord, Generation
    from genvault.vault import Vault

_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


@app.command()
def image(
    prompt: Annotated[str, typer.Argument(help="What to draw")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="provider/model, e.g. openai/gpt-image-1 (default: offline)")
    ] = None,
    size: Annotated[str, typer.Option("--size", help="WIDTHxHEIGHT, e.g. 1024x1024, or auto")] = "auto",
    n: Annotated[int, typer.Option("-n", help="How many images, 1 to 10")] = 1,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also save the images into this directory")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--key", help="Idempotency key: running again returns the same record")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Record it for this user id (default: local; created under local auth)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final record as JSON instead")] = False,
) -> None:
    """Generate images; prints the record's ID, the images' permanent URLs, usage and cost."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a directory", code=2)

    async def body(vault: Vault) -> tuple[Generation, list[FileRecord]]:
        owner = await acting_user(vault, user)
        record = await vault.generate_image(
            prompt, model=model, size=size, n=n, idempotency_key=idempotency_key, user_id=owner
        )
        owner = record.user_id
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=as_json,
        ) as progress:
            progress.add_task(f"drawing with {record.model}", total=None)
            final = await vault.wait(record.id, user_id=owner)
        files = await vault.generation_files(final.id, user_id=owner)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for index, file in enumerate(files, start=1):
                path = out / f"{final.id}-{index}{_EXTENSIONS.get(file.media_type, '.bin')}"
                path.write_bytes(await vault.read_file(file.id, user_id=owner))
                if not as_json:
                    err_console.print(f"saved {path}", highlight=False)
        return final, files

    final, files = run_with_vault(body)
    if as_json:
        console.print_json(json.dumps(final.model_dump(mode="json")))
    else:
        for file in files:
            console.out(file.url, highlight=False)
        if final.status == "error":
            err_console.print(f"[red]error:[/] {final.error}", highlight=False)
        err_console.print(summary(final, err_console.width), highlight=False, soft_wrap=True)
    if final.status != "complete":
        raise typer.Exit(1)
