"""The database objects search adds (revision 0009), by name: for the schema test, Alembic's
autogenerate (which must neither drop nor compare them, since SQLAlchemy's metadata cannot hold
FTS5 tables, triggers or GIN expression indexes), and for checking and rebuilding the index.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "PG_INDEXES",
    "PG_TRIGGERS",
    "PG_VECTOR_COLUMN",
    "PG_VECTOR_TABLES",
    "SQLITE_FTS_TABLES",
    "SQLITE_QUEUE",
    "SQLITE_TRIGGERS",
    "SQLITE_VIEWS",
    "is_search_object",
    "missing_objects",
    "rebuild",
]

SQLITE_FTS_TABLES = ("search_parts", "search_chats", "search_generations")
# Changes to message parts and chat titles wait here for the index (`genvault.search.pending`,
# revisions 0009 and 0028).
SQLITE_QUEUE = "search_parts_pending"
SQLITE_VIEWS = tuple(f"{t}_source" for t in SQLITE_FTS_TABLES)
SQLITE_TRIGGERS = tuple(f"{t}_{event}" for t in SQLITE_FTS_TABLES for event in ("insert", "delete", "update"))
# FTS5 keeps each index in shadow tables named after it.
_SHADOW_SUFFIXES = ("_data", "_idx", "_docsize", "_config", "_content")
PG_INDEXES = ("ix_parts_search", "ix_chats_search", "ix_generations_search")
# Parts and generations keep their tsvector in this column, set by a trigger of the same name
# as its function (`<table>_search_vector`); a part's insert by `parts_insert_search_vector`
# (revision 0034: it fires only for a row whose vector is not what its type calls for, as
# genvault's own inserts write the vector in the statement) and its update by `parts_search_vector`.
PG_VECTOR_COLUMN = "search_vector"
PG_VECTOR_TABLES = ("parts", "generations")
PG_TRIGGERS = (*(f"{t}_search_vector" for t in PG_VECTOR_TABLES), "parts_insert_search_vector")


def is_search_object(name: str | None) -> bool:
    """True for a table, view, trigger or index that revision 0009 made for search."""
    if name is None:
        return False
    if (
        name in PG_INDEXES
        or name in (PG_VECTOR_COLUMN, SQLITE_QUEUE)
        or name in SQLITE_VIEWS
        or name in SQLITE_TRIGGERS
        or name in SQLITE_FTS_TABLES
    ):
        return True
    return any(name == t + s for t in SQLITE_FTS_TABLES for s in _SHADOW_SUFFIXES)


async def missing_objects(conn: AsyncConnection) -> list[str]:
    """The search objects this database should have and does not (valid ones, on PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        rows = await conn.execute(text("SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')"))
        present = {r[0] for r in rows}
        wanted = [*SQLITE_FTS_TABLES, SQLITE_QUEUE, *SQLITE_VIEWS, *SQLITE_TRIGGERS]
    else:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indisvalid AND pg_table_is_visible(c.oid)"
            )
        )
        present = {r[0] for r in rows}
        triggers = await conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        present |= {r[0] for r in triggers}
        columns = await conn.execute(
            text(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE column_name = :column AND table_schema = current_schema()"
            ),
            {"column": PG_VECTOR_COLUMN},
        )
        present |= {r[0] for r in columns}
        wanted = [*PG_INDEXES, *PG_TRIGGERS, *(f"{t}.{PG_VECTOR_COLUMN}" for t in PG_VECTOR_TABLES)]
    return [name for name in wanted if name not in present]


async def rebuild(conn: AsyncConnection) -> None:
    """Rebuild the SQLite indexes from the tables (after a VACUUM that renumbered rowids, or to
    repair them); PostgreSQL's REINDEX is the database's own."""
    if conn.dialect.name == "sqlite":
        for table in SQLITE_FTS_TABLES:
            await conn.execute(text(f"INSERT INTO {table} ({table}) VALUES ('rebuild')"))
        await conn.execute(text(f"DELETE FROM {SQLITE_QUEUE}"))  # the rebuild took in everything
    else:
        for index in PG_INDEXES:
            await conn.execute(text(f"REINDEX INDEX {index}"))
