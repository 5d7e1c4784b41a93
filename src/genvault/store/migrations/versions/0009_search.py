"""full-text search: FTS5 tables kept by triggers (SQLite), GIN expression indexes (PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 18:20:00

SQLite: one external-content FTS5 table per kind of document (message text parts, chat titles,
finished text/image generations), its content a view over the table (no text is stored twice),
kept by AFTER INSERT/UPDATE/DELETE triggers, so every write path (appends, edits, deletes,
cascades, erasure, retention, import) keeps the index without knowing it exists. The triggers on
parts queue the change (`search_parts_pending`) for the index to take in batches; see
`_sqlite_parts_queue`. Each document
carries its owner as a token of its own column (`'u' || hex(user_id)`) so a user's search
intersects with their own rows inside the index.

PostgreSQL: a `tsvector` per document, `to_tsvector('simple', …)` plus an owner lexeme
`'#' || md5(user_id)` (the parser never makes a lexeme starting with '#', so no typed word can
match it), with a GIN index. Parts and generations keep it in a `search_vector` column set by a
BEFORE INSERT/UPDATE trigger (not a generated column: adding one rewrites the table under an
exclusive lock); chat titles, short, index the expression itself. On a database with rows the
column is filled in batches and the indexes built with CREATE INDEX CONCURRENTLY, outside the
migration's transaction, so writes go on meanwhile; on a new database a plain CREATE INDEX is
instant and stays in the transaction.

The statements are frozen here (a revision must not change when the code does); the queries in
`genvault.search.service` spell the same expressions, which is what lets them use the indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
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

_PG_OWNER = "array_to_tsvector(ARRAY['#' || md5({r}.user_id)])"
# Big tables keep their vector in a column, filled by a BEFORE trigger: a prefix or phrase match
# rechecks and ranks every candidate row, and recomputing to_tsvector for thousands of rows per
# query was far too slow (~70 µs a row). (table, column, the vector of row {r}, when it has one,
# the columns it depends on)
_PG_COLUMNS = [
    (
        "parts",
        f"to_tsvector('simple', {{r}}.text_text) || {_PG_OWNER}",
        "{r}.type = 'text'",
        ["type", "text_text", "user_id"],
    ),
    (
        "generations",
        "to_tsvector('simple', coalesce({r}.request ->> 'prompt', '')) || "
        f"to_tsvector('simple', coalesce({{r}}.result_text, '')) || {_PG_OWNER}",
        f"{{r}}.kind <> 'chat' AND {{r}}.status IN {_TERMINAL}",
        ["kind", "status", "request", "result_text", "user_id"],
    ),
]
# (index, table, indexed expression): titles are short, so chats index an expression instead.
_PG_INDEXES = [
    ("ix_parts_search", "parts", "(search_vector)"),
    ("ix_generations_search", "generations", "(search_vector)"),
    ("ix_chats_search", "chats", "(to_tsvector('simple', title) || array_to_tsvector(ARRAY['#' || md5(user_id)]))"),
]
_BATCH = 5000


def _sqlite_parts_queue() -> None:
    """Message parts, the chat turn's hot path, are queued rather than indexed in the writer's
    transaction: an FTS5 write costs every committing transaction a new segment (and its share of
    merges), which made a small append ~1.8x slower; a row in this queue costs a fraction of that.
    The queue is applied in batches (`genvault.search.pending`) before every search, so a search
    sees every committed write, and in the background. A deleted part's text is kept here only
    until then: the FTS5 'delete' needs the values that were indexed."""
    op.execute(
        "CREATE TABLE search_parts_pending (seq INTEGER PRIMARY KEY, rid INTEGER NOT NULL, "
        "op TEXT NOT NULL, body TEXT, owner TEXT)"
    )
    queue = "INSERT INTO search_parts_pending (rid, op, body, owner)"
    added = f"{queue} SELECT new.rowid, '+', NULL, NULL WHERE new.type = 'text';"
    removed = f"{queue} SELECT old.rowid, '-', old.text_text, 'u' || hex(old.user_id) WHERE old.type = 'text';"
    op.execute(f"CREATE TRIGGER search_parts_insert AFTER INSERT ON parts BEGIN {added} END")
    op.execute(f"CREATE TRIGGER search_parts_delete AFTER DELETE ON parts BEGIN {removed} END")
    op.execute(
        f"CREATE TRIGGER search_parts_update AFTER UPDATE OF type, text_text, user_id ON parts BEGIN {removed} {added} END"
    )


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
        if table == "parts":
            _sqlite_parts_queue()
        else:
            op.execute(f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {insert} END")
            op.execute(f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {delete} END")
            op.execute(
                f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {', '.join(watched)} ON {table} "
                f"BEGIN {delete} {insert} END"
            )
        # Each write transaction adds a segment to the index, and segments are merged as they
        # pile up: merging 16 at a time instead of FTS5's default 4 (and waiting longer before a
        # merge in the writer's own transaction is forced) cut the index's share of a small
        # append transaction by about a third (docs/search.md), for slightly more segments to read.
        op.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('automerge', 16)")
        op.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('crisismerge', 32)")
        # Existing rows: the index reads them through the view.
        op.execute(f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')")


def _pg_upgrade() -> None:
    conn = op.get_bind()
    for table, vector, when, watched in _PG_COLUMNS:
        # Adding a nullable column without a default rewrites nothing (no long lock).
        op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS search_vector tsvector")
        op.execute(
            f"CREATE OR REPLACE FUNCTION {table}_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN NEW.search_vector := CASE WHEN {when.format(r='NEW')} THEN {vector.format(r='NEW')} END; "
            "RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_search_vector BEFORE INSERT OR UPDATE OF {', '.join(watched)} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_search_vector()"
        )
    tables = [t for t, *_ in _PG_COLUMNS] + ["chats"]
    filled = {t: conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {t})")).scalar() for t in tables}
    if not any(filled.values()):  # a new database: nothing to fill, and plain CREATE INDEX is instant
        for name, table, expression in _PG_INDEXES:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({expression})")
        return
    # Existing rows: the trigger (committed first) covers every row written from now on; the rows
    # before it are filled in batches of their own transactions, then the indexes are built
    # CONCURRENTLY. Writers wait at most for one batch's row locks, never for the whole table.
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        for table, vector, when, _ in _PG_COLUMNS:
            _backfill(bind, table, vector.format(r="t"), when.format(r="t"))
        for name, table, expression in _PG_INDEXES:
            # A build that failed half-way (cancelled, a deadlock) leaves an INVALID index: drop it
            # so this run builds it again.
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
                op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {table} USING gin ({expression})")


def _backfill(bind: sa.Connection, table: str, vector: str, when: str) -> None:
    """Fill `search_vector` of the rows that qualify, a batch of primary keys per transaction."""
    key = {"parts": ["chat_id", "message_id", "position"], "generations": ["id"]}[table]
    cols = ", ".join(key)
    last: tuple[object, ...] | None = None
    while True:
        after = f"AND ({cols}) > ({', '.join(f':k{i}' for i in range(len(key)))})" if last else ""
        params = {f"k{i}": v for i, v in enumerate(last or ())}
        rows = bind.execute(
            sa.text(f"SELECT {cols} FROM {table} t WHERE true {after} ORDER BY {cols} LIMIT {_BATCH}"), params
        ).all()
        if not rows:
            return
        lo, hi = tuple(rows[0]), tuple(rows[-1])
        lo_p = {f"lo{i}": v for i, v in enumerate(lo)}
        hi_p = {f"hi{i}": v for i, v in enumerate(hi)}
        bind.execute(
            sa.text(
                f"UPDATE {table} t SET search_vector = {vector} WHERE {when} "
                f"AND ({cols}) >= ({', '.join(':' + k for k in lo_p)}) "
                f"AND ({cols}) <= ({', '.join(':' + k for k in hi_p)}) AND t.search_vector IS NULL"
            ),
            lo_p | hi_p,
        )
        last = hi


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
        op.execute("DROP TABLE IF EXISTS search_parts_pending")
    else:
        for name, *_ in _PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        for table, *_ in _PG_COLUMNS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_search_vector ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_search_vector()")
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_vector")
