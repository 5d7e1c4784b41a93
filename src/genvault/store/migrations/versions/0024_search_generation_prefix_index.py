"""search: FTS5 prefix indexes on generations (SQLite)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 03:00:00

Revision 0023 gave message parts prefix indexes; generations' prompts and outputs had none, so
`migra*` for one user read and merged the doclists of every word starting with `migra` in every
user's generations before the owner narrowed them: at a million messages and 200,000 generations
that was 1.2 ms of a user's `migra*` search, the largest of its matches (parts with their prefix
index: 0.3 ms). With `prefix = '3 4 5'`, as on parts, the owner intersection happens in the index.
Chat titles (one short line per chat) are left as they are.

FTS5 options cannot be altered: the table is dropped and made again with the same columns and
tokenizer, its merge settings set again, and rebuilt from its view (the content stays where it is:
the view over `generations`; its triggers name the table, not its options, and stay). PostgreSQL:
nothing (the GIN index serves prefixes from its sorted entries).
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"


def _recreate(prefix: str | None) -> None:
    option = f", prefix = '{prefix}'" if prefix else ""
    op.execute("DROP TABLE search_generations")
    op.execute(
        "CREATE VIRTUAL TABLE search_generations USING fts5(prompt, output, owner, "
        f"content = 'search_generations_source', content_rowid = 'id', {_TOKENIZE}{option})"
    )
    op.execute("INSERT INTO search_generations (search_generations, rank) VALUES ('automerge', 16)")
    op.execute("INSERT INTO search_generations (search_generations, rank) VALUES ('crisismerge', 32)")
    op.execute("INSERT INTO search_generations (search_generations) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate("3 4 5")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(None)
