"""What the database still holds of a user: the check behind every erasure test."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, func, select

from genvault.store.schema import metadata


async def rows_mentioning(store: Any, user: str) -> dict[str, int]:
    """Rows per `table.column` holding exactly `user`, over every string column of every table
    (not only the `*user_id` ones, so an id copied into any other column is found too)."""
    found = {}
    async with store.read() as conn:
        for table in metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String):
                    continue
                n = (await conn.execute(select(func.count()).select_from(table).where(column == user))).scalar()
                if n:
                    found[f"{table.name}.{column.name}"] = n
    return found
