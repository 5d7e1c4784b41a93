"""`genvault export` and `genvault import`: the archive (docs/archive-format.md).

These commands open the database and the blob store directly, not a Vault: an export only reads
(one snapshot, safe while the server runs), and an import writes exactly what the archive holds.
"""

from __future__ import annotations

import gzip
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from genvault.cli._app import app, err_console, fail, run_async, settings_from

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["export", "import_archive"]


def progress_bar() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _open_out(stack: ExitStack, path: Path | None, *, compress: bool) -> IO[bytes] | gzip.GzipFile:
    """The file to write (`None`: stdout), gzip-compressed when asked."""
    raw: IO[bytes] = sys.stdout.buffer if path is None else stack.enter_context(path.open("wb"))
    if compress:
        # mtime=0 and no file name: the same data gives the same bytes, compressed or not.
        return stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0))
    return raw


@app.command()
def export(
    user: Annotated[str | None, typer.Option("--user", help="Export this user's data")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Export the whole database")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Archive file (.jsonl, or .jsonl.gz to compress); - = stdout")
    ] = None,
) -> None:
    """Write an archive: one user's chats, generations and files (--user), or the whole database
    (--all). Read from one consistent snapshot, so it is safe while the server runs."""
    from genvault.blobs import blob_store_from_settings
    from genvault.ops import archive
    from genvault.store import Store

    if (user is None) == (not everything):
        fail("give --user ID to export one user, or --all for the whole database", code=2)
    target = out or Path(f"genvault-{user or 'all'}.jsonl")
    settings = settings_from()
    to_stdout = str(target) == "-"
    if not to_stdout and target.exists():
        fail(f"{target} already exists; choose another --out or remove it", code=2)

    async def body() -> dict[str, int]:
        store = Store(settings.resolved_database_url, schema=settings.database_schema)
        blobs = blob_store_from_settings(settings)
        partial = target.with_name(target.name + ".partial")
        try:
            async with archive.snapshot(store) as conn:
                scope: Any = "all" if user is None else "user"
                counts = await archive.count_rows(conn, scope, user)
                if user is not None and not counts.get("users"):
                    fail(f"no user {user!r}", code=2)
                total = sum(counts.values()) + await archive.count_objects(conn, user)
                stream = archive.export_lines(conn, user_id=user, objects=archive.blob_objects(blobs))
                with progress_bar() as progress, ExitStack() as stack:
                    task = progress.add_task(f"exporting {user or 'everything'}", total=total)
                    out_file = _open_out(stack, None if to_stdout else partial, compress=target.suffix == ".gz")
                    async for data in stream:
                        out_file.write(data)
                        if not data.startswith((b'{"format"', b'{"chat"', b'{"end"')):
                            progress.advance(task)
                    out_file.flush()
            if not to_stdout:
                partial.rename(target)
            return counts
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            await store.aclose()

    counts = run_async(body())
    if not to_stdout:
        summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        err_console.print(f"wrote {target}: {summary or 'nothing'}", highlight=False)


@app.command("import")
def import_archive(
    path: Annotated[Path, typer.Argument(help="An archive written by genvault export (.jsonl or .jsonl.gz)")],
) -> None:
    """Load an archive into the configured database (and its files into the blob store), in one
    transaction: all of it or nothing. This is also how a SQLite deployment moves to PostgreSQL:
    `genvault export --all` there, `genvault --database-url postgresql://… import` here."""
    from genvault.blobs import blob_store_from_settings
    from genvault.ops import archive
    from genvault.store import Store

    if not path.is_file():
        fail(f"no such file: {path}", code=2)
    settings = settings_from()
    total = sum(1 for _ in archive.open_lines(path))

    async def body() -> dict[str, Any]:
        store = Store(settings.resolved_database_url, schema=settings.database_schema)
        try:
            await store.upgrade()
            with progress_bar() as progress:
                task = progress.add_task(f"importing {path.name}", total=max(total - 2, 0))
                async with store.write() as conn:
                    return await archive.import_lines(
                        conn,
                        archive.open_lines(path),
                        objects=archive.blob_sink(blob_store_from_settings(settings)),
                        progress=lambda _what, n: progress.advance(task, n),
                    )
        finally:
            await store.aclose()

    result = run_async(body())
    rows = result["rows"]
    summary = ", ".join(f"{n} {name}" for name, n in rows.items() if n)
    who = f"user {result['user_id']}" if result.get("scope") == "user" else "the whole database"
    err_console.print(f"imported {who}: {summary or 'no rows'}, {result['objects']} files", highlight=False)
