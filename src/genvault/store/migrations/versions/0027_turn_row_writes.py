"""a chat turn's row writes: no search index entries or trigger calls for rows without a search
vector, no index on generations.cache_key

Revision ID: 0027
Revises: 0024
Create Date: 2026-12-06 11:00:00

Most rows written on a chat turn have no search vector: a chat's generations never do (their
text is searched through the message parts), nor does any generation before it ends, nor a part
that is not text. Yet each of their row versions (a chat turn writes its generation three
times: pending, streaming, final) still called the vector trigger's PL/pgSQL function, which
only set NULL, and added a NULL item to the GIN index, which no search reads (a search matches
`search_vector @@ …`, true of no NULL). On PostgreSQL:

- the GIN indexes on `parts` and `generations` become partial, `WHERE search_vector IS NOT NULL`
  (a search's match, a strict operator on the column, implies it, so the planner uses them as
  before);
- each vector trigger runs only when its function can set a vector, or must clear one: `WHEN (<the
  function's own condition> OR NEW.search_vector IS NOT NULL)`. Skipped, the function would have
  set NULL where NULL already is, so every row keeps the vector it had.

SQLite: nothing of this (its FTS5 tables index only the rows their views select).

Both databases: `ix_generations_cache_key` is dropped. Nothing has ever looked a generation up
by its cache key (the dedup cache keeps `cache_entries`), yet the index took an entry for every
row and, on PostgreSQL, for every row version too (none of a turn's three writes of its
generation is a HOT update): three index insertions a chat turn for no reader.

Measured on a chat turn's row writes (docs/benchmarks.md, "pgturn2"): trigger calls 15 → 11, WAL
records 54 → 47, WAL bytes and buffers touched −10…−13 %.

A database with rows gets its new indexes built CONCURRENTLY beside the old ones, which are then
dropped (and the cache key's index dropped CONCURRENTLY): searches keep an index and writers are
never blocked for the build.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0024"
branch_labels = None
depends_on = None

_CACHE_KEY_INDEX = "ix_generations_cache_key"
_CREATE_CACHE_KEY_INDEX = f"CREATE INDEX {_CACHE_KEY_INDEX} ON generations (cache_key)"
_TERMINAL = "('complete', 'error', 'cancelled', 'interrupted')"
# (table, index, the trigger function's condition for a vector (revision 0009), watched columns)
_TABLES = [
    ("parts", "ix_parts_search", "NEW.type = 'text'", "type, text_text, user_id"),
    (
        "generations",
        "ix_generations_search",
        f"NEW.kind <> 'chat' AND NEW.status IN {_TERMINAL}",
        "kind, status, request, result_text, user_id",
    ),
]


def _triggers(only_with_vector: bool) -> None:
    for table, _, condition, watched in _TABLES:
        when = f"WHEN (({condition}) OR NEW.search_vector IS NOT NULL) " if only_with_vector else ""
        op.execute(f"DROP TRIGGER IF EXISTS {table}_search_vector ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_search_vector BEFORE INSERT OR UPDATE OF {watched} ON {table} "
            f"FOR EACH ROW {when}EXECUTE FUNCTION {table}_search_vector()"
        )


def _pg_indexes(upgrading: bool) -> None:
    """Each search index on `search_vector` made again, partial (upgrading) or whole, and the
    cache key's index dropped (upgrading) or made again."""
    where = " WHERE search_vector IS NOT NULL" if upgrading else ""
    bind = op.get_bind()
    filled = any(bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {t})")).scalar() for t, *_ in _TABLES)
    if not filled:  # nothing to index: plain statements, in the revision's transaction
        for table, index, *_ in _TABLES:
            op.execute(f"DROP INDEX IF EXISTS {index}")
            op.execute(f"CREATE INDEX {index} ON {table} USING gin (search_vector){where}")
        op.execute(f"DROP INDEX IF EXISTS {_CACHE_KEY_INDEX}" if upgrading else _CREATE_CACHE_KEY_INDEX)
        return
    with op.get_context().autocommit_block():
        for table, index, *_ in _TABLES:
            new = f"{index}_new"
            # A build that failed half-way leaves an INVALID index: dropped, so this run builds it again.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {new}")
            op.execute(f"CREATE INDEX CONCURRENTLY {new} ON {table} USING gin (search_vector){where}")
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
            op.execute(f"ALTER INDEX {new} RENAME TO {index}")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_CACHE_KEY_INDEX}")
        if not upgrading:
            op.execute(_CREATE_CACHE_KEY_INDEX.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP INDEX IF EXISTS {_CACHE_KEY_INDEX}")
        return
    _triggers(only_with_vector=True)
    _pg_indexes(upgrading=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_CREATE_CACHE_KEY_INDEX)
        return
    _triggers(only_with_vector=False)
    _pg_indexes(upgrading=False)
