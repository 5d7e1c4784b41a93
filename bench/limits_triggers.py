"""What the budget triggers (revision 0015) cost the statements they ride on, measured without
the rest of a turn around them: the insert of a pending generation and the update that ends it,
the same two statements with a reservation (the trigger reserves, then settles) and without one
(the triggers' WHEN is false), alternated on one connection, one database, in one run.

    .venv/bin/python -m bench.limits_triggers [--db sqlite|postgres ...] [--n 2000] [--runs 3]

Each statement runs on its own in autocommit, as the one-step opening does (PostgreSQL: asyncpg,
one round trip each; SQLite: the stdlib driver in process). Reported per run: p50 of the insert
and of the update with and without a reservation, and the difference of their sums (what a turn
pays for its budget in the database); then the median of that difference over the runs. On
PostgreSQL also the trigger's own time as the server counts it (`EXPLAIN ANALYZE` of the same
insert and update, rolled back: "Triggers"). Results: bench/results/limits-triggers.json.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import DATABASES, fresh_database, machine, run_on, sqlite_path, summarize, write_result

USERS = ("free", "limited")
LIMITS = {"daily_usd": "1000", "monthly_usd": "10000", "total_usd": "100000", "concurrent": 1000}
NANO = 20_000


def reservation(now: datetime) -> dict[str, Any]:
    from genvault.limits import Admission

    admission = Admission(
        user_id="limited",
        key_id=None,
        day=now.strftime("%Y-%m-%d"),
        month=now.strftime("%Y-%m"),
        nano=NANO,
        subjects=["user:limited"],
        caps=[{"daily": 10**12, "monthly": 10**13, "total": 10**14, "concurrent": 1000}],
    )
    held = admission.reservation()
    assert held is not None
    return held


async def _prepare(url: str) -> None:
    """The schema (every revision) and the two users, the limited one with its ledger row."""
    from genvault import Settings, Vault

    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        async with Vault(Settings(database_url=url, data_dir=Path(tmp))) as vault:
            for user in USERS:
                await vault.ensure_user(user)
            await vault.set_limits(LIMITS, user_id="limited")


INSERT = (
    "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, reservation) "
    "VALUES ({p[0]}, 'text', {p[1]}, 'pending', 'offline/test-model', 'offline', '{{}}', {p[2]}, {p[3]})"
)
UPDATE = "UPDATE generations SET status = 'complete', cost_nano_usd = {p[0]}, finished_at = {p[1]} WHERE id = {p[2]}"


async def _postgres(url: str, n: int) -> dict[str, Any]:
    import asyncpg

    pg = ("$1", "$2", "$3::timestamptz", "$4::jsonb")
    insert, update = INSERT.format(p=pg), UPDATE.format(p=("$1", "$2::timestamptz", "$3"))
    samples: dict[str, list[float]] = {f"{u} {s}": [] for u in USERS for s in ("insert", "update")}
    conn = await asyncpg.connect(url)
    try:
        held = json.dumps(reservation(datetime.now(UTC)))
        for i in range(n):
            for user in USERS if i % 2 else reversed(USERS):
                gid, now = f"gen_{user}_{i}", datetime.now(UTC)
                start = time.perf_counter()
                await conn.execute(insert, gid, user, now, held if user == "limited" else None)
                middle = time.perf_counter()
                await conn.execute(update, 15_000, now, gid)
                samples[f"{user} insert"].append((middle - start) * 1e3)
                samples[f"{user} update"].append((time.perf_counter() - middle) * 1e3)
        server = await _server_trigger_ms(conn, insert, update, held)
        ledger = await conn.fetchrow("SELECT running, reserved_nano_usd, total_nano_usd FROM limit_usage")
    finally:
        await conn.close()
    assert ledger is not None
    assert (ledger["running"], ledger["reserved_nano_usd"]) == (0, 0)
    assert ledger["total_nano_usd"] == 15_000 * n  # every reservation taken and settled at its cost
    return {"samples": samples, "server_trigger_ms": server}


async def _server_trigger_ms(conn: Any, insert: str, update: str, held: str) -> dict[str, float]:
    """The triggers' time as PostgreSQL counts it (EXPLAIN ANALYZE, rolled back), p50 of 200."""
    times: dict[str, list[float]] = {"reserve": [], "settle": []}
    for i in range(200):
        transaction = conn.transaction()
        await transaction.start()
        try:
            for name, sql, args in (
                ("reserve", insert, (f"gen_explain_{i}", "limited", datetime.now(UTC), held)),
                ("settle", update, (15_000, datetime.now(UTC), f"gen_explain_{i}")),
            ):
                plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))
                triggers = plan[0].get("Triggers", [])
                times[name].extend(t["Time"] for t in triggers if t["Trigger Name"].startswith("limit"))
        finally:
            await transaction.rollback()
    return {name: statistics.median(values) for name, values in times.items() if values}


def _sqlite(url: str, n: int) -> dict[str, Any]:
    lite = ("?", "?", "?", "?")
    insert, update = INSERT.format(p=lite), UPDATE.format(p=("?", "?", "?"))
    samples: dict[str, list[float]] = {f"{u} {s}": [] for u in USERS for s in ("insert", "update")}
    db = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        held = json.dumps(reservation(datetime.now(UTC)))
        for i in range(n):
            for user in USERS if i % 2 else reversed(USERS):
                gid, now = f"gen_{user}_{i}", datetime.now(UTC).isoformat()
                start = time.perf_counter()
                db.execute(insert, (gid, user, now, held if user == "limited" else None))
                middle = time.perf_counter()
                db.execute(update, (15_000, now, gid))
                samples[f"{user} insert"].append((middle - start) * 1e3)
                samples[f"{user} update"].append((time.perf_counter() - middle) * 1e3)
        ledger = db.execute("SELECT running, reserved_nano_usd, total_nano_usd FROM limit_usage").fetchone()
    finally:
        db.close()
    assert ledger == (0, 0, 15_000 * n), ledger
    return {"samples": samples}


async def one_run(db: str, n: int) -> dict[str, Any]:
    async with fresh_database(db) as url:
        await _prepare(url)
        measured = await _postgres(url, n) if db == "postgres" else _sqlite(url, n)
    stats = {name: summarize(values) for name, values in measured.pop("samples").items()}
    free = stats["free insert"]["p50"] + stats["free update"]["p50"]
    limited = stats["limited insert"]["p50"] + stats["limited update"]["p50"]
    return {"db": db, "n": n, "ms": stats, "delta_p50_ms": limited - free, **measured}


async def run(dbs: list[str], n: int, runs: int) -> dict[str, Any]:
    data: dict[str, Any] = {"machine": await machine(), "runs": [], "summary": []}
    for db in dbs:
        results = []
        for r in range(runs):
            result = await one_run(db, n)
            results.append(result)
            ms = result["ms"]
            print(
                f"{db:8} run {r + 1}: "
                f"insert p50 {ms['free insert']['p50']:.3f} → {ms['limited insert']['p50']:.3f} ms, "
                f"update p50 {ms['free update']['p50']:.3f} → {ms['limited update']['p50']:.3f} ms, "
                f"Δ {result['delta_p50_ms']:+.3f} ms"
                + (f"; server trigger time {result['server_trigger_ms']}" if "server_trigger_ms" in result else "")
            )
        data["runs"].extend(results)
        summary = {"db": db, "median_delta_p50_ms": statistics.median(r["delta_p50_ms"] for r in results)}
        data["summary"].append(summary)
        print(f"{db:8} median over {runs} runs: Δ insert + update p50 {summary['median_delta_p50_ms']:+.3f} ms")
    write_result("limits-triggers", data)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeatable; default: both")
    parser.add_argument("--n", type=int, default=2000, help="pairs of statements per user and run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run_on("uvloop", run(args.db or list(DATABASES), args.n, args.runs))


if __name__ == "__main__":
    main()
