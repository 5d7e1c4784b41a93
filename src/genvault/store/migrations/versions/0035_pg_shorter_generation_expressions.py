"""PostgreSQL: `generations`' CHECK and search vector condition in fewer nodes, the same rows
accepted and the same rows indexed

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 00:50:00

PostgreSQL reads a table's CHECK expressions and its triggers' WHEN conditions back from their
serialized node text (`stringToNode`), then plans and compiles them, at every statement that
writes the table, whatever rows it writes (docs/benchmarks.md "pgdb"). A chat turn writes
`generations` twice (the opening's insert, the finalize's update): `ck_generations_fields`
(2,135 characters) and the search vector trigger's WHEN (1,493) were read back twice a turn.
Each says the same with fewer nodes from here:

- `ck_generations_fields` drops `cost_nano_usd IS NULL OR` before `cost_nano_usd >= 0`: a CHECK
  refuses a row only when its expression is false, and `NULL >= 0` is NULL, which a CHECK lets
  pass as the `IS NULL` branch did (an AND of the other two true and a NULL is NULL: passes; any
  of the other two false: false, as before). 2,135 -> ~1,890 characters (a NullTest, its Var and
  an OR node fewer), and one node fewer evaluated per row written.
- The search vector trigger's `NEW.status::text = ANY ('{complete,error,cancelled,interrupted}')`
  becomes `NEW.status::text <> ALL ('{pending,streaming}')`: the CHECK (and NOT NULL) holds
  every row stored to one of the six statuses, and of those the four terminal ones are exactly
  the ones not pending nor streaming (a shorter array constant: 80 -> 48 bytes, each a token of
  the text). A row with a status outside the six is refused by the CHECK after the BEFORE
  trigger either way (the trigger only sets the row's `search_vector`), and a NULL status is
  NULL either way (not fired). 1,493 -> ~1,410 characters.

`chats.visibility` and `messages.role` (one `= ANY` of an array constant each, revision 0030)
have no shorter form of the same meaning; the limits' WHENs are one NullTest (revision 0033).
The constraint is replaced NOT VALID then validated, as revision 0030 did (writers wait for the
short ALTER only). The downgrade restores revision 0030's constraint and condition with the same
statement text, so the same serialized expressions (the nodes' `:location` is an offset in the
statement). SQLite: nothing (its CHECKs and trigger conditions are compiled into the statement).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

_KINDS = "'{text,chat,image,embedding}'::text[]"
_STATUSES = "'{pending,streaming,complete,error,cancelled,interrupted}'::text[]"
CHECK_BEFORE = f"kind::text = ANY ({_KINDS}) AND status::text = ANY ({_STATUSES}) AND (cost_nano_usd IS NULL OR cost_nano_usd >= 0)"
CHECK_AFTER = f"kind::text = ANY ({_KINDS}) AND status::text = ANY ({_STATUSES}) AND cost_nano_usd >= 0"

_VECTOR_EVENTS = "BEFORE INSERT OR UPDATE OF kind, status, request, result_text, user_id"
WHEN_BEFORE = (
    "(NEW.kind::text <> 'chat' AND NEW.status::text = ANY ('{complete,error,cancelled,interrupted}'::text[])) "
    "OR NEW.search_vector IS NOT NULL"
)
WHEN_AFTER = (
    "(NEW.kind::text <> 'chat' AND NEW.status::text <> ALL ('{pending,streaming}'::text[])) "
    "OR NEW.search_vector IS NOT NULL"
)

# Revision 0030's statement put its condition at this offset (its three former constraints dropped
# before it); the downgrade pads its own statement to the same offset, so the nodes' `:location`s,
# and the serialized text, are 0030's again.
_0030_CHECK_PREFIX = (
    "ALTER TABLE generations DROP CONSTRAINT ck_generations_kind, DROP CONSTRAINT ck_generations_status, "
    "DROP CONSTRAINT ck_generations_cost_not_negative, ADD CONSTRAINT ck_generations_fields CHECK ("
)


def _check(condition: str, offset: int = 0) -> None:
    prefix = (
        "ALTER TABLE generations DROP CONSTRAINT ck_generations_fields, ADD CONSTRAINT ck_generations_fields CHECK ("
    )
    padding = " " * max(0, offset - len(prefix))
    op.execute(f"{prefix}{padding}{condition}) NOT VALID")
    validate = "ALTER TABLE generations VALIDATE CONSTRAINT ck_generations_fields"
    if not op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM generations)")).scalar():
        op.execute(validate)
        return
    with op.get_context().autocommit_block():  # a scan that blocks no writer, in its own transaction
        op.execute(validate)


def _trigger(condition: str) -> None:
    # The statement revision 0030 made it with (`_triggers`), the condition aside.
    op.execute("DROP TRIGGER IF EXISTS generations_search_vector ON generations")
    op.execute(
        f"CREATE TRIGGER generations_search_vector {_VECTOR_EVENTS} ON generations FOR EACH ROW "
        f"WHEN ({condition}) EXECUTE FUNCTION generations_search_vector()"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    _trigger(WHEN_AFTER)
    _check(CHECK_AFTER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    _check(CHECK_BEFORE, len(_0030_CHECK_PREFIX))
    _trigger(WHEN_BEFORE)
