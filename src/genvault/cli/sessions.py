"""`genvault sessions …`: the pages' sign-in sessions (`GENVAULT_AUTH=api_key`): list, end; and
`genvault users password`, the optional password to sign in with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import app, console, run_with_vault
from genvault.cli._render import Column, fitted_table, when
from genvault.cli.users import users_app

if TYPE_CHECKING:
    from genvault.sessions import SessionInfo
    from genvault.vault import Vault

sessions_app = typer.Typer(help="Browser sign-in sessions of the pages (never their tokens).", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list(
    user_id: Annotated[str | None, typer.Argument(help="Only this user's sessions")] = None,
    ended: Annotated[bool, typer.Option("--all", help="Also ended ones (signed out, revoked, expired)")] = False,
) -> None:
    """List sessions, newest first: live ones unless --all."""

    async def body(vault: Vault) -> list[SessionInfo]:
        return await vault.sessions.list(user_id=user_id, live_only=not ended)

    columns = [
        Column("id", keep=True),
        Column("user", keep=True),
        Column("key", drop=3),
        Column("signed in", drop=2),
        Column("expires", drop=1),
        Column("revoked", drop=4),
    ]
    rows = [
        [s.id, s.user_id, s.key_id or "", when(s.created_at), when(s.expires_at), when(s.revoked_at)]
        for s in run_with_vault(body)
    ]
    if not rows:
        console.print("no sessions")
        return
    console.print(fitted_table(columns, rows, console.width))


@sessions_app.command("revoke")
def sessions_revoke(
    session_id: Annotated[str | None, typer.Argument(help="The session's id")] = None,
    user: Annotated[str | None, typer.Option("--user", help="End every live session of this user")] = None,
) -> None:
    """End a session (or all of a user's): its browser is sent to /login on its next request."""
    if (session_id is None) == (user is None):
        raise typer.BadParameter("give a session id or --user, not both")

    async def body(vault: Vault) -> int:
        if user is not None:
            return await vault.sessions.revoke_user(user)
        await vault.sessions.revoke(session_id or "", user_id=None)
        return 1

    ended = run_with_vault(body)
    console.print(f"ended {ended} session{'s' if ended != 1 else ''}", highlight=False)


@users_app.command("password")
def set_password(
    user_id: Annotated[str, typer.Argument(help="The user's id")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Asked for when not given")
    ],
) -> None:
    """Give a user a password for the pages' sign-in (argon2id; ends their sessions)."""

    async def body(vault: Vault) -> None:
        await vault.sessions.set_password(user_id, password)

    run_with_vault(body)
    console.print(f"password set for {user_id}; their sessions ended", highlight=False)
