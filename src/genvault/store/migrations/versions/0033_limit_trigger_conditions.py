"""PostgreSQL: the limits' triggers on `generations` fire on `reservation IS NOT NULL` alone, the
rest of their conditions tested by their functions

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06 22:40:00

PostgreSQL reads a trigger's WHEN condition back from its serialized expression tree
(`stringToNode`) and compiles it at every statement that could fire it, whichever rows it
writes. A chat turn's opening inserts a generation (`limit_usage_reserve`, AFTER INSERT: its
condition serialized to 856 characters) and its finalize sets the status (`limit_usage_settle`,
AFTER UPDATE OF status, cost_nano_usd: 2,555), so every turn read ~3,400 characters back for
triggers that fire only for the few generations that hold a budget's reservation. Measured with
callgrind on a PostgreSQL backend (docs/benchmarks.md "pgdb"): ~106 k of a new chat's turn's
~2.72 M backend instructions (the opening's 30 k, the finalize's 76 k).

From here both triggers' WHEN is `NEW.reservation IS NOT NULL` (~190 characters), and each
function first tests the rest of its former condition and returns at once when it does not hold,
as the trigger did not fire then: reserve, that the row is running (pending or streaming); settle,
that the row leaves the running states or its cost is set late. A generation without a
reservation (every one unless a budget applies) fires neither trigger, as before; one with a
reservation now calls `limit_usage_settle` also on an update of its status that settles nothing
(the first-token mark's move to `streaming`), which returns without writing. SQLite: nothing (its
trigger conditions are compiled into the statement).

Left as they are: `ck_generations_fields` (2,135 characters, read back twice a turn) as a
whole-row PL/pgSQL call, as revision 0030 made `parts`' CHECK (measured ~115 k fewer instructions
a turn), and the search vector trigger's WHEN (1,493) as one (~50 k). A CHECK runs for every row an
UPDATE writes, a WHEN for every row it could fire on, and the checkpoints' and first-token marks'
batched updates of `generations` then paid a PL/pgSQL call per row: +16.6 k instructions per row
updated (86.2 k -> 102.8 k with both), which one parse per statement does not repay beyond a few
rows (docs/benchmarks.md "pgdb").
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

_ACTIVE = "('pending', 'streaming')"
# The former conditions (revision 0030's WHEN), tested in the functions; `IS NOT TRUE` returns on a
# NULL as a WHEN that is not true does not fire.
_RESERVE_GUARD = f"""    IF (NEW.status IN {_ACTIVE}) IS NOT TRUE THEN
        RETURN NULL;
    END IF;
"""
_SETTLE_GUARD = f"""    IF (NEW.status NOT IN {_ACTIVE} AND (OLD.status IN {_ACTIVE} OR (OLD.status = NEW.status
        AND OLD.cost_nano_usd IS NULL AND NEW.cost_nano_usd IS NOT NULL))) IS NOT TRUE THEN
        RETURN NULL;
    END IF;
"""
_EVENTS = {
    "limit_usage_reserve": "AFTER INSERT",
    "limit_usage_settle": "AFTER UPDATE OF status, cost_nano_usd",
}


def _revision(name: str) -> ModuleType:
    """A sibling revision's module (their file names start with digits: not importable by name)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"genvault_revision_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _guarded(function: str, guard: str) -> str:
    """Revision 0015's function with `guard` as the first statement of its body."""
    head, body = function.split("\nBEGIN\n", 1)
    return f"{head}\nBEGIN\n{guard}{body}"


def _triggers(conditions: dict[str, str]) -> None:
    for name, events in _EVENTS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON generations")
        op.execute(
            f"CREATE TRIGGER {name} {events} ON generations FOR EACH ROW "
            f"WHEN ({conditions[name]}) EXECUTE FUNCTION {name}()"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    limits = _revision("0015_limit_triggers.py")
    op.execute(_guarded(limits._PG_RESERVE, _RESERVE_GUARD))
    op.execute(_guarded(limits._PG_SETTLE, _SETTLE_GUARD))
    _triggers({name: "NEW.reservation IS NOT NULL" for name in _EVENTS})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    limits = _revision("0015_limit_triggers.py")
    when = {name: after for name, _, _, _, after in _revision("0030_pg_compact_checks.py")._TRIGGERS}
    _triggers({name: when[name] for name in _EVENTS})
    op.execute(limits._PG_RESERVE)
    op.execute(limits._PG_SETTLE)
