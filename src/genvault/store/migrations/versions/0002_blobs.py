"""blobs: one row per reference to a content-addressed file in the blob store

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=True),
        sa.Column("generation_id", sa.String(length=40), nullable=True),
        sa.Column("chat_id", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("part_position", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_blobs_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
    )
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blobs_generation_id"), ["generation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blobs_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_blobs_user_id_created_at"), ["user_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blobs_user_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_blobs_sha256"))
        batch_op.drop_index(batch_op.f("ix_blobs_generation_id"))

    op.drop_table("blobs")
