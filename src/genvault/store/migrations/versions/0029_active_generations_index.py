"""the sweeper's index holds the active generations only, and not their status: a generation's
move to `streaming` can be a HOT update on PostgreSQL

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 13:45:00

`ix_generations_status_lease_expires_at` existed for the sweeper and its kin, which look for the
active records (`status IN ('pending', 'streaming')`). It held an entry for every generation ever
made, and on PostgreSQL its key (the status, the lease) changed at each of a chat turn's state
changes, so none of them could be a HOT update: the first-token mark (pending -> streaming) and
the finalize each added an entry to every index of `generations` (six), as the insert did.

`ix_generations_active` is `(created_at) WHERE finished_at IS NULL`: only the records still
running (every state change that ends a record sets `finished_at`; none sets it on an active
one), keyed by a column no update changes. The mark changes neither column, so PostgreSQL can
keep its new version on the same page without any index entry (HOT), and the finalize's version
leaves this index (the predicate is false) instead of taking a new entry. The queries that look
for active records say `finished_at IS NULL` beside their status test to use it.

SQLite updates only the indexes whose columns a statement sets: the mark (which sets the status
and the lease) no longer rewrites an entry of this index there either.

A database with rows gets the new index built CONCURRENTLY before the old one is dropped
CONCURRENTLY: the sweeper keeps an index and writers are never blocked for the build.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_OLD = "ix_generations_status_lease_expires_at"
_NEW = "ix_generations_active"
_CREATE_OLD = f"CREATE INDEX {_OLD} ON generations (status, lease_expires_at)"
_CREATE_NEW = f"CREATE INDEX {_NEW} ON generations (created_at) WHERE finished_at IS NULL"


def _swap(create: str, drop: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" or not bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM generations)")).scalar():
        op.execute(create)
        op.execute(f"DROP INDEX IF EXISTS {drop}")
        return
    created = create.split()[2]
    with op.get_context().autocommit_block():
        # A build that failed half-way leaves an INVALID index: dropped, so this run builds it again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {created}")
        op.execute(create.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY"))
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {drop}")


def upgrade() -> None:
    _swap(_CREATE_NEW, _OLD)


def downgrade() -> None:
    _swap(_CREATE_OLD, _NEW)
