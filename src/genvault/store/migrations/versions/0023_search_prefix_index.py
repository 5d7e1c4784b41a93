"""search: FTS5 prefix indexes on message parts (SQLite)

Revision ID: 0023
Revises: 0018
Create Date: 2026-12-06 00:30:00

Without a prefix index, FTS5 answers `migra*` by reading and merging the doclists of every word
in the corpus that starts with `migra`, every user's, before the owner column narrows them to
one user's rows: at 200k messages that was most of a user's search (23 ms of a 1.3 ms one with
the index, docs/search.md). With `prefix = '3 4 5'` FTS5 also keeps one doclist per 3-, 4- and
5-character prefix, which it seeks into like a word's: the owner intersection happens in the
index. Prefixes of those lengths are the ones that expand to many words; a longer one (`migrat*`)
expands to few and still reads the words' doclists; a 2-character one (`mi*`) too.

Cost: the parts index is about 2.6 times as large (docs/search.md); message parts reach it
through the queue (`genvault.search.pending`), off a chat turn's own transaction.

FTS5 options cannot be altered: the table is dropped and made again, and rebuilt from its view
(the content stays where it is: the view over `parts`). The queue is emptied, since the rebuild
read every row. PostgreSQL: nothing (the GIN index serves prefixes from its sorted entries).
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0018"
branch_labels = None
depends_on = None

_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"


def _recreate(prefix: str | None) -> None:
    option = f", prefix = '{prefix}'" if prefix else ""
    op.execute("DROP TABLE search_parts")
    op.execute(
        "CREATE VIRTUAL TABLE search_parts USING fts5(body, owner, content = 'search_parts_source', "
        f"content_rowid = 'id', {_TOKENIZE}{option})"
    )
    op.execute("INSERT INTO search_parts (search_parts, rank) VALUES ('automerge', 16)")
    op.execute("INSERT INTO search_parts (search_parts, rank) VALUES ('crisismerge', 32)")
    op.execute("INSERT INTO search_parts (search_parts) VALUES ('rebuild')")
    op.execute("DELETE FROM search_parts_pending")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate("3 4 5")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(None)
