"""PostgreSQL: `chats` keeps room on its pages for the turn's HOT update of a chat row

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 19:30:00

A chat turn's finalize updates its chat row (`last_seq`, `active_generation_id`) and, since it no
longer sets `updated_at` (`store/finishes.py`), changes no indexed column: PostgreSQL can write the
new version as a HOT update (no entry in the three indexes, the title's search vector not
computed again) if the row's page has room for it. A new chat's row is inserted into the table's
last page, which further inserts then fill; a reply that ends after the page is full of rows not
yet updated finds no room (the dead versions of the rows updated before are pruned when a page
is read with less than a tenth free, which makes room most of the time), and its update takes
the indexes' entries again. A fillfactor of 90 keeps a tenth of each page for updates only:
inserts stop at 90 % and updates use the rest. Measured (docs/benchmarks.md, "chathot"): 64
concurrent new chats' turns of 4-second replies, 97.2–98.3 % of the finalizes HOT without it,
99.1–100 % with it (two pairs); a page filled by inserts, not HOT without it, HOT with it
(`test_pg_turn_plans`). With autovacuum on, inserts also refill the room that vacuum frees on
older pages, which the reserve keeps from them.

The table's existing pages keep their rows: the setting applies to pages filled from now on (a
`VACUUM FULL` or `CLUSTER` would repack the old ones; nothing here needs it). Setting it takes
a SHARE UPDATE EXCLUSIVE lock: reads and writes go on. SQLite: nothing (it has no fillfactor).
"""

from __future__ import annotations

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

# As `store/schema.py` declares it (`postgresql_with`).
_FILLFACTOR = 90


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE chats SET (fillfactor = {_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE chats RESET (fillfactor)")
