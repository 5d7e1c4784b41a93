"""`genvault webhooks …`: subscribe URLs to events, read the delivery log, retry a delivery.

The CLI manages subscriptions and the log in the database; the server's processes deliver.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from genvault.cli._app import app, console, run_with_vault
from genvault.cli._render import when

if TYPE_CHECKING:  # imported when the command runs: `genvault --help` loads none of the engine
    from genvault.vault import Vault
    from genvault.webhooks import Delivery, Webhook, WebhookCreated

webhooks_app = typer.Typer(help="Webhooks: event deliveries to your URLs, signed.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where to POST the events (http or https)")],
    events: Annotated[
        list[str],
        typer.Option(
            "--event",
            help="An event to send (repeat): generation.completed, generation.failed, generation.cancelled, "
            "generation.interrupted, chat.deleted, user.erased",
        ),
    ],
    secret: Annotated[
        str | None, typer.Option("--secret", help="The signing secret (16+ characters; default: one is made)")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="A note for admins")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Subscribe a URL; prints its id and the signing secret (shown only now)."""

    async def body(vault: Vault) -> WebhookCreated:
        return await vault.webhooks.add(url, events, secret=secret, description=description)

    created = run_with_vault(body)
    if as_json:
        console.out(created.model_dump_json(indent=2))
        return
    console.print(f"webhook {created.id} → {created.url} ({', '.join(created.events)})", highlight=False)
    console.print(f"secret: {created.secret}", highlight=False)


@webhooks_app.command("list")
def webhooks_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Every webhook (never its secret)."""

    async def body(vault: Vault) -> list[Webhook]:
        return await vault.webhooks.all()

    found = run_with_vault(body)
    if as_json:
        console.out(json.dumps([w.model_dump(mode="json") for w in found], indent=2))
        return
    if not found:
        console.print("no webhooks")
        return
    table = Table("id", "url", "events", "active", "created", box=None, header_style="bold")
    for hook in found:
        table.add_row(hook.id, hook.url, ", ".join(hook.events), "yes" if hook.active else "no", when(hook.created_at))
    console.print(table)


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: Annotated[str, typer.Argument(help="The webhook's id")]) -> None:
    """Remove a webhook and its delivery log."""

    async def body(vault: Vault) -> None:
        await vault.webhooks.remove(webhook_id)

    run_with_vault(body)
    console.print(f"removed webhook {webhook_id}", highlight=False)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: Annotated[str, typer.Argument(help="The webhook's id")],
    status: Annotated[str | None, typer.Option("--status", help="Only pending, delivered or dead deliveries")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The delivery log: each event, its attempts, the last status code and error."""

    async def body(vault: Vault) -> list[Delivery]:
        wanted: Literal["pending", "delivered", "dead"] | None = status  # type: ignore[assignment]
        return await vault.webhooks.deliveries(webhook_id, status=wanted, limit=limit)

    found = run_with_vault(body)
    if as_json:
        console.out(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return
    if not found:
        console.print("no deliveries")
        return
    table = Table("id", "event", "status", "attempts", "code", "error", "created", box=None, header_style="bold")
    for d in found:
        code = "" if d.last_status_code is None else str(d.last_status_code)
        table.add_row(str(d.id), d.event, d.status, str(d.attempts), code, d.last_error or "", when(d.created_at))
    console.print(table)


@webhooks_app.command("retry")
def webhooks_retry(delivery_id: Annotated[int, typer.Argument(help="The delivery's id (see `deliveries`)")]) -> None:
    """Send a dead (or delivered) delivery again; the server's next pass sends it."""

    async def body(vault: Vault) -> Delivery:
        return await vault.webhooks.retry(delivery_id)

    retried = run_with_vault(body)
    console.print(f"delivery {retried.id} ({retried.event}) is pending again", highlight=False)
