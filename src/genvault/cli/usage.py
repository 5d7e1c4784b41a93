"""`genvault usage`: tokens and cost totals."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from genvault.cli._app import app, console, parse_time, run_with_vault
from genvault.cli._render import usage_table

if TYPE_CHECKING:
    from genvault.records import UsageRow
    from genvault.vault import Vault


@app.command()
def usage(
    by: Annotated[
        Literal["model", "user", "day", "key", "tag"],
        typer.Option("--by", help="Group by model, user, day, API key or tag"),
    ] = "model",
    user: Annotated[str | None, typer.Option("--user", help="Only this user's generations")] = None,
    since: Annotated[str | None, typer.Option(help="From this time: 2026-11-01, or a span back: 2h, 7d")] = None,
    until: Annotated[str | None, typer.Option(help="Up to (not including) this time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (as GET /api/usage.csv)")] = False,
) -> None:
    """Tokens and cost, grouped by model, user, day or API key."""
    since_at = parse_time(since, option="--since")
    until_at = parse_time(until, option="--until")

    async def body(vault: Vault) -> list[UsageRow]:
        return await vault.usage(group_by=by, user_id=user, since=since_at, until=until_at)

    rows = run_with_vault(body)
    if as_csv:
        from genvault.usage_csv import usage_csv

        typer.echo(usage_csv(rows, by), nl=False)
        return
    if as_json:
        console.print_json(json.dumps([row.model_dump(mode="json") for row in rows]))
        return
    if not rows:
        console.print("no generations in that range")
        return
    console.print(usage_table(rows, by, console.width))
