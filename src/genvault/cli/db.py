"""`genvault db …`: the schema."""

from __future__ import annotations

import typer

from genvault.cli._app import app, console, settings_from

db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade() -> None:
    """Create or upgrade the schema to the latest revision (safe to run again)."""
    from genvault.store import Store

    settings = settings_from()

    async def run() -> None:
        store = Store(settings.resolved_database_url, schema=settings.database_schema)
        try:
            await store.upgrade()
        finally:
            await store.aclose()

    import asyncio

    asyncio.run(run())
    console.print(f"schema is up to date: [bold]{_safe(settings.resolved_database_url)}[/]", highlight=False)


@db_app.command("url")
def url() -> None:
    """Print the database URL in use (password hidden)."""
    console.print(_safe(settings_from().resolved_database_url), highlight=False)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
