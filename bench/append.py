"""Benchmark 1, chat turn append: turns/s with 1 and 8 concurrent writers, SQLite and PostgreSQL.

    .venv/bin/python -m bench.append [--db sqlite --db postgres] [--writers 1 --writers 8]
                                     [--seconds 1.5] [--rounds 5] [--no-peers]

A turn is a user message plus an assistant message with reasoning, a tool call and text, written
atomically and in order. Each round runs every contender for `--seconds` in turn (the order
rotates per round, so drift on a noisy machine hits them all alike); the table reports the median
round's turns/s, per-turn latency p50/p99, and the ratio to the hand-written-SQL baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench._common import DATABASES, LOOPS, fresh_database, machine, ratio, run_on, summarize, write_result
from bench._contenders import Contender, contenders


async def _drive(contender: Contender, writers: int, seconds: float) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await contender.append(index)
            latencies.append(time.perf_counter() - start)
            done += 1
        return done

    start = time.perf_counter()
    counts = await asyncio.gather(*(writer(i) for i in range(writers)))
    return sum(counts), time.perf_counter() - start, latencies


async def _analyze(url: str) -> None:
    """Planner statistics for the tables the warm-up filled, as autovacuum would gather on a
    real server (the bench's server may run without it). Without them PostgreSQL plans the
    foreign-key checks of every insert blind: it probed a chat's messages through the
    `(chat_id, seq)` index and filtered every row, so each turn cost more than the last."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def run(
    *,
    dbs: list[str],
    writer_counts: list[int],
    seconds: float,
    rounds: int,
    peers: bool,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for db in dbs:
        for writers in writer_counts:
            async with fresh_database(db) as url:
                live: list[Contender] = []
                for cls in contenders(peers=peers):
                    if db in cls.databases:
                        contender = cls()
                        await contender.setup(url, writers)
                        live.append(contender)
                rates: dict[str, list[float]] = {c.name: [] for c in live}
                latencies: dict[str, list[float]] = {c.name: [] for c in live}
                try:
                    for contender in live:  # warm-up: connections, statement caches
                        await _drive(contender, writers, min(0.2, seconds))
                    if db == "postgres":
                        await _analyze(url)
                    for round_index in range(rounds):
                        shift = round_index % len(live)
                        for contender in live[shift:] + live[:shift]:
                            turns, elapsed, lat = await _drive(contender, writers, seconds)
                            rates[contender.name].append(turns / elapsed)
                            latencies[contender.name].extend(lat)
                finally:
                    for contender in live:
                        await contender.close()
            baseline = statistics.median(rates["raw SQL"])
            for name in rates:
                median = statistics.median(rates[name])
                results.append(
                    {
                        "db": db,
                        "writers": writers,
                        "contender": name,
                        "turns_per_s": median,
                        "rounds_turns_per_s": rates[name],
                        "latency_s": summarize(latencies[name]),
                        "vs_raw_sql": ratio(median, baseline),
                    }
                )
                print(
                    f"{db:8} writers={writers} {name:20} {median:8.1f} turns/s "
                    f"p50 {summarize(latencies[name])['p50'] * 1000:6.2f} ms  x{ratio(median, baseline):.2f} raw"
                )
    data = {
        "params": {"dbs": dbs, "writers": writer_counts, "seconds": seconds, "rounds": rounds, "peers": peers},
        "machine": await machine(),
        "results": results,
    }
    write_result("append", data, out_dir)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--writers", action="append", type=int, help="concurrent writers (default: 1 and 8)")
    parser.add_argument("--seconds", type=float, default=1.5, help="per contender per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="genvault and raw SQL only")
    parser.add_argument("--loop", choices=LOOPS, default="uvloop", help="event loop (default: uvloop)")
    args = parser.parse_args()
    run_on(
        args.loop,
        run(
            dbs=args.db or list(DATABASES),
            writer_counts=args.writers or [1, 8],
            seconds=args.seconds,
            rounds=args.rounds,
            peers=not args.no_peers,
        ),
    )


if __name__ == "__main__":
    main()
