"""`alembic upgrade head` on an empty database gives exactly the schema in `store/schema.py`."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from genvault.store import Store
from genvault.store.schema import metadata


async def test_upgrade_head_on_an_empty_database_matches_the_metadata_exactly(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    store = Store(url, schema=schema)
    try:
        await store.upgrade()
        await store.upgrade()  # a second run is a no-op

        async with store.engine.connect() as conn:

            def diff(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(context, metadata))

            differences = await conn.run_sync(diff)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert differences == []
        assert set(metadata.tables) <= tables
    finally:
        await store.aclose()
