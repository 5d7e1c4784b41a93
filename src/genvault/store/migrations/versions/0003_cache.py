"""dedup cache: cache_entries table, generations.saved_nano_usd

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # What a cache hit saved: the original's cost (the hit itself costs 0).
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("saved_nano_usd", sa.BigInteger(), nullable=True))
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("generation_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_cache_entries_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cache_entries")),
    )
    op.create_index(op.f("ix_cache_entries_expires_at"), "cache_entries", ["expires_at"], unique=False)
    op.create_index(op.f("ix_cache_entries_generation_id"), "cache_entries", ["generation_id"], unique=False)
    op.create_index(op.f("ix_cache_entries_user_id"), "cache_entries", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cache_entries_user_id"), table_name="cache_entries")
    op.drop_index(op.f("ix_cache_entries_generation_id"), table_name="cache_entries")
    op.drop_index(op.f("ix_cache_entries_expires_at"), table_name="cache_entries")
    op.drop_table("cache_entries")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("saved_nano_usd")
