"""limit_usage kept by triggers on generations: the reservation is taken by the pending record's
own insert, and given back by the update that ends the record

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05 21:00:00

Why triggers: the reservation must be atomic with the pending record (a refused request writes
nothing; a record never exists without what it holds, nor a hold without its record), and a
turn must not pay a statement for it. With the budget check in the insert's own trigger, the
reservation rides on the statement that writes the pending row, whichever path writes it (the
one-step opening of a new chat, the general turn transaction, `/api/generate`, images, the
gateway), and every way a record ends (finalize, a cancel from another process, the sweeper,
shutdown) settles it by the update that ends it.

A generation's `reservation` (JSON, written by `genvault.limits`) says what to hold:
`{"nano", "day", "month", "subjects": [...], "caps": [[daily, monthly, total, concurrent], ...],
"unpriced"?}`, the caps parallel to the subjects (null: no cap).

- reserve (AFTER INSERT, a reservation on a running record): every subject's row must still have
  room (day's, month's and total spend plus the reservation within its caps; running count under
  its concurrency cap), else the statement fails with `genvault: limit reached` and nothing of it
  is written. PostgreSQL: one conditional upsert per subject (`ON CONFLICT DO UPDATE … WHERE`):
  it locks the row and re-checks on its latest version, so two processes cannot both take the
  last room; the lock is held to the end of the transaction. SQLite: check then upsert inside the
  insert's own statement, which holds the database's one write lock.
- settle (AFTER UPDATE, the record leaving pending/streaming): the reservation is replaced by the
  record's cost (unknown: the reservation itself for a complete priced record, else nothing), the
  running slot freed. A day or month that has moved on keeps its new count.
- late cost (AFTER UPDATE of the cost on a record already final: the sweeper's estimate of an
  interrupted record, a cancelled record's partial usage written by its own process): the
  difference from what the settlement counted.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

REFUSED = "genvault: limit reached"  # genvault.store.schema.LIMIT_REFUSED (kept here: revisions are frozen)
NO_CAP = 2**62
ACTIVE = "('pending', 'streaming')"

# -- PostgreSQL ---------------------------------------------------------------------------------

_PG_RESERVE = f"""
CREATE OR REPLACE FUNCTION limit_usage_reserve() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r jsonb := NEW.reservation;
    n bigint := (r->>'nano')::bigint;
    d text := r->>'day';
    m text := r->>'month';
    c jsonb;
BEGIN
    FOR i IN 0 .. jsonb_array_length(r->'subjects') - 1 LOOP
        c := r->'caps'->i;
        INSERT INTO limit_usage AS u
            (subject, user_id, day, day_nano_usd, month, month_nano_usd, total_nano_usd, running, reserved_nano_usd)
        VALUES (r->'subjects'->>i, NEW.user_id, d, n, m, n, n, 1, n)
        ON CONFLICT (subject) DO UPDATE SET
            day = d,
            day_nano_usd = (CASE WHEN u.day = d THEN u.day_nano_usd ELSE 0 END) + n,
            month = m,
            month_nano_usd = (CASE WHEN u.month = m THEN u.month_nano_usd ELSE 0 END) + n,
            total_nano_usd = u.total_nano_usd + n,
            running = u.running + 1,
            reserved_nano_usd = u.reserved_nano_usd + n
        WHERE (CASE WHEN u.day = d THEN u.day_nano_usd ELSE 0 END) + n <= COALESCE((c->>0)::bigint, {NO_CAP})
          AND (CASE WHEN u.month = m THEN u.month_nano_usd ELSE 0 END) + n <= COALESCE((c->>1)::bigint, {NO_CAP})
          AND u.total_nano_usd + n <= COALESCE((c->>2)::bigint, {NO_CAP})
          AND u.running + 1 <= COALESCE((c->>3)::bigint, {NO_CAP});
        IF NOT FOUND THEN
            RAISE EXCEPTION '{REFUSED} (%)', r->'subjects'->>i;
        END IF;
    END LOOP;
    RETURN NULL;
END $$
"""

_PG_SETTLE = f"""
CREATE OR REPLACE FUNCTION limit_usage_settle() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r jsonb := NEW.reservation;
    n bigint := (r->>'nano')::bigint;
    counted bigint := CASE WHEN NEW.status = 'complete' AND NOT COALESCE((r->>'unpriced')::boolean, false)
                           THEN (r->>'nano')::bigint ELSE 0 END;
    delta bigint;
    held bigint := 0;
    ending integer := 0;
BEGIN
    IF OLD.status IN {ACTIVE} THEN
        delta := COALESCE(NEW.cost_nano_usd, counted) - n;
        held := n;
        ending := 1;
    ELSE
        delta := NEW.cost_nano_usd - counted;
    END IF;
    UPDATE limit_usage SET
        day_nano_usd = CASE WHEN day = r->>'day' THEN day_nano_usd + delta ELSE day_nano_usd END,
        month_nano_usd = CASE WHEN month = r->>'month' THEN month_nano_usd + delta ELSE month_nano_usd END,
        total_nano_usd = total_nano_usd + delta,
        running = GREATEST(running - ending, 0),
        reserved_nano_usd = GREATEST(reserved_nano_usd - held, 0)
    WHERE subject IN (SELECT jsonb_array_elements_text(r->'subjects'));
    RETURN NULL;
END $$
"""


def _pg_upgrade() -> None:
    op.execute(_PG_RESERVE)
    op.execute(_PG_SETTLE)
    op.execute(
        "CREATE TRIGGER limit_usage_reserve AFTER INSERT ON generations FOR EACH ROW "
        f"WHEN (NEW.reservation IS NOT NULL AND NEW.status IN {ACTIVE}) EXECUTE FUNCTION limit_usage_reserve()"
    )
    op.execute(
        "CREATE TRIGGER limit_usage_settle AFTER UPDATE OF status, cost_nano_usd ON generations FOR EACH ROW "
        f"WHEN (NEW.reservation IS NOT NULL AND NEW.status NOT IN {ACTIVE} AND (OLD.status IN {ACTIVE} "
        "OR (OLD.status = NEW.status AND OLD.cost_nano_usd IS NULL AND NEW.cost_nano_usd IS NOT NULL))) "
        "EXECUTE FUNCTION limit_usage_settle()"
    )


# -- SQLite -------------------------------------------------------------------------------------

_R = "NEW.reservation"
_NANO = f"json_extract({_R}, '$.nano')"
_DAY = f"json_extract({_R}, '$.day')"
_MONTH = f"json_extract({_R}, '$.month')"
_SUBJECTS = f"(SELECT value FROM json_each({_R}, '$.subjects'))"
_COUNTED = (
    f"(CASE WHEN NEW.status = 'complete' AND COALESCE(json_extract({_R}, '$.unpriced'), 0) = 0 THEN {_NANO} ELSE 0 END)"
)


def _cap(index: int) -> str:
    return f"COALESCE(json_extract({_R}, '$.caps[' || s.key || '][{index}]'), {NO_CAP})"


_SQLITE_RESERVE = f"""
CREATE TRIGGER limit_usage_reserve AFTER INSERT ON generations
WHEN NEW.reservation IS NOT NULL AND NEW.status IN {ACTIVE}
BEGIN
    SELECT RAISE(ABORT, '{REFUSED}')
    FROM json_each({_R}, '$.subjects') AS s JOIN limit_usage AS u ON u.subject = s.value
    WHERE (CASE WHEN u.day = {_DAY} THEN u.day_nano_usd ELSE 0 END) + {_NANO} > {_cap(0)}
       OR (CASE WHEN u.month = {_MONTH} THEN u.month_nano_usd ELSE 0 END) + {_NANO} > {_cap(1)}
       OR u.total_nano_usd + {_NANO} > {_cap(2)}
       OR u.running + 1 > {_cap(3)};
    INSERT INTO limit_usage
        (subject, user_id, day, day_nano_usd, month, month_nano_usd, total_nano_usd, running, reserved_nano_usd)
    SELECT s.value, NEW.user_id, {_DAY}, {_NANO}, {_MONTH}, {_NANO}, {_NANO}, 1, {_NANO}
    FROM json_each({_R}, '$.subjects') AS s WHERE true
    ON CONFLICT (subject) DO UPDATE SET
        day = excluded.day,
        day_nano_usd = (CASE WHEN limit_usage.day = excluded.day THEN limit_usage.day_nano_usd ELSE 0 END)
            + excluded.day_nano_usd,
        month = excluded.month,
        month_nano_usd = (CASE WHEN limit_usage.month = excluded.month THEN limit_usage.month_nano_usd ELSE 0 END)
            + excluded.month_nano_usd,
        total_nano_usd = limit_usage.total_nano_usd + excluded.total_nano_usd,
        running = limit_usage.running + 1,
        reserved_nano_usd = limit_usage.reserved_nano_usd + excluded.reserved_nano_usd;
END
"""


def _sqlite_change(delta: str, ending: int) -> str:
    held = _NANO if ending else "0"
    return (
        "UPDATE limit_usage SET "
        f"day_nano_usd = CASE WHEN day = {_DAY} THEN day_nano_usd + {delta} ELSE day_nano_usd END, "
        f"month_nano_usd = CASE WHEN month = {_MONTH} THEN month_nano_usd + {delta} ELSE month_nano_usd END, "
        f"total_nano_usd = total_nano_usd + {delta}, "
        f"running = MAX(running - {ending}, 0), "
        f"reserved_nano_usd = MAX(reserved_nano_usd - {held}, 0) "
        f"WHERE subject IN {_SUBJECTS};"
    )


_SQLITE_SETTLE = f"""
CREATE TRIGGER limit_usage_settle AFTER UPDATE OF status ON generations
WHEN NEW.reservation IS NOT NULL AND OLD.status IN {ACTIVE} AND NEW.status NOT IN {ACTIVE}
BEGIN
    {_sqlite_change(f"(COALESCE(NEW.cost_nano_usd, {_COUNTED}) - {_NANO})", 1)}
END
"""

_SQLITE_LATE_COST = f"""
CREATE TRIGGER limit_usage_late_cost AFTER UPDATE OF cost_nano_usd ON generations
WHEN NEW.reservation IS NOT NULL AND OLD.status = NEW.status AND NEW.status NOT IN {ACTIVE}
     AND OLD.cost_nano_usd IS NULL AND NEW.cost_nano_usd IS NOT NULL
BEGIN
    {_sqlite_change(f"(NEW.cost_nano_usd - {_COUNTED})", 0)}
END
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        op.execute(_SQLITE_RESERVE)
        op.execute(_SQLITE_SETTLE)
        op.execute(_SQLITE_LATE_COST)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS limit_usage_settle ON generations")
        op.execute("DROP TRIGGER IF EXISTS limit_usage_reserve ON generations")
        op.execute("DROP FUNCTION IF EXISTS limit_usage_settle()")
        op.execute("DROP FUNCTION IF EXISTS limit_usage_reserve()")
    else:
        for name in ("limit_usage_late_cost", "limit_usage_settle", "limit_usage_reserve"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
