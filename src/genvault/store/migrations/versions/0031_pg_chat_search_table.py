"""PostgreSQL: a chat title's search vector in a narrow table of its own, off the chats row

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 17:30:00

Revision 0009 indexed chat titles with a GIN index on an expression of the `chats` row,
`ix_chats_search`. Every chat-row bump (`last_seq`, `updated_at`: twice per chat turn, once per
append) is a non-HOT update, since `updated_at` is in the chat list's index, so each bump
evaluated `to_tsvector('simple', title) || array_to_tsvector(ARRAY['#' || md5(user_id)])` and
inserted a GIN entry for the new row version (a NULL-item entry for an untitled chat), though
the title had not changed.

Now the vector lives in `chat_search` (`chat_id` → chats, ON DELETE CASCADE; `search_vector`),
with its GIN index `ix_chat_search_vector`, one row per titled chat. The trigger
`chats_search_vector`, AFTER INSERT OR UPDATE OF title, user_id ON chats, writes it: an UPDATE
whose SET names neither column does not fire it (no WHEN condition, which PostgreSQL would read
back per statement), so a bump computes and inserts nothing. A title set to NULL deletes the
row, as NULL never matched. Search joins it (`genvault.search.service`). The vector is the same
expression, so the same chats match and rank the same. SQLite: nothing (revision 0028 queues its
title changes already).

The migration fills the table from the titled chats in its own transaction (the trigger, created
first in that transaction, holds off chat writers until it commits), builds the index on the
filled table and drops `ix_chats_search`. The downgrade builds `ix_chats_search` again and
drops the table, trigger and function.
"""

from __future__ import annotations

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

# The expression of revision 0009's index, `{r}` the row's prefix.
_VECTOR = "(to_tsvector('simple', {r}title) || array_to_tsvector(ARRAY['#' || md5({r}user_id)]))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE chat_search (chat_id varchar(200) PRIMARY KEY REFERENCES chats (id) ON DELETE CASCADE, "
        "search_vector tsvector NOT NULL)"
    )
    vector = _VECTOR.format(r="NEW.")
    op.execute(
        "CREATE FUNCTION chats_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        # A new chat has no row yet: a plain INSERT (ON CONFLICT's speculative insertion costs a
        # WAL record more).
        f"IF TG_OP = 'INSERT' THEN INSERT INTO chat_search (chat_id, search_vector) VALUES (NEW.id, {vector}); "
        "ELSIF NEW.title IS NULL THEN DELETE FROM chat_search WHERE chat_id = NEW.id; "
        f"ELSE INSERT INTO chat_search (chat_id, search_vector) VALUES (NEW.id, {vector}) "
        "ON CONFLICT (chat_id) DO UPDATE SET search_vector = excluded.search_vector; END IF; "
        "RETURN NULL; END $$"
    )
    # On INSERT only a titled chat calls it: a WHEN on an INSERT trigger costs the statements
    # that insert chats (a turn's opening, once per chat), not the bumps.
    op.execute(
        "CREATE TRIGGER chats_search_vector_insert AFTER INSERT ON chats FOR EACH ROW "
        "WHEN (NEW.title IS NOT NULL) EXECUTE FUNCTION chats_search_vector()"
    )
    op.execute(
        "CREATE TRIGGER chats_search_vector AFTER UPDATE OF title, user_id ON chats "
        "FOR EACH ROW EXECUTE FUNCTION chats_search_vector()"
    )
    op.execute(
        f"INSERT INTO chat_search (chat_id, search_vector) SELECT c.id, {_VECTOR.format(r='c.')} FROM chats c "
        "WHERE c.title IS NOT NULL"
    )
    op.execute("CREATE INDEX ix_chat_search_vector ON chat_search USING gin (search_vector)")
    op.execute("DROP INDEX IF EXISTS ix_chats_search")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS ix_chats_search ON chats USING gin ({_VECTOR.format(r='')})")
    op.execute("DROP TRIGGER chats_search_vector ON chats")
    op.execute("DROP TRIGGER chats_search_vector_insert ON chats")
    op.execute("DROP FUNCTION chats_search_vector()")
    op.execute("DROP TABLE chat_search")
