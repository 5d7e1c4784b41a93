"""`genvault embed`: one embedding call, kept as a record of kind `embedding`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import acting_user, app, console, err_console, run_with_vault
from genvault.cli._render import summary

if TYPE_CHECKING:
    from genvault.records import Generation
    from genvault.vault import Vault


@app.command()
def embed(
    texts: Annotated[list[str], typer.Argument(help="The texts to embed, one vector each")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="provider/model, e.g. openai/text-embedding-3-small (default: offline)"),
    ] = None,
    dimensions: Annotated[int | None, typer.Option("--dimensions", help="Ask for vectors this long")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--key", help="Idempotency key: running again returns the same record")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Record it for this user id (default: local; created under local auth)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final record as JSON, with the vectors as `embeddings`")
    ] = False,
) -> None:
    """Embed texts; prints the record's ID, the vectors' length, usage and cost (`--json`: the vectors)."""
    from genvault.embeddings import decode_vector, embedding_result

    async def body(vault: Vault) -> Generation:
        owner = await acting_user(vault, user)
        record = await vault.embed(
            texts, model=model, dimensions=dimensions, idempotency_key=idempotency_key, user_id=owner
        )
        return await vault.wait(record.id, user_id=record.user_id)

    final = run_with_vault(body)
    vectors = [decode_vector(v) for v in embedding_result(final)] if final.status == "complete" else []
    if as_json:
        console.print_json(json.dumps({**final.model_dump(mode="json"), "embeddings": vectors}))
    else:
        if vectors:
            console.out(f"{len(vectors)} vectors of {len(vectors[0])} dimensions", highlight=False)
        if final.status == "error":
            err_console.print(f"[red]error:[/] {final.error}", highlight=False)
        err_console.print(summary(final, err_console.width), highlight=False, soft_wrap=True)
    if final.status != "complete":
        raise typer.Exit(1)
