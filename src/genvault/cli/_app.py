"""The Typer app, the shared options, and how a command runs a Vault."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from genvault.errors import CallerError, GenvaultError

if TYPE_CHECKING:  # imported where used: `genvault --help` loads none of the engine
    from genvault.settings import Settings
    from genvault.vault import Vault

__all__ = ["app", "console", "err_console", "parse_time", "run_async", "run_with_vault", "settings_from", "state"]

app = typer.Typer(
    name="genvault",
    help="Keep every AI generation: IDs before the call, saved while streaming, priced, addressable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


class _Console(Console):
    """A Rich console that measures the terminal when it prints, not when it is made: Rich
    fixes the width from `COLUMNS` at construction, and these are made at import."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._width = self._height = None


console = _Console()
err_console = _Console(stderr=True)

T = TypeVar("T")


class _State:
    database_url: str | None = None
    data_dir: Path | None = None
    # True when this process is the `genvault` command (`main()`), not a CLI called in process:
    # only then may `serve` re-execute it (on its allocator).
    own_process: bool = False


state = _State()


@app.callback()
def _global(
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="sqlite:///path or postgresql://… (env GENVAULT_DATABASE_URL)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the SQLite file lives (env GENVAULT_DATA_DIR)")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what genvault does")] = False,
) -> None:
    state.database_url = database_url
    state.data_dir = data_dir
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def settings_from(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from genvault.settings import Settings

    try:
        return Settings().with_overrides(database_url=state.database_url, data_dir=state.data_dir, **overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        fail(f"invalid configuration: {problems}", code=2)
        raise  # unreachable; fail() exits


def fail(message: str, *, code: int) -> None:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def run_with_vault(body: Callable[[Vault], Awaitable[T]], *, settings: Settings | None = None) -> T:
    """Open a Vault, run `body` with it, close it; genvault errors become one-line messages."""

    from genvault.vault import Vault

    async def runner() -> T:
        # One-off commands never start the periodic retention task: `genvault retention run` is
        # the explicit way, and the server runs it on its schedule.
        async with Vault(settings or settings_from(), run_retention=False, deliver_webhooks=False) as vault:
            return await body(vault)

    return run_async(runner())


def run_async(work: Awaitable[T]) -> T:
    """Run a coroutine; genvault errors become one-line messages (exit 2 for the caller's, else 1)."""

    async def runner() -> T:
        return await work

    import asyncio

    try:
        return asyncio.run(runner())
    except CallerError as exc:
        fail(exc.message, code=2)
    except GenvaultError as exc:
        fail(exc.message, code=1)
    raise AssertionError("unreachable")


async def acting_user(vault: Vault, user_id: str | None) -> str:
    """The user a command acts as (`--user`, default the local user). Under local auth
    (`GENVAULT_AUTH=none`, the default) a new id is created, as the server would; under another
    auth users are made on purpose, so a missing one is an error that says how."""
    from genvault.errors import InvalidRequest
    from genvault.store.users import LOCAL_USER_ID, get_user_name

    if user_id is None or user_id == LOCAL_USER_ID:
        return LOCAL_USER_ID
    if vault.settings.auth == "none":
        await vault.create_user(user_id)
        return user_id
    try:
        async with vault.store.read() as conn:
            await get_user_name(conn, user_id)
    except GenvaultError:
        raise InvalidRequest(
            f"no user {user_id!r} (auth is {vault.settings.auth}); create it first: genvault users add {user_id}"
        ) from None
    return user_id


def read_prompt(prompt: str | None) -> str:
    """The prompt argument, or standard input when it is `-` or missing and input is piped."""
    if prompt is not None and prompt != "-":
        return prompt
    if prompt is None and sys.stdin.isatty():
        fail('give a prompt, or pipe one in: echo "Write a haiku" | genvault generate', code=2)
    return sys.stdin.read().rstrip("\n")


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str | None, *, option: str) -> datetime | None:
    """`2026-11-01`, `2026-11-01T10:00`, or a span back from now: `30m`, `2h`, `7d`, `1w`."""
    if value is None:
        return None
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {value!r} is not a date (2026-11-01), a time (2026-11-01T10:00) or a span (2h, 7d)", code=2)
        raise
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_tty() -> bool:
    return sys.stdout.isatty()
