"""Alembic environment: runs on the connection `genvault.store.db.upgrade` hands over.

`render_as_batch` lets revisions alter tables on SQLite (which recreates them); comparing types
keeps autogenerate honest about column types on both databases.
"""

from __future__ import annotations

from alembic import context

from genvault.search.ddl import is_search_object
from genvault.store.schema import in_dialect, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `genvault db upgrade` (genvault.store.db.upgrade)")
dialect = connection.dialect.name

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
    # Search's FTS5 tables, views, triggers and GIN expression indexes (revision 0009) are not in
    # the metadata, which cannot express them: autogenerate must leave them alone.
    include_name=lambda name, type_, parent_names: not is_search_object(name),
    # An index or constraint of one database only (`ddl_if`) is not looked for in the other.
    include_object=lambda item, name, type_, reflected, compare_to: reflected or in_dialect(item, dialect),
)
with context.begin_transaction():
    context.run_migrations()
