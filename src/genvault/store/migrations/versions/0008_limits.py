"""limits: per-user, per-key and default limits, their usage ledger, key expiry and models,
and the key and reservation of each generation

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("models", _JSON, nullable=True))
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("reservation", _JSON, nullable=True))
    op.create_table(
        "limits",
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("daily_nano_usd", sa.BigInteger(), nullable=True),
        sa.Column("monthly_nano_usd", sa.BigInteger(), nullable=True),
        sa.Column("total_nano_usd", sa.BigInteger(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("concurrent", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_limits_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_limits")),
    )
    op.create_index(op.f("ix_limits_user_id"), "limits", ["user_id"], unique=False)
    op.create_table(
        "limit_usage",
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("day_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("month_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("total_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("reserved_nano_usd", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_limit_usage_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_limit_usage")),
    )
    op.create_index(op.f("ix_limit_usage_user_id"), "limit_usage", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_limit_usage_user_id"), table_name="limit_usage")
    op.drop_table("limit_usage")
    op.drop_index(op.f("ix_limits_user_id"), table_name="limits")
    op.drop_table("limits")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("reservation")
        batch.drop_column("api_key_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("models")
        batch.drop_column("expires_at")
