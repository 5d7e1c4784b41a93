"""`genvault chats`, `genvault chat show|export`, `genvault import-v4`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from genvault.cli._app import app, console, err_console, fail, run_with_vault
from genvault.cli._render import Column, fitted_table, when
from genvault.errors import GenvaultError
from genvault.validation import loads_json

if TYPE_CHECKING:
    from genvault.records import Page
    from genvault.store.chats import Chat
    from genvault.vault import Vault

chat_app = typer.Typer()
app.add_typer(chat_app, name="chat")


@chat_app.callback(invoke_without_command=True)
def chat(
    ctx: typer.Context,
    chat_id: Annotated[
        str | None, typer.Option("--chat", "-c", help="Continue this stored chat (default: start a new one)")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="provider/model, e.g. openai/gpt-4o-mini")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Chat as this user id (default: local; created under local auth)")
    ] = None,
) -> None:
    """Chat on the terminal: each line you type is a turn, streamed while it is stored like any
    chat (the server shows it at /chat/ID). `/exit` or Ctrl-D ends it; `-c ID` continues a stored
    chat. `genvault chat show ID` prints a chat, `genvault chat export ID` writes it as JSON."""
    if ctx.invoked_subcommand is not None:
        return
    _interactive(chat_id, model, user)


def _interactive(chat_id: str | None, model: str | None, user: str | None) -> None:
    import asyncio
    import sys

    from genvault.cli._app import acting_user
    from genvault.cli._render import summary
    from genvault.ids import new_id
    from genvault.store.chats import MAX_PAGE

    interactive = sys.stdin.isatty()

    def ask() -> str | None:
        """The next line typed (None at the end of input)."""
        if interactive:
            err_console.print("[bold green]you ›[/] ", end="")
        line = sys.stdin.readline()
        return None if line == "" else line.rstrip("\n")

    async def body(vault: Vault) -> None:
        owner = await acting_user(vault, user)
        the_chat = chat_id or new_id("chat")
        chosen = model
        if chat_id is not None:
            found = await vault.get_chat(chat_id, user_id=owner)
            # The chat remembers its model: without -m, go on with its latest turn's.
            chosen = model or await vault.chat_model(chat_id, user_id=owner)
            page = await vault.chat_messages(chat_id, user_id=owner, limit=MAX_PAGE)
            err_console.print(
                f"[dim]continuing {found.title or found.id} · {len(page.messages)}"
                f"{'+' if page.has_before else ''} messages · /chat/{found.id}[/]",
                highlight=False,
            )
        else:
            err_console.print(f"[dim]new chat {the_chat} · /chat/{the_chat} · /exit or Ctrl-D ends it[/]")
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, ask)
            if line is None or line.strip() in ("/exit", "/quit"):
                break
            if not line.strip():
                continue
            message = {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": line}]}
            turn = await vault.chat(the_chat, message=message, model=chosen, user_id=owner)
            record_id = turn.generation.id
            try:
                async for chunk in vault.stream(record_id, user_id=owner):
                    if chunk.get("type") == "text-delta":
                        console.out(chunk["delta"], end="", highlight=False)
                    elif chunk.get("type") == "error":
                        err_console.print(f"\n[red]error:[/] {chunk.get('errorText')}", highlight=False)
            except asyncio.CancelledError:
                await vault.cancel(record_id, user_id=owner)  # Ctrl-C: an explicit stop
                raise
            final = await vault.wait(record_id, user_id=owner)
            console.out("")
            err_console.print(summary(final, err_console.width), style="dim", highlight=False, soft_wrap=True)
        err_console.print(f"[dim]stored: genvault chat show {the_chat}[/]", highlight=False)

    try:
        run_with_vault(body)
    except KeyboardInterrupt:
        err_console.print("\n[magenta]stopped[/] (the partial reply is kept)")
        raise typer.Exit(130) from None


@app.command()
def chats(
    user: Annotated[str, typer.Option("--user", help="Whose chats")] = "local",
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List chats, most recently updated first."""

    async def body(vault: Vault) -> Page[Chat]:
        return await vault.list_chats(user_id=user, limit=limit, cursor=cursor)

    page = run_with_vault(body)
    if as_json:
        for chat in page.items:
            console.out(json.dumps(chat.model_dump(mode="json"), ensure_ascii=False), highlight=False)
        return
    columns = [
        Column("id", keep=True),
        Column("title", flex=True),
        Column("updated (UTC)", drop=2),
        Column("visibility", drop=1),
    ]
    rows = [[chat.id, chat.title or "", when(chat.updated_at), chat.visibility] for chat in page.items]
    console.print(fitted_table(columns, rows, console.width) if page.items else "no chats")
    if page.next_cursor:
        console.print(f"[dim]more: --cursor {page.next_cursor}[/]", highlight=False)


async def _whole_chat(vault: Vault, chat_id: str) -> tuple[Chat, list[dict[str, Any]]]:
    from genvault.store.chats import load_all_messages

    chat = await vault.get_chat(chat_id, user_id=None)
    async with vault.store.read() as conn:
        return chat, await load_all_messages(conn, chat_id)


@chat_app.command("show")
def chat_show(
    chat_id: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json", help="The UIMessages as JSON")] = False,
) -> None:
    """Show a chat as a readable transcript (or its UIMessages)."""
    from rich.panel import Panel

    chat, messages = run_with_vault(lambda vault: _whole_chat(vault, chat_id))
    if as_json:
        console.print_json(json.dumps(messages, ensure_ascii=False))
        return
    console.print(f"[bold]{chat.title or chat.id}[/] · {chat.id} · {len(messages)} messages", highlight=False)
    for message in messages:
        lines = []
        for part in message["parts"]:
            kind = part["type"]
            if kind == "text":
                lines.append(part["text"])
            elif kind == "reasoning":
                lines.append(f"[dim italic]{part['text']}[/]")
            elif kind.startswith("tool-") or kind == "dynamic-tool":
                name = part.get("toolName") or kind[5:]
                result = part.get("output", part.get("errorText", "…"))
                lines.append(f"[cyan]⚙ {name}({json.dumps(part.get('input'))}) → {json.dumps(result)[:200]}[/]")
            elif kind == "file":
                lines.append(f"[magenta]📎 {part.get('filename') or part['mediaType']}[/]")
            elif kind.startswith("source-"):
                lines.append(f"[blue]↗ {part.get('url') or part.get('title')}[/]")
            elif kind.startswith("data-"):
                lines.append(f"[dim]{kind}: {json.dumps(part['data'])[:200]}[/]")
        style = {"user": "green", "assistant": "cyan", "system": "yellow"}[message["role"]]
        console.print(
            Panel("\n".join(lines) or "(empty)", title=message["role"], title_align="left", border_style=style)
        )


@chat_app.command("export")
def chat_export(
    chat_id: Annotated[str, typer.Argument()],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
) -> None:
    """Export a chat as JSON: `{"chat": {...}, "messages": [UIMessage...]}`."""
    chat, messages = run_with_vault(lambda vault: _whole_chat(vault, chat_id))
    text = json.dumps({"chat": chat.model_dump(mode="json"), "messages": messages}, ensure_ascii=False, indent=2)
    if output is None:
        console.out(text, highlight=False)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"wrote {output}")


async def _owner(vault: Vault, chat_id: str, user: str | None) -> str:
    """Whom to act as: `--user` (refused unless theirs), else the chat's owner (the operator's way)."""
    if user is not None:
        return user
    return (await vault.get_chat(chat_id, user_id=None)).user_id


_USER_OPTION = typer.Option("--user", help="Act as this user (refused unless the chat is theirs); default: its owner")


@chat_app.command("rename")
def chat_rename(
    chat_id: Annotated[str, typer.Argument()],
    title: Annotated[str | None, typer.Argument(help="The new title (leave out with --clear)")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the title")] = False,
    user: Annotated[str | None, _USER_OPTION] = None,
) -> None:
    """Rename a chat, as PATCH /api/chats/ID {"title"} does."""
    if (title is None) == (not clear):
        fail("give a new title, or --clear to remove it", code=2)

    async def body(vault: Vault) -> Chat:
        owner = await _owner(vault, chat_id, user)
        return await vault.update_chat(chat_id, user_id=owner, title=None if clear else title)

    chat = run_with_vault(body)
    console.print(f"{chat.id}: {chat.title or '(untitled)'}", highlight=False)


@chat_app.command("share")
def chat_share(
    chat_id: Annotated[str, typer.Argument()],
    visibility: Annotated[str, typer.Argument(help="private, link (anyone with the URL reads it) or public")],
    user: Annotated[str | None, _USER_OPTION] = None,
) -> None:
    """Share a chat or make it private again, as PATCH /api/chats/ID {"visibility"} does."""
    if visibility not in ("private", "link", "public"):
        fail(f"visibility must be private, link or public, got {visibility!r}", code=2)

    async def body(vault: Vault) -> Chat:
        owner = await _owner(vault, chat_id, user)
        return await vault.update_chat(chat_id, user_id=owner, visibility=visibility)  # type: ignore[arg-type]

    chat = run_with_vault(body)
    console.print(f"{chat.id}: {chat.visibility} · {chat.url}", highlight=False)


@chat_app.command("delete")
def chat_delete(
    chat_id: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask")] = False,
    user: Annotated[str | None, _USER_OPTION] = None,
) -> None:
    """Delete a chat with its messages and generations, as DELETE /api/chats/ID does."""
    if not yes and not typer.confirm(f"Delete chat {chat_id} with its messages and generations?", err=True):
        raise typer.Exit(1)

    async def body(vault: Vault) -> None:
        owner = await _owner(vault, chat_id, user)
        await vault.delete_chat(chat_id, user_id=owner)

    run_with_vault(body)
    err_console.print(f"deleted {chat_id}", highlight=False)


@dataclass
class _ImportReport:
    chats: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    converted: int = 0
    merged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=lambda: {"inserted": 0, "unchanged": 0, "updated": 0})


@app.command("import-v4")
def import_v4(
    path: Annotated[Path, typer.Argument(help="JSONL: one chat per line, {id, messages, user_id?, title?}")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Convert and report; write nothing")] = False,
    user: Annotated[str, typer.Option("--user", help="Owner of chats whose line has no user_id")] = "local",
) -> None:
    """Import AI SDK v4 chats, converted to v5 UIMessages. Chat and message ids are kept; a chat
    that fails to convert is skipped whole; running it again changes nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not path.is_file():
        fail(f"no such file: {path}", code=2)
    lines = path.read_text(encoding="utf-8").splitlines()
    report = _ImportReport()

    async def body(vault: Vault) -> None:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            task = progress.add_task("importing v4 chats" if not dry_run else "checking v4 chats", total=len(lines))
            for number, line in enumerate(lines, start=1):
                progress.advance(task)
                if not line.strip():
                    continue
                await _import_line(vault, number, line, user, dry_run, report)

    run_with_vault(body)
    table = Table(box=None, header_style="bold", title="dry run: nothing written" if dry_run else None)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("chats imported" if not dry_run else "chats that would import", str(report.chats))
    table.add_row("chats failed (nothing written)", str(len(report.failed)))
    table.add_row("messages converted", str(report.converted))
    table.add_row("messages merged into another", str(len(report.merged)))
    table.add_row("messages skipped", str(len(report.skipped)))
    if not dry_run:
        for name, count in report.written.items():
            table.add_row(f"messages {name}", str(count))
    console.print(table)
    for line_no, chat_id, reason in report.failed:
        console.print(f"[red]line {line_no} (chat {chat_id}):[/] {reason}", highlight=False)
    for note in report.merged + report.skipped:
        console.print(f"[dim]{note}[/]", highlight=False)
    if report.failed:
        raise typer.Exit(1)


async def _import_line(vault: Vault, number: int, line: str, user: str, dry_run: bool, report: _ImportReport) -> None:
    from genvault.messages.ui import message_to_json
    from genvault.messages.v4 import convert_v4_messages

    chat_id = "?"
    try:
        record = loads_json(line.encode(), "the line")
        if not isinstance(record, dict):
            raise ValueError("the line is not a JSON object")
        chat_id = str(record.get("id") or "")
        if not chat_id:
            raise ValueError('the line has no "id"')
        conversion = convert_v4_messages(record.get("messages"))
        messages = [message_to_json(m) for m in conversion.messages]
        owner = str(record.get("user_id") or user)
        title = record.get("title")
        if not dry_run:
            counts = await vault.import_chat(chat_id, messages, user_id=owner, title=title)
            for name, count in counts.items():
                report.written[name] += count
    except (ValueError, GenvaultError) as exc:
        reason = exc.message if isinstance(exc, GenvaultError) else str(exc)
        report.failed.append((number, chat_id, reason))
        return
    report.chats += 1
    report.converted += len(conversion.entries("converted"))
    for entry in conversion.entries("merged"):
        report.merged.append(
            f"chat {chat_id}: message {entry.source_id or entry.index} merged into {entry.target_id} ({entry.reason})"
        )
    for entry in conversion.entries("skipped"):
        report.skipped.append(f"chat {chat_id}: message {entry.source_id or entry.index} skipped: {entry.reason}")
