"""`genvault limits …`: budgets, rate and concurrency limits on users, API keys, or everyone."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from genvault.cli._app import app, console, fail, run_with_vault
from genvault.cli._render import when
from genvault.money import usd_label

if TYPE_CHECKING:  # imported when the command runs: `genvault --help` loads none of the engine
    from genvault.limits import LimitSet, LimitsStatus, SubjectKind
    from genvault.vault import Vault

limits_app = typer.Typer(help="Budgets, rate limits and concurrency limits.", no_args_is_help=True)
app.add_typer(limits_app, name="limits")

_FIELDS = ("daily_usd", "monthly_usd", "total_usd", "rpm", "tpm", "concurrent")


@limits_app.command("set")
def limits_set(
    user_id: Annotated[str | None, typer.Argument(help="Whose limits (leave out with --key or --default)")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Set an API key's limits (its id)")] = None,
    default: Annotated[bool, typer.Option("--default", help="Set the default for every user")] = False,
    daily_usd: Annotated[Decimal | None, typer.Option("--daily-usd", help="USD per UTC day")] = None,
    monthly_usd: Annotated[Decimal | None, typer.Option("--monthly-usd", help="USD per UTC month")] = None,
    total_usd: Annotated[Decimal | None, typer.Option("--total-usd", help="USD in total")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens (input + output) per minute")] = None,
    concurrent: Annotated[int | None, typer.Option("--concurrent", help="Generations running at once")] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help=f"Remove one limit ({', '.join(_FIELDS)}); repeatable")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove all of the subject's limits first")] = False,
) -> None:
    """Set limits; the ones not named stay as they were (`--clear` removes all first)."""
    if sum((user_id is not None, key is not None, default)) != 1:
        fail("name exactly one of: a user, --key KEY_ID, --default", code=2)
    unknown = [name for name in remove or [] if name not in _FIELDS]
    if unknown:
        fail(f"--remove {unknown[0]!r}: choose from {', '.join(_FIELDS)}", code=2)
    given = {
        "daily_usd": daily_usd,
        "monthly_usd": monthly_usd,
        "total_usd": total_usd,
        "rpm": rpm,
        "tpm": tpm,
        "concurrent": concurrent,
    }

    from genvault.limits import LimitSet

    async def body(vault: Vault) -> LimitSet:
        kind: SubjectKind = "default" if default else ("user" if user_id is not None else "key")
        current = LimitSet() if clear else await vault.limits.get_limits(kind, user_id or key)
        values: dict[str, Any] = current.model_dump()
        values.update({k: v for k, v in given.items() if v is not None})
        for name in remove or []:
            values[name] = None
        return await vault.set_limits(values, user_id=user_id, key_id=key, default=default)

    result = run_with_vault(body)
    who = "the default" if default else (f"key {key}" if key else f"user {user_id}")
    shown = ", ".join(f"{k} {v}" for k, v in result.model_dump().items() if v is not None) or "none"
    console.print(f"limits of {who}: {shown}", highlight=False)


@limits_app.command("show")
def limits_show(
    user_id: Annotated[
        str | None, typer.Argument(help="This user's limits and usage (default: every limit set)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """A user's limits and how much of each is used, or every limit that is set."""
    if user_id is None:

        async def every(vault: Vault) -> dict[str, LimitSet]:
            return await vault.limits.list_limits()

        found = run_with_vault(every)
        if as_json:
            console.out(json.dumps({k: v.model_dump(mode="json") for k, v in found.items()}, indent=2))
            return
        table = Table("subject", *_FIELDS, box=None, header_style="bold")
        for subject, values in found.items():
            table.add_row(subject, *("" if (v := getattr(values, f)) is None else str(v) for f in _FIELDS))
        console.print(table if found else "no limits are set")
        return

    async def one(vault: Vault) -> LimitsStatus:
        return await vault.limits_status(user_id)

    status = run_with_vault(one)
    if as_json:
        console.out(status.model_dump_json(indent=2))
        return
    if not status.usage:
        console.print(f"no limits apply to {user_id}", highlight=False)
        return
    table = Table("subject", "limit", "limit value", "used", "remaining", "resets", box=None, header_style="bold")
    for usage in status.usage:
        money = usage.limit.endswith("_usd")

        def shown(value: str, money: bool = money) -> str:
            return usd_label(Decimal(value)) if money else value

        table.add_row(
            usage.subject,
            usage.limit,
            shown(usage.limit_value),
            shown(usage.used),
            shown(usage.remaining),
            when(usage.resets_at) if usage.resets_at else "",
        )
    console.print(table)
