"""SQLite: chat titles reach the search index through the queue, as message parts do; the turn's
CHECK constraints without a list

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 14:00:00

A new chat's first turn inserts its row in the turn's opening transaction, and the chat title's
FTS5 trigger (revision 0009) wrote the index right there: an FTS5 write in a transaction costs
it the index's structure read, a new segment of its own, its pages in the WAL at the commit, and
its share of the merges. On a SQLite chat turn that was ~145,000 instructions of the writer
connection's thread (~8 % of its 1.9 M; docs/benchmarks.md, litewriter), the largest single
object of the turn's schema. Message parts have gone through a queue since revision 0009
(`search_parts_pending`, applied in batches by `genvault.search.pending` before every search and
in the background); the chat triggers now queue their changes in the same table, with the ops
`c+` (a row now to index) and `c-` (a row that was indexed, with the values it was indexed
with). A search already applies the queue first (its statement checks the table is empty), as
does the chat list's `q` filter, so what a search sees is unchanged: every committed write.

The index already holds every title when this revision runs, and the queue takes every change
from then on. Downgrade: the direct triggers again, the queued chat changes dropped and the
titles' index rebuilt from its view (so it holds what the table holds).

Second, the CHECK constraints a chat turn's rows meet: `chats.visibility`, `messages.role`,
`generations.kind` and `.status`, and `parts`' tool state are written `x = 'a' OR x = 'b' ...`
instead of `x IN ('a', 'b', ...)`. SQLite evaluates an IN list of more than two constants by
building an ephemeral table of its values, once per statement run: six a turn (the chats, two
messages, the generations INSERT's two checks and the finalize's status check), ~190,000
instructions of the writer thread's SQL a turn (docs/benchmarks.md, litewriter, round 2). The
same condition, so every row already meets it: the stored schema text is edited as revision 0018
did (`writable_schema`, a bumped `schema_version`; SQLite's ALTER TABLE page documents this for a
change that touches no row), and the downgrade edits it back.

PostgreSQL: nothing (its chat titles are an expression index, no trigger; its IN lists cost no
table).
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_QUEUE = "INSERT INTO search_parts_pending (rid, op, body, owner)"
_OWNER = "'u' || hex({r}.user_id)"
_FTS = "INSERT INTO search_chats"


def _triggers(queued: bool) -> None:
    if queued:
        added = f"{_QUEUE} SELECT new.rowid, 'c+', NULL, NULL WHERE new.title IS NOT NULL;"
        removed = f"{_QUEUE} SELECT old.rowid, 'c-', old.title, {_OWNER.format(r='old')} WHERE old.title IS NOT NULL;"
    else:  # revision 0009's
        added = (
            f"{_FTS} (rowid, body, owner) SELECT new.rowid, new.title, {_OWNER.format(r='new')} "
            "WHERE new.title IS NOT NULL;"
        )
        removed = (
            f"{_FTS} (search_chats, rowid, body, owner) SELECT 'delete', old.rowid, old.title, "
            f"{_OWNER.format(r='old')} WHERE old.title IS NOT NULL;"
        )
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS search_chats_{event}")
    op.execute(f"CREATE TRIGGER search_chats_insert AFTER INSERT ON chats BEGIN {added} END")
    op.execute(f"CREATE TRIGGER search_chats_delete AFTER DELETE ON chats BEGIN {removed} END")
    op.execute(
        f"CREATE TRIGGER search_chats_update AFTER UPDATE OF title, user_id ON chats BEGIN {removed} {added} END"
    )


def _listed(column: str, values: tuple[str, ...]) -> tuple[str, str]:
    """A CHECK's text as an IN list, and as the same condition in comparisons."""
    return (
        f"{column} IN ({', '.join(repr(v) for v in values)})",
        " OR ".join(f"{column} = {v!r}" for v in values),
    )


# (table, condition as created, condition as comparisons); the texts are revisions 0001's and
# 0018's, as SQLite stored them.
_CHECKS = (
    ("chats", *_listed("visibility", ("private", "link", "public"))),
    ("messages", *_listed("role", ("system", "user", "assistant"))),
    ("generations", *_listed("kind", ("text", "chat", "image", "embedding"))),
    ("generations", *_listed("status", ("pending", "streaming", "complete", "error", "cancelled", "interrupted"))),
    ("parts", *_listed("state", ("input-streaming", "input-available", "output-available", "output-error"))),
)


def _checks(compared: bool) -> None:
    conn = op.get_bind()
    texts: dict[str, str] = {}
    for table, listed, comparisons in _CHECKS:
        old, new = (listed, comparisons) if compared else (comparisons, listed)
        sql = (
            texts.get(table)
            or conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).scalar()
        )
        if not isinstance(sql, str) or sql.count(old) != 1 or new in sql:
            raise RuntimeError(f"{table}'s stored schema is not the one this revision expects; not changing it")
        texts[table] = sql.replace(old, new)
    version = int(conn.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    for table, sql in texts.items():
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql, table))
    conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _triggers(queued=True)
    _checks(compared=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _checks(compared=False)
    _triggers(queued=False)
    op.execute("DELETE FROM search_parts_pending WHERE op IN ('c+', 'c-')")
    op.execute("INSERT INTO search_chats (search_chats) VALUES ('rebuild')")
