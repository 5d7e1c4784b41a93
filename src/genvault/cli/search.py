"""`genvault search "…"`: every chat and generation, best match first (the operator's view:
all users unless `--user`)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from genvault.cli._app import app, console, parse_time, run_with_vault
from genvault.cli._render import when

if TYPE_CHECKING:  # imported when the command runs: `genvault --help` loads none of the engine
    from genvault.search import SearchPage
    from genvault.vault import Vault


@cache
def _marked() -> re.Pattern[str]:
    from genvault.search.snippet import MARK_CLOSE, MARK_OPEN

    return re.compile(re.escape(MARK_OPEN) + "(.*?)" + re.escape(MARK_CLOSE))


def snippet_markup(snippet: str) -> str:
    """A hit's snippet (HTML-escaped, matches in <mark>) as Rich markup, matches in bold."""
    import html

    out, at = [], 0
    for m in _marked().finditer(snippet):
        out.append(escape(html.unescape(snippet[at : m.start()])))
        out.append(f"[bold yellow]{escape(html.unescape(m.group(1)))}[/]")
        at = m.end()
    out.append(escape(html.unescape(snippet[at:])))
    return "".join(out)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help='Words, "a phrase", prefix*, -exclude')],
    user: Annotated[str | None, typer.Option("--user", help="Only this user's records (default: all users)")] = None,
    chat: Annotated[str | None, typer.Option("--chat", help="Only this chat")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="message, chat (titles) or generation")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this provider/model")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only messages of this role")] = None,
    status_: Annotated[str | None, typer.Option("--status", help="Only generations with this status")] = None,
    since: Annotated[str | None, typer.Option(help="From this time: 2026-11-01, or a span back: 2h, 7d")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only what is in chats or generations with this tag")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many hits")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page's cursor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one hit each")] = False,
) -> None:
    """Search every chat and generation: best match first, with the matching words highlighted."""
    since_at = parse_time(since, option="--since")

    async def body(vault: Vault) -> SearchPage:
        return await vault.search(
            query,
            user_id=user,
            chat_id=chat,
            kind=kind,
            model=model,
            role=role,
            status=status_,
            since=since_at,
            tag=tag,
            limit=limit,
            cursor=cursor,
        )

    page = run_with_vault(body)
    if as_json:
        for hit in page.items:
            console.out(json.dumps(hit.model_dump(mode="json"), ensure_ascii=False), highlight=False)
        return
    if not page.items:
        console.print("nothing found")
        return
    table = Table(show_lines=False)
    for name in ("what", "where", "snippet", "when"):
        table.add_column(name, overflow="fold")
    for hit in page.items:
        what = hit.kind if hit.kind != "message" else f"{hit.role} message"
        where = (
            hit.generation_id
            if hit.kind == "generation"
            else f"{hit.chat_id}" + (f" · {hit.message_id}" if hit.message_id else "")
        )
        table.add_row(what, escape(f"{where}\n{hit.url}"), snippet_markup(hit.snippet), when(hit.created_at))
    console.print(table)
    if page.next_cursor:
        console.print(f"[dim]more: --cursor {page.next_cursor}[/]", highlight=False)
