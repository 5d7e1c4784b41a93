"""full-text search: FTS5 tables kept by triggers (SQLite), GIN expression indexes (PostgreSQL)

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-05 18:20:00

SQLite: one external-content FTS5 table per kind of document (message text parts, chat titles,
finished text/image generations), its content a view over the table (no text is stored twice),
kept by AFTER INSERT/UPDATE/DELETE triggers, so every write path (appends, edits, deletes,
cascades, erasure, retention, import) keeps the index without knowing it exists. Each document
carries its owner as a token of its own column (`'u' || hex(user_id)`) so a user's search
intersects with their own rows inside the index.

PostgreSQL: a GIN index on an expression per kind, `to_tsvector('simple', …)` plus an owner
lexeme `'#' || md5(user_id)` (the parser never makes a lexeme starting with '#', so no typed word
can match it). No column and no trigger: the database keeps the index on every write, and adding
it rewrites no table. On tables with rows it is built with CREATE INDEX CONCURRENTLY, outside the
migration's transaction, so writes go on while it builds; on empty tables (a new database) a plain
CREATE INDEX is instant and stays in the transaction.

The statements are frozen here (a revision must not change when the code does); the queries in
`genvault.search.service` spell the same expressions, which is what lets them use the indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

_TERMINAL = "('complete', 'error', 'cancelled', 'interrupted')"
_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"

# (table, FTS5 table, view, view's SELECT, FTS columns, a row's qualifying condition, its columns)
_OWNER = "'u' || hex({r}.user_id)"
_SQLITE = [
    (
        "parts",
        "search_parts",
        "search_parts_source",
        "SELECT rowid AS id, text_text AS body, 'u' || hex(user_id) AS owner FROM parts WHERE type = 'text'",
        ["body", "owner"],
        "{r}.type = 'text'",
        ["{r}.text_text", _OWNER],
        ["type", "text_text", "user_id"],
    ),
    (
        "chats",
        "search_chats",
        "search_chats_source",
        "SELECT rowid AS id, title AS body, 'u' || hex(user_id) AS owner FROM chats WHERE title IS NOT NULL",
        ["body", "owner"],
        "{r}.title IS NOT NULL",
        ["{r}.title", _OWNER],
        ["title", "user_id"],
    ),
    (
        "generations",
        "search_generations",
        "search_generations_source",
        "SELECT rowid AS id, json_extract(request, '$.prompt') AS prompt, result_text AS output, "
        f"'u' || hex(user_id) AS owner FROM generations WHERE kind <> 'chat' AND status IN {_TERMINAL}",
        ["prompt", "output", "owner"],
        f"{{r}}.kind <> 'chat' AND {{r}}.status IN {_TERMINAL}",
        ["json_extract({r}.request, '$.prompt')", "{r}.result_text", _OWNER],
        ["kind", "status", "request", "result_text", "user_id"],
    ),
]

_PG_OWNER = "array_to_tsvector(ARRAY['#' || md5(user_id)])"
_PG = [
    ("ix_parts_search", "parts", f"(to_tsvector('simple', text_text) || {_PG_OWNER})", "type = 'text'"),
    ("ix_chats_search", "chats", f"(to_tsvector('simple', title) || {_PG_OWNER})", None),
    (
        "ix_generations_search",
        "generations",
        "(to_tsvector('simple', coalesce(request ->> 'prompt', '')) || "
        f"to_tsvector('simple', coalesce(result_text, '')) || {_PG_OWNER})",
        f"kind <> 'chat' AND status IN {_TERMINAL}",
    ),
]


def _sqlite_upgrade() -> None:
    for table, fts, view, select, columns, when, values, watched in _SQLITE:
        op.execute(f"CREATE VIEW {view} AS {select}")
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({', '.join(columns)}, content = '{view}', "
            f"content_rowid = 'id', {_TOKENIZE})"
        )
        cols = ", ".join(columns)
        new = ", ".join(v.format(r="new") for v in values)
        old = ", ".join(v.format(r="old") for v in values)
        insert = f"INSERT INTO {fts} (rowid, {cols}) SELECT new.rowid, {new} WHERE {when.format(r='new')};"
        delete = (
            f"INSERT INTO {fts} ({fts}, rowid, {cols}) SELECT 'delete', old.rowid, {old} WHERE {when.format(r='old')};"
        )
        op.execute(f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {insert} END")
        op.execute(f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {delete} END")
        op.execute(
            f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {', '.join(watched)} ON {table} BEGIN {delete} {insert} END"
        )
        # Existing rows: the index reads them through the view.
        op.execute(f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')")


def _pg_upgrade() -> None:
    conn = op.get_bind()
    for name, table, expression, predicate in _PG:
        where = f" WHERE {predicate}" if predicate else ""
        has_rows = conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar()
        if not has_rows:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({expression}){where}")
            continue
        with op.get_context().autocommit_block():
            bind = op.get_bind()  # the block's own connection, in autocommit
            # A build that failed half-way (cancelled, or a deadlock) leaves an INVALID index
            # behind; drop it so this run builds it again.
            valid = bind.execute(
                sa.text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
                ),
                {"name": name},
            ).scalar()
            if valid is False:
                op.execute(f"DROP INDEX CONCURRENTLY {name}")
            if valid is not True:
                op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {table} USING gin ({expression}){where}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
    else:
        _pg_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for _table, fts, view, *_ in _SQLITE:
            for suffix in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
            op.execute(f"DROP VIEW IF EXISTS {view}")
    else:
        for name, *_ in _PG:
            op.execute(f"DROP INDEX IF EXISTS {name}")
