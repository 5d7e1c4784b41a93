"""generations.kind admits `embedding` (and is 16 characters wide)

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-05 21:20:00

PostgreSQL: widen the column (a catalog change, no rewrite) and swap the CHECK; the triggers
that name the column are put back as they were.

SQLite cannot alter a CHECK, and the usual way round (a batch copy into a new table) would drop
the search index's triggers and view on `generations` and renumber the rowids its FTS5 table
points at. Loosening a CHECK that every row already meets is the case SQLite's ALTER TABLE page
documents for editing the stored schema text (`writable_schema`, then a bumped
`schema_version`): no row is touched, the triggers and rowids stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

_OLD = "kind IN ('text', 'chat', 'image')"
_NEW = "kind IN ('text', 'chat', 'image', 'embedding')"


def _sqlite_schema(old: tuple[str, str], new: tuple[str, str]) -> None:
    conn = op.get_bind()
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'generations'").scalar()
    assert isinstance(sql, str)
    changed = sql.replace(f"kind {old[0]} NOT NULL", f"kind {new[0]} NOT NULL").replace(old[1], new[1])
    if changed.count(new[1]) != 1 or f"kind {new[0]} NOT NULL" not in changed:
        raise RuntimeError("generations' stored schema is not the one this revision expects; not changing it")
    version = int(conn.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'generations'", (changed,))
    conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def _postgres(width: int, check: str) -> None:
    # A column named in a trigger's `UPDATE OF` list cannot change type (the search index's
    # trigger names `kind`): take the triggers off and put them back exactly as they were, all in
    # this migration's transaction.
    conn = op.get_bind()
    triggers = conn.execute(
        sa.text(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE tgrelid = 'generations'::regclass AND NOT tgisinternal"
        )
    ).all()
    for name, _definition in triggers:
        op.execute(f'DROP TRIGGER "{name}" ON generations')
    op.drop_constraint(op.f("ck_generations_kind"), "generations", type_="check")
    op.alter_column("generations", "kind", type_=sa.String(width), existing_nullable=False)
    for _name, definition in triggers:
        op.execute(definition)
    op.create_check_constraint(op.f("ck_generations_kind"), "generations", check)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_schema(("VARCHAR(8)", _OLD), ("VARCHAR(16)", _NEW))
    else:
        _postgres(16, _NEW)


def downgrade() -> None:
    op.execute("DELETE FROM generations WHERE kind = 'embedding'")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_schema(("VARCHAR(16)", _NEW), ("VARCHAR(8)", _OLD))
    else:
        _postgres(8, _OLD)
