"""`genvault users …` and `genvault keys …`: accounts and API keys for `auth = api_key`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import app, console, run_with_vault
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


@keys_app.command("create")
def keys_create(
    user_id: Annotated[str, typer.Argument(help="Whose key")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "default",
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""

    from genvault.store.keys import create_key

    async def body(vault: Vault) -> tuple[str, str]:
        async with vault.store.write() as conn:
            return await create_key(conn, user_id, name)

    key_id, plaintext = run_with_vault(body)
    console.print(f"key {key_id} for {user_id}; send it as: Authorization: Bearer <key>", highlight=False)
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
        Column("created", drop=2),
        Column("revoked", drop=1),
    ]
    rows = [
        [
            str(row["id"]),
            str(row["user_id"]),
            str(row["name"]),
            when(row["created_at"]),  # type: ignore[arg-type]
            when(row["revoked_at"]),  # type: ignore[arg-type]
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
