"""initial schema: users, api keys, chats, messages, parts, generations

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:11:39.802891
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "chats",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("active_generation_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("visibility IN ('private', 'link', 'public')", name=op.f("ck_chats_visibility")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_chats_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
    )
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chats_user_id_updated_at"), ["user_id", "updated_at"], unique=False)

    op.create_table(
        "generations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column(
            "request", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("result_text", sa.Text(), nullable=True),
        sa.Column(
            "result_message",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=True),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_nano_usd", sa.BigInteger(), nullable=True),
        sa.Column(
            "unit_prices", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("price_source", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_token_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("cache_key", sa.String(length=100), nullable=True),
        sa.Column("cached_from", sa.String(length=40), nullable=True),
        sa.CheckConstraint("kind IN ('text', 'chat', 'image')", name=op.f("ck_generations_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'streaming', 'complete', 'error', 'cancelled', 'interrupted')",
            name=op.f("ck_generations_status"),
        ),
        sa.CheckConstraint(
            "cost_nano_usd IS NULL OR cost_nano_usd >= 0", name=op.f("ck_generations_cost_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["cached_from"],
            ["generations.id"],
            name=op.f("fk_generations_cached_from_generations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_generations_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_generations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("user_id", "idempotency_key", name=op.f("uq_generations_user_id_idempotency_key")),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generations_cache_key"), ["cache_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_generations_chat_id_created_at"), ["chat_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_generations_model_created_at"), ["model", "created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_generations_status_lease_expires_at"), ["status", "lease_expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_generations_user_id_created_at"), ["user_id", "created_at"], unique=False)

    op.create_table(
        "messages",
        sa.Column("chat_id", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("generation_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('system', 'user', 'assistant')", name=op.f("ck_messages_role")),
        sa.ForeignKeyConstraint(["chat_id"], ["chats.id"], name=op.f("fk_messages_chat_id_chats"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chat_id", "id", name=op.f("pk_messages")),
        sa.UniqueConstraint("chat_id", "seq", name=op.f("uq_messages_chat_id_seq")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_user_id"), ["user_id"], unique=False)

    op.create_table(
        "parts",
        sa.Column("chat_id", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("provider_metadata", sa.Text(), nullable=True),
        sa.Column("text_text", sa.Text(), nullable=True),
        sa.Column("reasoning_id", sa.String(length=200), nullable=True),
        sa.Column("reasoning_text", sa.Text(), nullable=True),
        sa.Column("tool_name", sa.String(length=200), nullable=True),
        sa.Column("tool_call_id", sa.String(length=200), nullable=True),
        sa.Column("tool_input", sa.Text(), nullable=True),
        sa.Column("tool_output", sa.Text(), nullable=True),
        sa.Column("tool_raw_input", sa.Text(), nullable=True),
        sa.Column("tool_error_text", sa.Text(), nullable=True),
        sa.Column("tool_provider_executed", sa.Boolean(), nullable=True),
        sa.Column("tool_preliminary", sa.Boolean(), nullable=True),
        sa.Column("tool_call_provider_metadata", sa.Text(), nullable=True),
        sa.Column("tool_title", sa.String(length=500), nullable=True),
        sa.Column("source_id", sa.String(length=500), nullable=True),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("source_title", sa.Text(), nullable=True),
        sa.Column("source_media_type", sa.String(length=200), nullable=True),
        sa.Column("source_filename", sa.String(length=500), nullable=True),
        sa.Column("file_media_type", sa.String(length=200), nullable=True),
        sa.Column("file_filename", sa.String(length=500), nullable=True),
        sa.Column("file_url", sa.Text(), nullable=True),
        sa.Column("data_id", sa.String(length=200), nullable=True),
        sa.Column("data_data", sa.Text(), nullable=True),
        sa.Column("data_transient", sa.Boolean(), nullable=True),
        sa.CheckConstraint(
            "NOT (type LIKE 'tool-%' OR type = 'dynamic-tool') OR (tool_name IS NOT NULL AND tool_call_id IS NOT NULL AND state IS NOT NULL)",
            name=op.f("ck_parts_tool_fields"),
        ),
        sa.CheckConstraint(
            "NOT (type LIKE 'tool-%' OR type = 'dynamic-tool') OR state IN ('input-streaming', 'input-available', 'output-available', 'output-error')",
            name=op.f("ck_parts_tool_state"),
        ),
        sa.CheckConstraint(
            "type <> 'file' OR (file_media_type IS NOT NULL AND file_url IS NOT NULL)",
            name=op.f("ck_parts_file_fields"),
        ),
        sa.CheckConstraint("type <> 'reasoning' OR reasoning_text IS NOT NULL", name=op.f("ck_parts_reasoning_fields")),
        sa.CheckConstraint(
            "type <> 'source-document' OR (source_id IS NOT NULL AND source_media_type IS NOT NULL AND source_title IS NOT NULL)",
            name=op.f("ck_parts_source_document"),
        ),
        sa.CheckConstraint(
            "type <> 'source-url' OR (source_id IS NOT NULL AND source_url IS NOT NULL)",
            name=op.f("ck_parts_source_url"),
        ),
        sa.CheckConstraint("type <> 'text' OR text_text IS NOT NULL", name=op.f("ck_parts_text_fields")),
        sa.ForeignKeyConstraint(
            ["chat_id", "message_id"], ["messages.chat_id", "messages.id"], name="fk_parts_message", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", "message_id", "position", name=op.f("pk_parts")),
    )
    with op.batch_alter_table("parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parts_user_id"), ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("parts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parts_user_id"))

    op.drop_table("parts")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_user_id"))

    op.drop_table("messages")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generations_user_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_generations_status_lease_expires_at"))
        batch_op.drop_index(batch_op.f("ix_generations_model_created_at"))
        batch_op.drop_index(batch_op.f("ix_generations_chat_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_generations_cache_key"))

    op.drop_table("generations")
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chats_user_id_updated_at"))

    op.drop_table("chats")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    op.drop_table("users")
