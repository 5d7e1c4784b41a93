"""PostgreSQL: `generations.kind`/`status`, `chats.visibility`, `messages.role` typed by domains
that carry their lists, instead of table CHECKs re-read at every statement

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07 01:05:00

PostgreSQL reads a table's CHECK expressions back from their serialized node text, then plans
and compiles them, at every statement that writes the table (docs/benchmarks.md "pgdb",
"pgexpr"); a domain's CHECK is parsed once per backend into the type cache and evaluated only
where a value is assigned to a column of the domain. A chat turn writes `generations` twice,
`chats` and `messages` twice each. From here the four columns' lists are domain constraints:

- domains `generation_kind`, `generation_status`, `chat_visibility`, `message_role`, each over
  `varchar(16)` (the columns' type), the constraint the former CHECK's list as one `= ANY` of a
  `text[]` constant, named as the table CHECK was (`ck_generations_kind`, `ck_generations_status`,
  `ck_chats_visibility`, `ck_messages_role`; a refused value is still SQLSTATE 23514, "value for
  domain … violates check constraint …");
- `ck_generations_fields` keeps `cost_nano_usd >= 0` only; `ck_chats_visibility` and
  `ck_messages_role` (the table CHECKs) are dropped.

No table is rewritten and no index rebuilt: each domain is made without its constraint, so the
column's change of type is binary-coercible and PostgreSQL keeps the table's file and its indexes
(`relfilenode`s checked in the test); the constraint is then added NOT VALID and validated (a scan
of the table that blocks no writer, in its own transaction on a filled table). The triggers that
name the columns (`generations_search_vector`: `UPDATE OF kind, status` and its WHEN;
`limit_usage_settle`: `UPDATE OF status`) forbid the change of type: they are dropped and made
again around it with the statements that made them (revisions 0035 and 0033), in the transaction.

The downgrade types the columns `varchar(16)` again (binary-coercible: no rewrite), restores the
three table CHECKs with the statements' text at the offsets revisions 0035 and 0030 wrote them at
(so the same serialized expressions), and drops the domains. SQLite: nothing (its CHECKs are
compiled into the statement).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

_KINDS = "'{text,chat,image,embedding}'::text[]"
_STATUSES = "'{pending,streaming,complete,error,cancelled,interrupted}'::text[]"
_VISIBILITIES = "'{private,link,public}'::text[]"
_ROLES = "'{system,user,assistant}'::text[]"

# (table, column, domain, its constraint (the former table CHECK's name), the listed values)
DOMAINS = [
    ("generations", "kind", "generation_kind", "ck_generations_kind", _KINDS),
    ("generations", "status", "generation_status", "ck_generations_status", _STATUSES),
    ("chats", "visibility", "chat_visibility", "ck_chats_visibility", _VISIBILITIES),
    ("messages", "role", "message_role", "ck_messages_role", _ROLES),
]
BASE_TYPE = "varchar(16)"

CHECK_BEFORE = f"kind::text = ANY ({_KINDS}) AND status::text = ANY ({_STATUSES}) AND cost_nano_usd >= 0"
CHECK_AFTER = "cost_nano_usd >= 0"
_FIELDS_PREFIX = (
    "ALTER TABLE generations DROP CONSTRAINT ck_generations_fields, ADD CONSTRAINT ck_generations_fields CHECK ("
)
# Revision 0030's statements for the chats' and messages' CHECKs (`_swap`): the downgrade pads its
# own to the condition's offset there, so the nodes' `:location`s are 0030's.
_TABLE_CHECKS = [
    (
        "chats",
        "ck_chats_visibility",
        f"visibility::text = ANY ({_VISIBILITIES})",
        "ALTER TABLE chats DROP CONSTRAINT ck_chats_visibility, ADD CONSTRAINT ck_chats_visibility CHECK (",
    ),
    (
        "messages",
        "ck_messages_role",
        f"role::text = ANY ({_ROLES})",
        "ALTER TABLE messages DROP CONSTRAINT ck_messages_role, ADD CONSTRAINT ck_messages_role CHECK (",
    ),
]

# The triggers that name the columns, with the statements revisions 0035 (`_trigger`) and 0033
# (`_triggers`) made them with.
_TRIGGERS = [
    (
        "generations_search_vector",
        "CREATE TRIGGER generations_search_vector BEFORE INSERT OR UPDATE OF kind, status, request, result_text, "
        "user_id ON generations FOR EACH ROW WHEN ((NEW.kind::text <> 'chat' AND NEW.status::text <> ALL "
        "('{pending,streaming}'::text[])) OR NEW.search_vector IS NOT NULL) EXECUTE FUNCTION "
        "generations_search_vector()",
    ),
    (
        "limit_usage_settle",
        "CREATE TRIGGER limit_usage_settle AFTER UPDATE OF status, cost_nano_usd ON generations FOR EACH ROW "
        "WHEN (NEW.reservation IS NOT NULL) EXECUTE FUNCTION limit_usage_settle()",
    ),
]


def _retype(types: dict[str, str]) -> None:
    """The four columns to `types[column]`, the triggers naming them dropped and made again."""
    for name, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON generations")
    for table in ("generations", "chats", "messages"):
        columns = [column for t, column, *_ in DOMAINS if t == table]
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} TYPE {types[c]}" for c in columns))
    for _, statement in _TRIGGERS:
        op.execute(statement)


def _validate(statements: list[str], tables: tuple[str, ...]) -> None:
    """Run `statements` (validations): in this transaction on empty tables, else each in its own
    (a scan that blocks no writer)."""
    bind = op.get_bind()
    if not any(bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar() for table in tables):
        for statement in statements:
            op.execute(statement)
        return
    with op.get_context().autocommit_block():
        for statement in statements:
            op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for _, _, domain, _, _ in DOMAINS:
        op.execute(f"CREATE DOMAIN {domain} AS {BASE_TYPE}")
    _retype({column: domain for _, column, domain, _, _ in DOMAINS})
    for _, _, domain, constraint, values in DOMAINS:
        op.execute(f"ALTER DOMAIN {domain} ADD CONSTRAINT {constraint} CHECK (VALUE::text = ANY ({values})) NOT VALID")
    op.execute(f"{_FIELDS_PREFIX}{CHECK_AFTER}) NOT VALID")
    for table, constraint, _, _ in _TABLE_CHECKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
    validate = [f"ALTER DOMAIN {domain} VALIDATE CONSTRAINT {constraint}" for _, _, domain, constraint, _ in DOMAINS]
    validate.append("ALTER TABLE generations VALIDATE CONSTRAINT ck_generations_fields")
    _validate(validate, ("generations", "chats", "messages"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    _retype({column: BASE_TYPE for _, column, *_ in DOMAINS})
    for _, _, domain, _, _ in DOMAINS:
        op.execute(f"DROP DOMAIN {domain}")
    op.execute(f"{_FIELDS_PREFIX}{CHECK_BEFORE}) NOT VALID")
    validate = ["ALTER TABLE generations VALIDATE CONSTRAINT ck_generations_fields"]
    for table, constraint, condition, prefix in _TABLE_CHECKS:
        statement = f"ALTER TABLE {table} ADD CONSTRAINT {constraint} CHECK ("
        padding = " " * (len(prefix) - len(statement))
        op.execute(f"{statement}{padding}{condition}) NOT VALID")
        validate.append(f"ALTER TABLE {table} VALIDATE CONSTRAINT {constraint}")
    _validate(validate, ("generations", "chats", "messages"))
