"""audit events name users by pseudonym: no erased user's id stays in the log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:10:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# A frozen copy of `genvault.store.audit.user_hash` (a revision must not change when the code
# does); tests check that both give the same pseudonym.
_DOMAIN = "genvault-audit-user:"


def _user_hash(user_id: str) -> str:
    return "sha256:" + hashlib.sha256((_DOMAIN + user_id).encode()).hexdigest()


# The tables as this revision sees them, for the data step (not the current metadata).
_audit = sa.table(
    "audit_events",
    sa.column("id", sa.String),
    sa.column("action", sa.String),
    sa.column("actor_user_id", sa.String),
    sa.column("actor_user_hash", sa.String),
    sa.column("subject_user_id", sa.String),
    sa.column("subject_user_hash", sa.String),
)
_users = sa.table("users", sa.column("id", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_user_hash", sa.String(length=71), nullable=True))
        batch_op.add_column(sa.Column("subject_user_hash", sa.String(length=71), nullable=True))

    # Filled in Python, so the same code runs on SQLite and PostgreSQL (no sha256 in SQLite).
    # An actor who erased themself, or who is no longer a user (erased later), leaves their id.
    conn = op.get_bind()
    living = set(conn.execute(sa.select(_users.c.id)).scalars())
    rows = conn.execute(
        sa.select(_audit.c.id, _audit.c.actor_user_id, _audit.c.subject_user_id).order_by(_audit.c.id)
    ).all()
    changes = []
    for event_id, actor, subject in rows:
        erased_actor = actor is not None and (actor == subject or actor not in living)
        changes.append(
            {
                "event_id": event_id,
                "actor_user_id": None if erased_actor else actor,
                "actor_user_hash": _user_hash(actor) if erased_actor else None,
                "subject_user_hash": None if subject is None else _user_hash(subject),
            }
        )
    if changes:
        conn.execute(
            _audit.update()
            .where(_audit.c.id == sa.bindparam("event_id"))
            .values(
                actor_user_id=sa.bindparam("actor_user_id"),
                actor_user_hash=sa.bindparam("actor_user_hash"),
                subject_user_hash=sa.bindparam("subject_user_hash"),
            ),
            changes,
        )

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_subject_user_id_at"))
        batch_op.drop_column("subject_user_id")
        batch_op.create_index(
            batch_op.f("ix_audit_events_subject_user_hash_at"), ["subject_user_hash", "at"], unique=False
        )


def downgrade() -> None:
    # The ids cannot be recovered from their hashes: `subject_user_id` comes back empty (NULL) and
    # an erased actor is NULL, which 0004 reads as the operator. Only living admins' ids remain.
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_subject_user_hash_at"))
        batch_op.add_column(sa.Column("subject_user_id", sa.String(length=64), nullable=True))
        batch_op.drop_column("subject_user_hash")
        batch_op.drop_column("actor_user_hash")
        batch_op.create_index(batch_op.f("ix_audit_events_subject_user_id_at"), ["subject_user_id", "at"], unique=False)
