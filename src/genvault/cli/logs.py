"""`genvault logs` and `genvault show`: reading the records."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import app, console, parse_time, run_with_vault
from genvault.cli._render import generations_table, join_wrapped, status, tokens, usd, when

if TYPE_CHECKING:
    from genvault.records import Generation, Page
    from genvault.vault import Vault


@app.command()
def logs(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this provider/model")] = None,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's records (default: all users)")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="text, chat, image or embedding")] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query", "-q", help='Only records whose prompt or output matches: words, "a phrase", migra*, -draft'
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this time: 2026-11-01, or a span back: 2h, 7d")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only records carrying this tag")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page's cursor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one record each")] = False,
) -> None:
    """List generation records, newest first."""
    since_at = parse_time(since, option="--since")

    async def body(vault: Vault) -> Page[Generation]:
        return await vault.list_generations(
            user_id=user,
            model=model,
            status=status_,
            kind=kind,
            since=since_at,
            limit=limit,
            cursor=cursor,
            q=query,
            tag=tag,
        )

    page = run_with_vault(body)
    if as_json:
        for record in page.items:
            console.out(json.dumps(record.model_dump(mode="json"), ensure_ascii=False), highlight=False)
        return
    if not page.items:
        console.print("no generations match")
        return
    console.print(generations_table(page.items, console.width))
    if page.next_cursor:
        console.print(f"[dim]more: --cursor {page.next_cursor}[/]", highlight=False)


@app.command()
def show(
    generation_id: Annotated[str, typer.Argument(help="The generation's ID")],
    as_json: Annotated[bool, typer.Option("--json", help="The full record as JSON")] = False,
) -> None:
    """Show one generation record: request, output, usage, cost and timings."""

    async def body(vault: Vault) -> Generation:
        return await vault.get_generation(generation_id, user_id=None)

    record = run_with_vault(body)
    if as_json:
        console.print_json(json.dumps(record.model_dump(mode="json")))
        return
    from rich.panel import Panel

    u = record.usage
    inner = max(console.width - 4, 20)  # inside the panel's border and padding
    rows: list[list[str]] = [
        [f"[bold]{record.id}[/]", status(record.status), record.kind, record.model],
        [f"user {record.user_id}", *([f"chat {record.chat_id}"] if record.chat_id else [])],
        [
            f"created {when(record.created_at)}",
            f"first token {when(record.first_token_at)}",
            f"finished {when(record.finished_at)}",
        ],
        [
            f"tokens: {tokens(u.input_tokens)} in ({tokens(u.cached_input_tokens)} cached)",
            f"{tokens(u.output_tokens)} out ({tokens(u.reasoning_tokens)} reasoning)",
            f"{tokens(u.total_tokens)} total",
        ],
        [f"cost {usd(record.cost_usd)}" + (f" ({record.price_source})" if record.price_source else "")],
        [f"finish reason {record.finish_reason or '-'}", record.url],
    ]
    if record.cached_from:
        rows.append([f"from cache ({record.cached_from})", f"saved {usd(record.saved_usd)}"])
    lines = [join_wrapped(row, inner) for row in rows]
    if record.error:
        lines.append(f"[red]error:[/] {record.error}")
    console.print(Panel("\n".join(lines), expand=False), highlight=False)
    prompt = record.request.get("prompt")
    if prompt:
        console.print(Panel(str(prompt), title="prompt", title_align="left"), highlight=False)
    if record.result_text:
        console.print(Panel(record.result_text, title="output", title_align="left"), highlight=False)
