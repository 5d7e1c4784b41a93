"""`genvault erase-user`, `genvault retention run`, `genvault backup|restore|verify`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from genvault.cli._app import app, console, err_console, fail, run_async, run_with_vault, settings_from
from genvault.cli._render import Column, fitted_table, when
from genvault.cli.archive import progress_bar

if TYPE_CHECKING:
    from genvault.ops.backup import BackupManifest, RestoreReport
    from genvault.ops.erasure import ErasureReceipt
    from genvault.ops.retention import RetentionReport
    from genvault.ops.verify import VerifyReport
    from genvault.vault import Vault

__all__ = ["audit", "backup_command", "erase_user", "restore_command", "retention_run", "verify_command"]

retention_app = typer.Typer(help="Delete what is older than the retention settings.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


def _counts_table(counts: dict[str, int]) -> Table:
    table = Table("what", "count", box=None, header_style="bold")
    for name, n in counts.items():
        table.add_row(name, str(n))
    return table


@app.command("erase-user")
def erase_user(
    user_id: Annotated[str, typer.Argument(help="The user to erase")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON")] = False,
) -> None:
    """Erase a user and every trace of them (chats, messages, generations, files, cache entries,
    live streams), write an audit event and print the receipt. A user who is not there (erased
    before, or never created) is reported, and nothing is written."""
    from genvault.store.audit import list_events
    from genvault.store.schema import users

    async def gone(vault: Vault) -> dict[str, object] | None:
        """None when the user exists; else what is known: the erasure's audit event, if any."""
        async with vault.store.read() as conn:
            from sqlalchemy import select

            if (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is not None:
                return None
            events = await list_events(conn, subject_user_id=user_id, limit=1000)
        erasures = [e for e in events if e["action"] == "erase_user"]
        return erasures[0] if erasures else {}

    previous = run_with_vault(gone)
    if previous is not None:
        if as_json:
            state = "already_erased" if previous else "no_such_user"
            found = {"audit_id": previous.get("id"), "erased_at": str(previous.get("at"))} if previous else {}
            console.out(json.dumps({"user_id": user_id, "status": state, **found}), highlight=False)
        elif previous:
            console.print(
                f"user {user_id} was erased already ({when(previous['at'])} UTC, audit event {previous['id']}); "  # type: ignore[arg-type]
                "nothing to do",
                highlight=False,
            )
        else:
            console.print(f"no user {user_id}: nothing to erase", highlight=False)
        return
    if not yes:
        typer.confirm(f"Erase user {user_id!r} and all their data? This cannot be undone", abort=True)

    async def body(vault: Vault) -> ErasureReceipt:
        return await vault.erase_user(user_id)

    receipt = run_with_vault(body)
    if as_json:
        console.out(receipt.model_dump_json(), highlight=False)
        return
    console.print(_counts_table(receipt.counts))
    console.print(f"erased {user_id} · audit event {receipt.audit_id}", highlight=False)


def _short(user_hash: object) -> str:
    """A pseudonym cut to fit a table column; `--json` prints it whole."""
    return f"{str(user_hash)[:19]}…" if user_hash else ""


def _actor(event: dict[str, object]) -> str:
    if event["actor_user_id"]:
        return str(event["actor_user_id"])
    if event["actor_user_hash"]:
        return "self" if event["actor_user_hash"] == event["subject_user_hash"] else _short(event["actor_user_hash"])
    return "operator"


@app.command("audit")
def audit(
    user: Annotated[
        str | None, typer.Option("--user", help="Only events about this user id (matched by its pseudonym)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List erasures and retention runs, newest first: who, when, how much (never content).

    An erased user appears as a pseudonym ("sha256:…" of their id), never by id: `--user ID`
    hashes ID to find their events."""
    from genvault.store.audit import list_events

    async def body(vault: Vault) -> list[dict[str, object]]:
        async with vault.store.read() as conn:
            return await list_events(conn, subject_user_id=user, limit=limit)

    events = run_with_vault(body)
    if as_json:
        for event in events:
            console.out(json.dumps(event, default=str, ensure_ascii=False), highlight=False)
        return
    columns = [
        Column("id", keep=True),
        Column("at (UTC)", keep=True),
        Column("action", keep=True),
        Column("subject", flex=True, drop=2),
        Column("by", flex=True, drop=1),
        Column("counts", flex=True, min_flex=20),
    ]
    rows = []
    for event in events:
        counts = event["counts"] if isinstance(event["counts"], dict) else {}
        rows.append(
            [
                str(event["id"]),
                when(event["at"]),  # type: ignore[arg-type]
                str(event["action"]),
                _short(event["subject_user_hash"]),
                _actor(event),
                ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "nothing",
            ]
        )
    console.print(fitted_table(columns, rows, console.width) if events else "no audit events")


@retention_app.command("run")
def retention_run(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Delete chats and generations older than GENVAULT_RETENTION_DAYS_{CHAT,TEXT,IMAGE}."""
    settings = settings_from()
    if not any((settings.retention_days_chat, settings.retention_days_text, settings.retention_days_image)):
        fail(
            "no retention is configured: set GENVAULT_RETENTION_DAYS_CHAT, _TEXT or _IMAGE to a number of days",
            code=2,
        )

    async def body(vault: Vault) -> RetentionReport:
        return await vault.apply_retention()

    report = run_with_vault(body, settings=settings)
    if as_json:
        console.out(report.model_dump_json(), highlight=False)
        return
    for kind, cutoff in report.cutoffs.items():
        console.print(f"{kind}: older than {cutoff:%Y-%m-%d %H:%M} UTC", highlight=False)
    console.print(_counts_table(report.counts) if report.counts else "nothing was old enough to delete")


@app.command("backup")
def backup_command(path: Annotated[Path, typer.Argument(help="A new directory for the backup")]) -> None:
    """Back up the database and its files while the server runs (a consistent snapshot)."""
    from genvault.blobs import blob_store_from_settings
    from genvault.ops.backup import backup
    from genvault.store import Store

    settings = settings_from()

    async def body() -> BackupManifest:
        store = Store(settings.resolved_database_url, schema=settings.database_schema)
        try:
            with progress_bar() as progress:
                task = progress.add_task("backing up", total=None)
                manifest = await backup(
                    store,
                    path,
                    blobs=blob_store_from_settings(settings),
                    progress=lambda _what, n: progress.advance(task, n),
                )
            return manifest
        finally:
            await store.aclose()

    manifest = run_async(body())
    rows = sum(manifest.counts.values())
    err_console.print(
        f"backed up {rows} rows and {manifest.objects} files ({manifest.dialect}) to {path}", highlight=False
    )


@app.command("restore")
def restore_command(path: Annotated[Path, typer.Argument(help="A directory written by genvault backup")]) -> None:
    """Restore a backup into the configured (empty) database and blob store, then check it."""
    from genvault.blobs import blob_store_from_settings
    from genvault.ops.backup import restore
    from genvault.store import Store

    settings = settings_from()

    async def body() -> RestoreReport:
        store = Store(settings.resolved_database_url, schema=settings.database_schema)
        try:
            with progress_bar() as progress:
                task = progress.add_task("restoring", total=None)
                return await restore(
                    path,
                    store,
                    blobs=blob_store_from_settings(settings),
                    progress=lambda _what, n: progress.advance(task, n),
                )
        finally:
            await store.aclose()

    report = run_async(body())
    console.print(_counts_table({**{k: v for k, v in report.counts.items() if v}, "files": report.objects}))
    _print_verify(report.verify)
    if not report.verify.ok:
        raise typer.Exit(1)


def _print_verify(report: VerifyReport) -> None:
    checked = ", ".join(f"{n} {name}" for name, n in report.checked.items())
    if report.ok:
        console.print(f"[green]verified[/]: {checked}; no problems", highlight=False)
        return
    for problem in report.problems:
        console.print(f"[red]✗[/] {problem}", highlight=False)
    more = report.problem_count - len(report.problems)
    console.print(f"{report.problem_count} problems ({checked})" + (f"; {more} not shown" if more else ""))


@app.command("verify")
def verify_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check a live deployment: every referenced file exists with the right sha256, every
    message's parts are complete, no record is stuck streaming. Read-only. Exit 1 on problems."""
    from genvault.blobs import blob_store_from_settings
    from genvault.ops.verify import verify
    from genvault.store import Store

    settings = settings_from()

    async def body() -> VerifyReport:
        # Not a Vault: starting one would sweep stuck records, hiding what this should report.
        store = Store(settings.resolved_database_url, schema=settings.database_schema)
        try:
            return await verify(store, blobs=blob_store_from_settings(settings))
        finally:
            await store.aclose()

    report = run_async(body())
    if as_json:
        console.out(json.dumps({**report.model_dump(), "ok": report.ok}), highlight=False)
    else:
        _print_verify(report)
    if not report.ok:
        raise typer.Exit(1)
