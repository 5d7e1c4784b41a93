"""`genvault generate`: one text generation, streamed to the terminal while it is persisted."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from genvault.cli._app import acting_user, app, console, err_console, read_prompt, run_with_vault
from genvault.cli._render import join_wrapped, summary

if TYPE_CHECKING:
    from genvault.records import Generation
    from genvault.vault import Vault


@app.command()
def generate(
    prompt: Annotated[
        str | None, typer.Argument(help="The prompt to send; - (or none, with input piped in) reads standard input")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="provider/model, e.g. openai/gpt-4o-mini")] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature, 0 to 2")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Stop after this many output tokens")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed, where the provider supports one")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--key", help="Idempotency key: running again returns the same record")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Record it for this user id (default: local; created under local auth)"),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Always call the model, even for a request answered before")
    ] = False,
    cache_ttl: Annotated[
        float | None, typer.Option("--cache-ttl", help="Reuse an identical answer at most this many seconds old")
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag for the record (repeat for more)")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Metadata key=value (JSON values read as JSON; repeat)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final record as JSON instead")] = False,
) -> None:
    """Generate text, streaming it while every chunk is saved; prints the record's ID, usage and cost."""
    params = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    text = read_prompt(prompt)

    async def body(vault: Vault) -> Generation:
        import asyncio

        from genvault.labels import meta_pairs

        owner = await acting_user(vault, user)
        record = await vault.generate(
            text,
            model=model,
            system=system,
            params={k: v for k, v in params.items() if v is not None},
            idempotency_key=idempotency_key,
            user_id=owner,
            cache=not no_cache,
            cache_ttl=cache_ttl,
            tags=tags or None,
            metadata=meta_pairs(meta),
        )
        owner = record.user_id
        if not as_json:
            err_console.print(
                f"[dim]{join_wrapped([record.id, record.model], err_console.width)}[/]", highlight=False, soft_wrap=True
            )
        try:
            async for chunk in vault.stream(record.id, user_id=owner):
                if not as_json and chunk.get("type") == "text-delta":
                    console.out(chunk["delta"], end="", highlight=False)
        except asyncio.CancelledError:
            # Ctrl-C: an explicit stop; keep what was generated and say so in the record.
            await vault.cancel(record.id, user_id=owner)
            raise
        return await vault.wait(record.id, user_id=owner)

    try:
        final = run_with_vault(body)
    except KeyboardInterrupt:
        err_console.print("\n[magenta]cancelled[/] (partial output kept)")
        raise typer.Exit(130) from None
    if as_json:
        console.print_json(json.dumps(final.model_dump(mode="json")))
        return
    console.out("")
    if final.status == "error":
        err_console.print(f"[red]error:[/] {final.error}", highlight=False)
    err_console.print(summary(final, err_console.width), highlight=False, soft_wrap=True)
    if final.status != "complete":
        raise typer.Exit(1)
