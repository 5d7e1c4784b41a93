"""PostgreSQL: a part inserted with the search vector its text gets does not call
`parts_search_vector()`; updates still do

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 00:50:00

A text part's `search_vector` (revision 0009: `to_tsvector('simple', text_text)` and its owner's
lexeme; NULL for every other type) was set by the BEFORE INSERT OR UPDATE trigger
`parts_search_vector`, a PL/pgSQL call per text part. A chat turn writes two (the user's in the
opening, the reply's in the finalize), and the calls cost about as much again as computing the
vectors: ~290 k of a new chat's turn's ~2.83 M backend instructions for the trigger, ~200 k for
the same vectors computed in the statement (docs/benchmarks.md "pgparts"). The turn's and the
appends' inserts (`store.parts.pg_parts_insert_sql`) now write the vector themselves, and the
trigger is split in two, calling the same function:

- `parts_insert_search_vector`, BEFORE INSERT, fires only when a row's vector is not what its
  type calls for: a text part without one, or another part with one. Every insert that does not
  write the column (the general path's, an import's, SQL of one's own) still gets its vectors
  from the function, and one that writes a vector on a part that cannot have one loses it. An
  insert that writes a text part's vector itself is trusted to write `to_tsvector` of its text,
  as genvault's own do (tests/test_pg_parts_vector.py compares them on every write path).
- `parts_search_vector`, BEFORE UPDATE OF type, text_text, user_id, with revision 0027's
  condition (a text part, or a row that has a vector to clear): any change of a watched column
  computes the vector again, as before. genvault never updates a part.

No table is rewritten and no index rebuilt: two triggers change in one transaction. SQLite:
nothing (its parts are indexed from a queue, revision 0009). The downgrade restores revision
0027's single trigger.
"""

from __future__ import annotations

from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

_WATCHED = "type, text_text, user_id"
_FUNCTION = "parts_search_vector()"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS parts_search_vector ON parts")
    op.execute(
        f"CREATE TRIGGER parts_search_vector BEFORE UPDATE OF {_WATCHED} ON parts FOR EACH ROW "
        f"WHEN ((NEW.type = 'text') OR NEW.search_vector IS NOT NULL) EXECUTE FUNCTION {_FUNCTION}"
    )
    op.execute(
        "CREATE TRIGGER parts_insert_search_vector BEFORE INSERT ON parts FOR EACH ROW "
        f"WHEN ((NEW.type = 'text') <> (NEW.search_vector IS NOT NULL)) EXECUTE FUNCTION {_FUNCTION}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS parts_insert_search_vector ON parts")
    op.execute("DROP TRIGGER IF EXISTS parts_search_vector ON parts")
    op.execute(
        f"CREATE TRIGGER parts_search_vector BEFORE INSERT OR UPDATE OF {_WATCHED} ON parts FOR EACH ROW "
        f"WHEN ((NEW.type = 'text') OR NEW.search_vector IS NOT NULL) EXECUTE FUNCTION {_FUNCTION}"
    )
