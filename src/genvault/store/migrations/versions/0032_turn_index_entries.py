"""fewer index entries per chat turn: the idempotency key's unique index over keyed rows only
(PostgreSQL), no index on `user_id` for messages and the dedup cache, and parts' over text parts

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06 19:15:00

`uq_generations_user_id_idempotency_key` was a table UNIQUE constraint, so its index held an
entry for every generation, keyed or not. Almost none has a key (a chat turn never has one unless
the client sends the header), and on PostgreSQL every new row version takes a new entry: the
insert's and the finalize's (never HOT: it sets `finished_at`, the predicate column of
`ix_generations_active`), two a turn. A unique index `WHERE idempotency_key IS NOT NULL`,
`uq_generations_idempotency_key`, refuses the same rows (NULLs never conflicted) and serves the
one look-up by key (`user_id = … AND idempotency_key = …` implies the predicate). SQLite keeps
its table constraint: dropping it means rebuilding `generations` (its triggers, its search
rowids), and there the finalize does not touch that index (SQLite rewrites only the indexes of
the columns an UPDATE sets), so one entry a turn is all it would save.

`ix_messages_user_id` and `ix_cache_entries_user_id`: a chat turn writes two messages, and every
completed turn's finalize a dedup cache entry, and these indexes took an entry for each, three a
turn. Nothing looks these rows up by user except erasing and exporting a user, which now find
them through their parents (`schema.owned_by`): a user's messages through their chats (the
primary key of `messages` leads with `chat_id`), their cache entries through their generations
(`ix_cache_entries_generation_id`, which the CASCADE from a deleted generation needs anyway).
Every such row is written by its parent's owner. Both databases.

`ix_parts_user_id` holds only text parts (`WHERE type = 'text'`), the ones search can match: a
prefix search reads and counts a user's own text parts by it (`search.service._pg_matched`, whose
query now says `type = 'text'`). A chat turn's other parts (a reply's `step-start`; tool calls,
reasoning, sources) took an entry each: one of a plain turn's three. Erasing and exporting a
user reach parts through their chats too (`pk_parts` leads with `chat_id`). Both databases.

On a PostgreSQL database with rows the partial index is built CONCURRENTLY (writers are not
blocked for the build) before the constraint goes, as revision 0029 did; the downgrade builds
the indexes by user the same way, and the full unique index, which it makes the constraint again
(`UNIQUE USING INDEX`) before the partial one goes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

_CONSTRAINT = "uq_generations_user_id_idempotency_key"
_INDEX = "uq_generations_idempotency_key"
_BY_USER = (("messages", "ix_messages_user_id"), ("cache_entries", "ix_cache_entries_user_id"))
_PARTS = "ix_parts_user_id"


def _concurrently(table: str) -> bool:
    """Whether an index on `table` is built and dropped CONCURRENTLY: on a PostgreSQL table that
    has rows (writers are not blocked for the build); an empty one takes the plain statement."""
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and bool(
        bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar()
    )


def _build(name: str, table: str, definition: str) -> None:
    """CREATE [UNIQUE] INDEX `name` ON `table` `definition`, concurrently where `_concurrently`."""
    create = f"CREATE {{unique}}INDEX {{how}}{name} ON {table} {definition}"
    unique = "UNIQUE " if name.startswith("uq_") else ""
    if not _concurrently(table):
        op.execute(create.format(unique=unique, how=""))
        return
    with op.get_context().autocommit_block():
        # A build that failed half-way leaves an INVALID index: dropped, so this run builds it again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute(create.format(unique=unique, how="CONCURRENTLY "))


def _parts_by_user(where: str) -> None:
    """`ix_parts_user_id` made again with `where`: built under another name first on a
    PostgreSQL table with rows, so a search always has one."""
    if not _concurrently("parts"):
        op.execute(f"DROP INDEX {_PARTS}")
        op.execute(f"CREATE INDEX {_PARTS} ON parts (user_id){where}")
        return
    _build(f"{_PARTS}_new", "parts", f"(user_id){where}")
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY {_PARTS}")
    op.execute(f"ALTER INDEX {_PARTS}_new RENAME TO {_PARTS}")


def upgrade() -> None:
    for _, name in _BY_USER:
        op.execute(f"DROP INDEX {name}")
    _parts_by_user(" WHERE type = 'text'")
    if op.get_bind().dialect.name != "postgresql":
        return
    _build(_INDEX, "generations", "(user_id, idempotency_key) WHERE idempotency_key IS NOT NULL")
    op.execute(f"ALTER TABLE generations DROP CONSTRAINT {_CONSTRAINT}")


def downgrade() -> None:
    _parts_by_user("")
    for table, name in _BY_USER:
        _build(name, table, "(user_id)")
    if op.get_bind().dialect.name != "postgresql":
        return
    _build(_CONSTRAINT, "generations", "(user_id, idempotency_key)")
    op.execute(f"ALTER TABLE generations ADD CONSTRAINT {_CONSTRAINT} UNIQUE USING INDEX {_CONSTRAINT}")
    op.execute(f"DROP INDEX {_INDEX}")
