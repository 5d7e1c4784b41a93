"""`genvault users …` and `genvault keys …`: accounts and API keys for `auth = api_key`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import app, console, fail, run_with_vault
from genvault.cli._render import Column, fitted_table, when

if TYPE_CHECKING:
    from genvault.vault import Vault

users_app = typer.Typer(help="Users (owners of chats and generations).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: created once, stored hashed.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")


@users_app.command("add")
def add_user(
    user_id: Annotated[str, typer.Argument(help="The user's id (letters, digits, . _ - @)")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May see every user's usage")] = False,
) -> None:
    """Create a user (no-op if it exists)."""

    async def body(vault: Vault) -> None:
        await vault.create_user(user_id, name, is_admin=admin)

    run_with_vault(body)
    console.print(f"user [bold]{user_id}[/] is ready", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List users."""

    from genvault.store.users import list_users

    async def body(vault: Vault) -> list[dict[str, object]]:
        async with vault.store.read() as conn:
            return await list_users(conn)

    columns = [Column("id", keep=True), Column("name", flex=True), Column("admin"), Column("created", drop=1)]
    rows = [
        [str(row["id"]), str(row["name"]), "yes" if row["is_admin"] else "", when(row["created_at"])]  # type: ignore[arg-type]
        for row in run_with_vault(body)
    ]
    console.print(fitted_table(columns, rows, console.width))


def parse_expiry(value: str | None) -> datetime | None:
    """`30d`, `12h`, `2w` from now, or a date/time (`2027-01-01`, UTC unless it says otherwise)."""
    if value is None:
        return None
    text = value.strip()
    match = _SPAN.match(text)
    if match:
        return datetime.now(UTC) + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--expires {value!r} is a span from now (30d, 12h) or a date (2027-01-01)", code=2)
        raise
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_SPAN = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@keys_app.command("create")
def keys_create(
    user_id: Annotated[str, typer.Argument(help="Whose key")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "default",
    expires: Annotated[
        str | None, typer.Option(help="The key stops working after this: a span (30d, 12h) or a date (2027-01-01)")
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option("--models", help="The only models it may call (provider/model; repeat or comma-separate)"),
    ] = None,
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    expires_at = parse_expiry(expires)
    allowed = [m.strip() for value in models for m in value.split(",") if m.strip()] if models else None

    from genvault.store.keys import create_key

    async def body(vault: Vault) -> tuple[str, str]:
        async with vault.store.write() as conn:
            return await create_key(conn, user_id, name, expires_at=expires_at, models=allowed)

    key_id, plaintext = run_with_vault(body)
    extra = ""
    if expires_at is not None:
        extra += f", expires {expires_at.isoformat(timespec='seconds')}"
    if allowed is not None:
        extra += f", only {', '.join(allowed)}"
    console.print(f"key {key_id} for {user_id}{extra}; send it as: Authorization: Bearer <key>", highlight=False)
    console.out(plaintext)


@keys_app.command("list")
def keys_list(user_id: Annotated[str | None, typer.Argument(help="Only this user's keys")] = None) -> None:
    """List keys (never the secrets)."""

    from genvault.store.keys import list_keys

    async def body(vault: Vault) -> list[dict[str, object]]:
        async with vault.store.read() as conn:
            return await list_keys(conn, user_id)

    columns = [
        Column("id", keep=True),
        Column("user", keep=True),
        Column("name", flex=True),
        Column("created", drop=3),
        Column("revoked", drop=2),
        Column("expires", drop=1),
        Column("models", flex=True, min_flex=8),
    ]
    rows = [
        [
            str(row["id"]),
            str(row["user_id"]),
            str(row["name"]),
            when(row["created_at"]),  # type: ignore[arg-type]
            when(row["revoked_at"]),  # type: ignore[arg-type]
            when(row["expires_at"]),  # type: ignore[arg-type]
            ", ".join(str(m) for m in row["models"]) if row["models"] else "all",  # type: ignore[attr-defined]
        ]
        for row in run_with_vault(body)
    ]
    console.print(fitted_table(columns, rows, console.width))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (not the secret)")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""

    from genvault.store.keys import revoke_key

    async def body(vault: Vault) -> None:
        async with vault.store.write() as conn:
            await revoke_key(conn, key_id)

    run_with_vault(body)
    console.print(f"revoked {key_id}", highlight=False)
