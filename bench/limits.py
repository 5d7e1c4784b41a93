"""What limits cost a chat turn: the same turn by a user with no limit and by a user with every
kind of limit set (day, month and total budgets, requests and tokens per minute, generations at
once), interleaved in one process on one database, so both see the same machine at the same time.

    .venv/bin/python -m bench.limits [--db sqlite|postgres ...] [--turns 300] [--runs 3] [--redis URL]
                                     [--chats existing|new]

Per turn: `open` is `Vault.chat` returning (admission, the pending record's insert, whose trigger
takes the reservation); `turn` is until the record is final (the offline test model at full
speed, the finalize's update settling the reservation by the other trigger). Reported: p50 of
each, per group, the difference (limited - free) per run and its median over the runs, the SQL
statements per turn counted on the engine and on the driver (SQLAlchemy's cursor events, plus the
one-step opening's statement, which runs on the driver: counted by wrapping `open_new_chat_turn`),
the time spent inside the limits' own Python calls per turn (admit, reserve, record_tokens), and
the process's CPU time per open and per turn (`time.process_time`, every thread of the process:
less exposed to a loaded machine's scheduling than wall time; on PostgreSQL it leaves out the
server's own work, which `bench.limits_triggers` measures).
Results go to bench/results/limits.json (limits-new.json for `--chats new`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.util import await_only

from bench._common import DATABASES, fresh_database, run_on, summarize

RESULTS = Path(__file__).with_name("results")
EVERY_LIMIT = {
    "daily_usd": "1000",
    "monthly_usd": "10000",
    "total_usd": "100000",
    "rpm": 1_000_000,
    "tpm": 1_000_000_000,
    "concurrent": 1000,
}


def _count_statements(vault: Any, db: str) -> list[int]:
    """Every statement sent to the database, counted where it leaves the process (statements
    that bypass SQLAlchemy, the one-step opening and the append, count too): SQLite's trace
    callback on each pooled connection; on PostgreSQL asyncpg's execution entry points (the
    process-wide patch stays for the rest of the run: a benchmark's own process). Triggers'
    statements run inside the database and are not sent: not counted."""
    count = [0]
    if db == "sqlite":
        last = [""]

        def sent(statement: str) -> None:
            # Not a trigger's (traced as `-- …`, and as a repeat of the statement that fired
            # it), the pool's pragmas, or an `executemany`'s rows after its first.
            text = statement.lstrip()
            if not text.startswith(("--", "PRAGMA")) and text != last[0]:
                count[0] += 1
            if not text.startswith("--"):
                last[0] = text

        def trace(conn: Any, _record: Any, _proxy: Any) -> None:
            await_only(conn.driver_connection.set_trace_callback(sent))

        event.listen(vault.store.engine.sync_engine, "checkout", trace)
        return count
    if not _PG_SENT:
        _patch_asyncpg()
        _PG_SENT.append(0)
    return _PG_SENT


_PG_SENT: list[int] = []  # on PostgreSQL, one count for the process (asyncpg is patched once)


def _patch_asyncpg() -> None:
    import asyncpg.connection as connection
    import asyncpg.prepared_stmt as prepared

    def counted(method: Any, with_args_only: bool = False) -> Any:
        async def wrapper(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if not with_args_only or not args:
                _PG_SENT[0] += 1
            return await method(self, query, *args, **kwargs)

        return wrapper

    conn_class: Any = connection.Connection
    conn_class._do_execute = counted(conn_class._do_execute)
    # With arguments, `execute` goes through `_do_execute` (counted there).
    conn_class.execute = counted(conn_class.execute, with_args_only=True)
    statement_class: Any = prepared.PreparedStatement
    statement_class._PreparedStatement__do_execute = counted(statement_class._PreparedStatement__do_execute)


async def one_run(db: str, turns: int, redis_url: str | None, chats: str = "existing") -> dict[str, Any]:
    from genvault import Settings, Vault

    async with fresh_database(db) as url:
        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            settings = Settings(
                database_url=url,
                data_dir=Path(tmp),
                test_model_tps=0,
                redis_url=redis_url,
                redis_prefix=f"genvault-bench-{time.time_ns()}:",
                # Priced, so the budgets apply (the offline model has no price of its own).
                price_overrides={"offline/test-model": {"input_mtok": "0.15", "output_mtok": "0.6"}},
            )
            async with Vault(settings) as vault:
                for user in ("free", "limited"):
                    await vault.ensure_user(user)
                await vault.set_limits(EVERY_LIMIT, user_id="limited")
                statements = _count_statements(vault, db)
                samples: dict[str, dict[str, list[float]]] = {
                    u: {"open": [], "turn": [], "open_cpu": [], "turn_cpu": [], "statements": [], "limits": []}
                    for u in ("free", "limited")
                }
                # The time spent inside the limits' own calls per turn (admit, reserve,
                # record_tokens), measured directly: less exposed to the machine's noise than a
                # difference of two turn times.
                spent_in_limits = [0.0]

                def timed(name: str) -> None:
                    original = getattr(vault.limits, name)

                    async def wrapper(*args: Any, **kwargs: Any) -> Any:
                        start = time.perf_counter()
                        try:
                            return await original(*args, **kwargs)
                        finally:
                            spent_in_limits[0] += time.perf_counter() - start

                    setattr(vault.limits, name, wrapper)

                for name in ("admit", "reserve", "record_tokens"):
                    timed(name)

                async def turn(user: str, i: int) -> None:
                    message = {
                        "id": f"m{i}-{time.perf_counter_ns()}",
                        "role": "user",
                        "parts": [{"type": "text", "text": f"turn {i}"}],
                    }
                    before = statements[0]
                    spent_in_limits[0] = 0.0
                    cpu_start = time.process_time()
                    start = time.perf_counter()
                    # `existing`: the next turn of one of 10 chats (the usual turn); `new`: a new
                    # chat's first turn (h16's one-step opening, taken only with no budget held).
                    chat_id = f"{user}-{i % 10}" if chats == "existing" else f"{user}-{i}"
                    started = await vault.chat(chat_id, message=message, user_id=user, cache=False)
                    opened, cpu_opened = time.perf_counter(), time.process_time()
                    await vault.wait(started.generation.id, user_id=user)
                    done, cpu_done = time.perf_counter(), time.process_time()
                    samples[user]["open"].append((opened - start) * 1e3)
                    samples[user]["turn"].append((done - start) * 1e3)
                    samples[user]["open_cpu"].append((cpu_opened - cpu_start) * 1e3)
                    samples[user]["turn_cpu"].append((cpu_done - cpu_start) * 1e3)
                    samples[user]["statements"].append(statements[0] - before)
                    samples[user]["limits"].append(spent_in_limits[0] * 1e3)

                for i in range(20):  # warm-up: statements compiled, pools filled, the chats made
                    await turn("free", 1000 + i)
                    await turn("limited", 1000 + i)
                for user in ("free", "limited"):
                    for key in samples[user]:
                        samples[user][key].clear()
                for i in range(turns):
                    # Alternate who goes first, so neither always follows the other.
                    order = ("free", "limited") if i % 2 else ("limited", "free")
                    for user in order:
                        await turn(user, i)
                # The limited user's own statements, read by the library as a client would.
                status = await vault.limits_status("limited")
    result: dict[str, Any] = {"db": db, "turns": turns, "redis": bool(redis_url), "chats": chats}
    for user in ("free", "limited"):
        result[user] = {
            "open_ms": summarize(samples[user]["open"]),
            "turn_ms": summarize(samples[user]["turn"]),
            "open_cpu_ms": summarize(samples[user]["open_cpu"]),
            "turn_cpu_ms": summarize(samples[user]["turn_cpu"]),
            "statements_per_turn": statistics.median(samples[user]["statements"]),
            "in_limits_ms": summarize(samples[user]["limits"]),
        }
    result["delta_open_p50_ms"] = result["limited"]["open_ms"]["p50"] - result["free"]["open_ms"]["p50"]
    result["delta_turn_p50_ms"] = result["limited"]["turn_ms"]["p50"] - result["free"]["turn_ms"]["p50"]
    for part in ("open", "turn"):
        free, limited = result["free"][f"{part}_cpu_ms"]["p50"], result["limited"][f"{part}_cpu_ms"]["p50"]
        result[f"delta_{part}_cpu_p50_ms"] = limited - free
    result["extra_statements"] = result["limited"]["statements_per_turn"] - result["free"]["statements_per_turn"]
    result["limits_in_force"] = len(status.usage)
    return result


async def run(
    dbs: list[str],
    turns: int = 300,
    runs: int = 3,
    redis_url: str | None = None,
    out_dir: Path = RESULTS,
    chats: str = "existing",
) -> dict[str, Any]:
    data: dict[str, Any] = {"benchmark": "limits", "chats": chats, "runs": [], "summary": []}
    for db in dbs:
        per_db = []
        for n in range(runs):
            result = await one_run(db, turns, redis_url, chats)
            per_db.append(result)
            print(
                f"{db:8} run {n + 1}: open p50 free {result['free']['open_ms']['p50']:.3f} ms, "
                f"limited {result['limited']['open_ms']['p50']:.3f} ms (Δ {result['delta_open_p50_ms']:+.3f}); "
                f"turn p50 free {result['free']['turn_ms']['p50']:.3f} ms, "
                f"limited {result['limited']['turn_ms']['p50']:.3f} ms (Δ {result['delta_turn_p50_ms']:+.3f}); "
                f"statements {result['free']['statements_per_turn']:g} → {result['limited']['statements_per_turn']:g}; "
                f"inside limits p50 {result['limited']['in_limits_ms']['p50']:.3f} ms; "
                f"CPU p50 Δ open {result['delta_open_cpu_p50_ms']:+.3f} ms, "
                f"Δ turn {result['delta_turn_cpu_p50_ms']:+.3f} ms"
            )
        data["runs"].extend(per_db)
        summary = {
            "db": db,
            "median_delta_open_p50_ms": statistics.median(r["delta_open_p50_ms"] for r in per_db),
            "median_delta_turn_p50_ms": statistics.median(r["delta_turn_p50_ms"] for r in per_db),
            "extra_statements": statistics.median(r["extra_statements"] for r in per_db),
            "median_in_limits_p50_ms": statistics.median(r["limited"]["in_limits_ms"]["p50"] for r in per_db),
            "median_delta_open_cpu_p50_ms": statistics.median(r["delta_open_cpu_p50_ms"] for r in per_db),
            "median_delta_turn_cpu_p50_ms": statistics.median(r["delta_turn_cpu_p50_ms"] for r in per_db),
        }
        data["summary"].append(summary)
        print(
            f"{db:8} median over {runs} runs: Δ open p50 {summary['median_delta_open_p50_ms']:+.3f} ms, "
            f"Δ turn p50 {summary['median_delta_turn_p50_ms']:+.3f} ms, "
            f"extra statements {summary['extra_statements']:g}, "
            f"inside limits p50 {summary['median_in_limits_p50_ms']:.3f} ms, "
            f"CPU Δ open p50 {summary['median_delta_open_cpu_p50_ms']:+.3f} ms, "
            f"CPU Δ turn p50 {summary['median_delta_turn_cpu_p50_ms']:+.3f} ms"
        )
    await asyncio.to_thread(_write, out_dir, data)
    return data


def _write(out_dir: Path, data: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"limits-{data['chats']}.json" if data["chats"] != "existing" else out_dir / "limits.json").write_text(
        json.dumps(data, indent=2) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeatable; default: both")
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default=None, help="redis://… for the rate windows (default: in memory)")
    parser.add_argument(
        "--chats", default="existing", choices=("existing", "new"), help="turns of 10 chats, or new chats"
    )
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    args = parser.parse_args()
    run_on(args.loop, run(args.db or list(DATABASES), args.turns, args.runs, args.redis, chats=args.chats))


if __name__ == "__main__":
    main()
