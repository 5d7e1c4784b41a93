"""SQLite: the search indexes' leaves fitted to a database of 2 KiB pages

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 01:00:00

A database genvault creates has pages of 2,048 bytes (`store.db.PAGE_SIZE`). FTS5 writes its
index in blocks of up to `pgsz` bytes (4,050 by default, sized for 4 KiB pages), each a row of its
`_data` table: on a 2 KiB page such a row keeps ~230 bytes on its leaf and the rest in two
overflow pages, so reading a block reads three pages. Here each FTS5 index of a database with pages
smaller than 4,096 bytes takes blocks that fit its page (`page_size - 48`, as 4,050 is to 4,096);
blocks written before keep their size until a merge rewrites them. Measured on a 30,000-document
index (docs/benchmarks.md, "sqlitewal"): with FTS5's default every merged block overflowed (3,096
overflow pages beside 3,117 leaves), and a term query ran 1.3 % more instructions than on 4 KiB
pages; with blocks that fit, none overflows and a query runs 14 % fewer than on 4 KiB pages. A
database of 4 KiB pages (every one created before `PAGE_SIZE`) is left as it is.

Downgrade: FTS5's default again. PostgreSQL: nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

_INDEXES = ("search_parts", "search_chats", "search_generations")
_DEFAULT = 4050  # FTS5's own


def _page_size() -> int:
    return int(op.get_bind().exec_driver_sql("PRAGMA page_size").scalar() or 4096)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite" or _page_size() >= 4096:
        return
    for index in _INDEXES:
        op.execute(f"INSERT INTO {index} ({index}, rank) VALUES ('pgsz', {_page_size() - 48})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite" or _page_size() >= 4096:
        return
    for index in _INDEXES:
        op.execute(f"INSERT INTO {index} ({index}, rank) VALUES ('pgsz', {_DEFAULT})")
