"""PostgreSQL: a chat turn's tables check their rows with one short CHECK each

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 17:00:00

PostgreSQL keeps a CHECK constraint as a serialized expression tree and reads it back from that
text (`stringToNode`), then plans and compiles it, at every execution of every statement that
writes the table: a cached plan keeps no constraint expressions. A chat turn's statements write
`parts` twice (the question's, the reply's), `generations` two or three times, `chats` and
`messages` twice each, and the twelve constraints of those tables serialized to ~16,000
characters (the seven of `parts` alone ~9,200; every constant of an IN list a node of its own).
Reading and compiling them was ~8 % of a PostgreSQL backend's CPU on a chat turn (perf,
docs/benchmarks.md "pghot"), more than the checks themselves.

The same conditions, written small:

- `parts`: the seven per-type checks become one, `ck_parts_fields`, a call of the IMMUTABLE
  PL/pgSQL function `genvault_part_fields_ok(parts)` on the row (one node; PL/pgSQL keeps its
  parsed expression per connection and prepares it once per transaction, not per statement
  run). The function says what the seven said: a text part has its text, a reasoning part its
  text, a tool part (`tool-*`, `dynamic-tool`) its name, call id and one of the four states, a
  source-url part its id and URL, a source-document part its id, media type and title, a file
  part its media type and URL; any other type passes. Measured per autocommit INSERT of 2 (5)
  parts: 75 (90) µs of backend CPU with the seven, 50 (60) with the call, 65 (85) with the same
  test as one inline CASE, 40 (55) with no check. The function takes the table's row type: a
  later revision that rebuilds `parts` drops `ck_parts_fields` and the function first.
- `generations`: kind, status and a cost not negative become one, `ck_generations_fields`, their
  lists written as array constants (`= ANY ('{...}'::text[])`: one node, not one per value).
- `chats.visibility` and `messages.role` keep their names, their lists written as one array
  constant (`= ANY ('{...}'::text[])`) instead of one node per value.
- The WHEN conditions of the three triggers of `generations` (the search vector's, revision
  0027; the limits' reserve and settle, revision 0015), read back the same way per statement
  that writes the table, take the same test with their lists as array constants.

Every row already meets them (the same conditions); the new constraints are added NOT VALID and
then validated, so on a filled database writers wait only for the short ALTER, not for the
validating scan. SQLite: nothing (it keeps its CHECKs compiled in the statement; revision 0028
shaped them for it); `store/schema.py` describes SQLite's form, the conditions being the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

_TOOL_STATES = ("input-streaming", "input-available", "output-available", "output-error")
_KINDS = ("text", "chat", "image", "embedding")
_STATUSES = ("pending", "streaming", "complete", "error", "cancelled", "interrupted")


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _array(values: tuple[str, ...]) -> str:
    return "'{" + ",".join(values) + "}'::text[]"


_PART_FUNCTION = f"""
CREATE OR REPLACE FUNCTION genvault_part_fields_ok(p parts) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN CASE
        WHEN p.type = 'text' THEN p.text_text IS NOT NULL
        WHEN p.type = 'reasoning' THEN p.reasoning_text IS NOT NULL
        WHEN p.type LIKE 'tool-%' OR p.type = 'dynamic-tool' THEN
            p.tool_name IS NOT NULL AND p.tool_call_id IS NOT NULL AND p.state IS NOT NULL
            AND p.state IN ({_listed(_TOOL_STATES)})
        WHEN p.type = 'source-url' THEN p.source_id IS NOT NULL AND p.source_url IS NOT NULL
        WHEN p.type = 'source-document' THEN
            p.source_id IS NOT NULL AND p.source_media_type IS NOT NULL AND p.source_title IS NOT NULL
        WHEN p.type = 'file' THEN p.file_media_type IS NOT NULL AND p.file_url IS NOT NULL
        ELSE true
    END;
END $$"""

# (table, the constraints before (name, condition), the constraint after (name, condition))
_CHECKS: list[tuple[str, list[tuple[str, str]], tuple[str, str]]] = [
    (
        "parts",
        [
            ("ck_parts_text_fields", "type <> 'text' OR text_text IS NOT NULL"),
            ("ck_parts_reasoning_fields", "type <> 'reasoning' OR reasoning_text IS NOT NULL"),
            (
                "ck_parts_tool_fields",
                "NOT (type LIKE 'tool-%' OR type = 'dynamic-tool') "
                "OR (tool_name IS NOT NULL AND tool_call_id IS NOT NULL AND state IS NOT NULL)",
            ),
            (
                "ck_parts_tool_state",
                f"NOT (type LIKE 'tool-%' OR type = 'dynamic-tool') OR state IN ({_listed(_TOOL_STATES)})",
            ),
            ("ck_parts_source_url", "type <> 'source-url' OR (source_id IS NOT NULL AND source_url IS NOT NULL)"),
            (
                "ck_parts_source_document",
                "type <> 'source-document' OR "
                "(source_id IS NOT NULL AND source_media_type IS NOT NULL AND source_title IS NOT NULL)",
            ),
            ("ck_parts_file_fields", "type <> 'file' OR (file_media_type IS NOT NULL AND file_url IS NOT NULL)"),
        ],
        ("ck_parts_fields", "genvault_part_fields_ok(parts)"),
    ),
    (
        "generations",
        [
            ("ck_generations_kind", f"kind IN ({_listed(_KINDS)})"),
            ("ck_generations_status", f"status IN ({_listed(_STATUSES)})"),
            ("ck_generations_cost_not_negative", "cost_nano_usd IS NULL OR cost_nano_usd >= 0"),
        ],
        (
            "ck_generations_fields",
            f"kind::text = ANY ({_array(_KINDS)}) AND status::text = ANY ({_array(_STATUSES)}) "
            "AND (cost_nano_usd IS NULL OR cost_nano_usd >= 0)",
        ),
    ),
    (
        "chats",
        [("ck_chats_visibility", f"visibility IN ({_listed(('private', 'link', 'public'))})")],
        ("ck_chats_visibility", f"visibility::text = ANY ({_array(('private', 'link', 'public'))})"),
    ),
    (
        "messages",
        [("ck_messages_role", f"role IN ({_listed(('system', 'user', 'assistant'))})")],
        ("ck_messages_role", f"role::text = ANY ({_array(('system', 'user', 'assistant'))})"),
    ),
]


_ACTIVE = ("pending", "streaming")
_TERMINAL = ("complete", "error", "cancelled", "interrupted")
_SETTLE_COST = "(OLD.status = NEW.status AND OLD.cost_nano_usd IS NULL AND NEW.cost_nano_usd IS NOT NULL)"
# The triggers of `generations` with a WHEN condition (revisions 0015 and 0027): (name, timing and
# events, function, the condition before, the condition after). The same test, the lists as one
# array constant each; PostgreSQL reads a trigger's condition back per statement as it does a CHECK.
_TRIGGERS = [
    (
        "generations_search_vector",
        "BEFORE INSERT OR UPDATE OF kind, status, request, result_text, user_id",
        "generations_search_vector",
        f"(NEW.kind <> 'chat' AND NEW.status IN ({_listed(_TERMINAL)})) OR NEW.search_vector IS NOT NULL",
        f"(NEW.kind::text <> 'chat' AND NEW.status::text = ANY ({_array(_TERMINAL)})) OR NEW.search_vector IS NOT NULL",
    ),
    (
        "limit_usage_reserve",
        "AFTER INSERT",
        "limit_usage_reserve",
        f"NEW.reservation IS NOT NULL AND NEW.status IN ({_listed(_ACTIVE)})",
        f"NEW.reservation IS NOT NULL AND NEW.status::text = ANY ({_array(_ACTIVE)})",
    ),
    (
        "limit_usage_settle",
        "AFTER UPDATE OF status, cost_nano_usd",
        "limit_usage_settle",
        f"NEW.reservation IS NOT NULL AND NEW.status NOT IN ({_listed(_ACTIVE)}) "
        f"AND (OLD.status IN ({_listed(_ACTIVE)}) OR {_SETTLE_COST})",
        f"NEW.reservation IS NOT NULL AND NOT (NEW.status::text = ANY ({_array(_ACTIVE)})) "
        f"AND (OLD.status::text = ANY ({_array(_ACTIVE)}) OR {_SETTLE_COST})",
    ),
]


def _triggers(compact: bool) -> None:
    for name, events, function, before, after in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON generations")
        op.execute(
            f"CREATE TRIGGER {name} {events} ON generations FOR EACH ROW "
            f"WHEN ({after if compact else before}) EXECUTE FUNCTION {function}()"
        )


def _swap(table: str, drop: list[str], add: list[tuple[str, str]]) -> None:
    """Drop `drop` and add `add` NOT VALID in one ALTER (a short exclusive lock), then validate
    them (a scan that blocks no writer): in a transaction of their own on a filled table."""
    clauses = [f"DROP CONSTRAINT {name}" for name in drop]
    clauses += [f"ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID" for name, condition in add]
    op.execute(f"ALTER TABLE {table} {', '.join(clauses)}")
    validate = [f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}" for name, _ in add]
    if not op.get_bind().execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar():
        for statement in validate:
            op.execute(statement)
        return
    with op.get_context().autocommit_block():
        for statement in validate:
            op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(_PART_FUNCTION)
    _triggers(compact=True)
    for table, before, after in _CHECKS:
        _swap(table, [name for name, _ in before], [after])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, before, after in _CHECKS:
        _swap(table, [after[0]], before)
    _triggers(compact=False)
    op.execute("DROP FUNCTION IF EXISTS genvault_part_fields_ok(parts)")
