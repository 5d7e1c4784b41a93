"""`genvault feedback …`: thumbs up or down, with a comment, on a generation or a chat's reply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import acting_user, app, console, run_with_vault

if TYPE_CHECKING:  # imported when the command runs: `genvault --help` loads none of the engine
    from genvault.feedback import Rating
    from genvault.vault import Vault

feedback_app = typer.Typer(help="Rate generations and chat replies (thumbs up or down).", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")

TargetArg = Annotated[str, typer.Argument(help="A generation id, or with --chat a message id of that chat")]
ChatOpt = Annotated[str | None, typer.Option("--chat", help="The chat whose assistant message TARGET is")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Act as this user id (default: local)")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-m", help="Why (at most 2000 characters)")]


def _rate(target: str, chat: str | None, user: str | None, rating: int, comment: str | None) -> None:
    async def body(vault: Vault) -> Rating:
        owner = await acting_user(vault, user)
        if chat is None:
            return await vault.feedback.rate_generation(target, rating, comment, user_id=owner)
        return await vault.feedback.rate_message(chat, target, rating, comment, user_id=owner)

    result = run_with_vault(body)
    thumb = "up" if result.rating == 1 else "down"
    console.print(f"thumbs {thumb} on {target}" + (f": {result.comment}" if result.comment else ""), highlight=False)


@feedback_app.command("up")
def feedback_up(target: TargetArg, chat: ChatOpt = None, comment: CommentOpt = None, user: UserOpt = None) -> None:
    """Thumbs up (replaces an earlier rating)."""
    _rate(target, chat, user, 1, comment)


@feedback_app.command("down")
def feedback_down(target: TargetArg, chat: ChatOpt = None, comment: CommentOpt = None, user: UserOpt = None) -> None:
    """Thumbs down (replaces an earlier rating)."""
    _rate(target, chat, user, -1, comment)


@feedback_app.command("clear")
def feedback_clear(target: TargetArg, chat: ChatOpt = None, user: UserOpt = None) -> None:
    """Remove your rating."""

    async def body(vault: Vault) -> bool:
        owner = await acting_user(vault, user)
        if chat is None:
            return await vault.feedback.clear_generation(target, user_id=owner)
        return await vault.feedback.clear_message(chat, target, user_id=owner)

    removed = run_with_vault(body)
    console.print(f"rating of {target} removed" if removed else f"{target} had no rating", highlight=False)


@feedback_app.command("show")
def feedback_show(
    target: TargetArg,
    chat: ChatOpt = None,
    user: UserOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Your rating of a generation, or with --chat of a message of that chat."""

    async def body(vault: Vault) -> Rating | None:
        owner = await acting_user(vault, user)
        if chat is None:
            return await vault.feedback.generation_rating(target, user_id=owner)
        return await vault.feedback.message_rating(chat, target, user_id=owner)

    found = run_with_vault(body)
    if as_json:
        console.out("null" if found is None else found.model_dump_json(indent=2))
        return
    if found is None:
        console.print(f"{target} has no rating", highlight=False)
        return
    thumb = "up" if found.rating == 1 else "down"
    console.print(f"thumbs {thumb}" + (f": {found.comment}" if found.comment else ""), highlight=False)
