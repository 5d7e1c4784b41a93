"""Benchmark 4, HTTP: requests/s, latency and server CPU per request of
`GET /api/chats/{id}/messages?limit=50` and of `POST /api/chat` (a whole chat turn: the offline
test model replying 20 tokens at full speed, the SSE stream read to the end), with the bare relay
of the same reply (`bench._server --mode bare`: same translator and SSE framing, no records) run
in the same process run, alternating with genvault, as the anchor.

    .venv/bin/python -m bench.http [--db sqlite --db postgres] [--concurrency 8 --concurrency 64]
                                   [--duration 4] [--rounds 3] [--chat-size 1000]

Both servers are `bench._server` (one uvicorn worker, uvloop + httptools, access log on as
`genvault serve` has it; genvault's is `create_app`, what `genvault serve` runs); the load
generator is `bench._load` (asyncio + httpx, keep-alive connections) in its own process, which
also reads the server's CPU time from /proc over the measured window (not the warm-up). The
chat read by the GET has `--chat-size` messages. Targets are ratios to the same-run bare relay,
median over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import DATABASES, fresh_database, machine, summarize, write_result
from bench._contenders import Genvault
from bench._proc import PYTHONPATH, ROOT, server

REPLY_TOKENS = 20


async def _seed(url: str, size: int) -> str:
    from bench.pageload import _seed_genvault

    genvault = Genvault()
    await genvault.setup(url, 1)
    try:
        await genvault.vault.ensure_user("local")
        await _seed_genvault(genvault, genvault.chat_ids[0], size)
        # The server with auth none serves the local user: give the chat to it. No ANALYZE: its
        # statistics would describe a database of one chat, one message-holding chat id and no
        # cache entry, and every plan a pooled connection (and its backend's foreign-key checks)
        # settled on from them scanned `chats`, `messages` and `cache_entries` whole, tables the
        # chat rounds grow to thousands of rows, with no autovacuum here to analyze them again:
        # the database's CPU per turn grew round after round. Left unanalyzed (but `messages`,
        # which the seeding analyzes for its own inserts), the turns find every row by an index,
        # as on a new deployment (docs/benchmarks.md, "pgturn2").
        async with genvault.vault.store.write() as conn:
            for table in ("parts", "messages", "chats"):
                await conn.exec_driver_sql(f"UPDATE {table} SET user_id = 'local'")
    finally:
        await genvault.close()
    return genvault.chat_ids[0]


def _load(
    base: str, pid: int, kind: str, chat: str, concurrency: int, duration: float, database: str | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench._load", "--url", base, "--kind", kind, "--chat", chat]
    command += ["--concurrency", str(concurrency), "--duration", str(duration), "--server-pid", str(pid)]
    if database is not None:
        command += ["--database-url", database]
    out = subprocess.run(
        command,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"},
    )
    return dict(json.loads(out.stdout))


def _row(db: str, server_name: str, kind: str, concurrency: int, round_: int, got: dict[str, Any]) -> dict[str, Any]:
    requests = got["requests"]
    cpu = got.get("server_cpu_s")
    db_cpu = got.get("database_cpu_s")
    return {
        "db": db,
        "server": server_name,
        "endpoint": "GET /api/chats/{id}/messages?limit=50" if kind == "messages" else "POST /api/chat",
        "concurrency": concurrency,
        "round": round_,
        "requests": requests,
        "requests_per_s": requests / got["elapsed_s"],
        "errors": got["errors"],
        "error_kinds": got.get("error_kinds", {}),
        "server_cpu_ms_per_request": cpu * 1000 / requests if cpu is not None and requests else None,
        # PostgreSQL's backends serving genvault's database (None for SQLite and the bare relay).
        "database_cpu_ms_per_request": db_cpu * 1000 / requests if db_cpu is not None and requests else None,
        "latency_s": summarize(got["latencies_s"]) if got["latencies_s"] else None,
    }


def _print(row: dict[str, Any]) -> None:
    lat = row["latency_s"] or {"p50": 0, "p99": 0}
    cpu = row["server_cpu_ms_per_request"]
    print(
        f"{row['db']:8} {row['server']:8} {row['endpoint'][:24]:24} c={row['concurrency']:<3} "
        f"{row['requests_per_s']:7.1f} req/s  p50 {lat['p50'] * 1000:7.1f} ms  p99 {lat['p99'] * 1000:7.1f} ms  "
        f"cpu {cpu or 0:6.2f} ms/req  "
        + (f"db {row['database_cpu_ms_per_request']:5.2f} ms/req  " if row.get("database_cpu_ms_per_request") else "")
        + f"errors {row['errors']}"
        + (f" {row['error_kinds']}" if row.get("error_kinds") else ""),
        flush=True,
    )


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per database and client count: genvault's `POST /api/chat` against the same round's bare
    relay (CPU per request, requests/s, p99), the median over the rounds."""
    out = []
    keys = dict.fromkeys((r["db"], r["concurrency"]) for r in results if r["endpoint"] == "POST /api/chat")
    for db, concurrency in keys:
        pairs = []
        for r in results:
            wanted = (db, concurrency, "genvault", "POST /api/chat")
            if (r["db"], r["concurrency"], r["server"], r["endpoint"]) != wanted:
                continue
            bare = next(
                b
                for b in results
                if (b["db"], b["concurrency"], b["server"], b["round"]) == (db, concurrency, "bare", r["round"])
            )
            pairs.append((r, bare))

        def med(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return statistics.median(known) if known else None

        out.append(
            {
                "db": db,
                "concurrency": concurrency,
                "rounds": len(pairs),
                "cpu_ratio": med(
                    [
                        g["server_cpu_ms_per_request"] / b["server_cpu_ms_per_request"]
                        if g["server_cpu_ms_per_request"] and b["server_cpu_ms_per_request"]
                        else None
                        for g, b in pairs
                    ]
                ),
                "rps_ratio": med([g["requests_per_s"] / b["requests_per_s"] for g, b in pairs if b["requests_per_s"]]),
                "p99_ratio": med(
                    [
                        g["latency_s"]["p99"] / b["latency_s"]["p99"]
                        for g, b in pairs
                        if g["latency_s"] and b["latency_s"]
                    ]
                ),
                "errors": sum(g["errors"] for g, _ in pairs),
                "genvault_cpu_ms": med([g["server_cpu_ms_per_request"] for g, _ in pairs]),
                "bare_cpu_ms": med([b["server_cpu_ms_per_request"] for _, b in pairs]),
                "genvault_database_cpu_ms": med([g.get("database_cpu_ms_per_request") for g, _ in pairs]),
            }
        )
    return out


async def run(
    *,
    dbs: list[str],
    concurrency: list[int],
    duration: float,
    chat_size: int,
    rounds: int = 3,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for db in dbs:
        async with fresh_database(db) as url:
            chat = await _seed(url, chat_size)
            with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
                common = ["--tokens", str(REPLY_TOKENS), "--tps", "0", "--access-log"]
                genvault_args = ["bench._server", "--mode", "genvault", "--db", url, "--data-dir", tmp, *common]
                with (
                    server(genvault_args, quiet=True) as (genvault_base, genvault_proc),
                    server(["bench._server", "--mode", "bare", *common], quiet=True) as (bare_base, bare_proc),
                ):
                    servers = (("bare", bare_base, bare_proc.pid), ("genvault", genvault_base, genvault_proc.pid))
                    got = await asyncio.to_thread(
                        _load, genvault_base, genvault_proc.pid, "messages", chat, concurrency[0], duration
                    )
                    results.append(_row(db, "genvault", "messages", concurrency[0], 0, got))
                    _print(results[-1])
                    for clients in concurrency:
                        for round_ in range(rounds):
                            # Alternate which server goes first, so drift hits both.
                            for name, base, pid in servers if round_ % 2 == 0 else servers[::-1]:
                                database = url if name == "genvault" and db == "postgres" else None
                                got = await asyncio.to_thread(
                                    _load, base, pid, "chat", chat, clients, duration, database
                                )
                                results.append(_row(db, name, "chat", clients, round_, got))
                                _print(results[-1])
    turn = summary(results)
    for s in turn:
        print(
            f"{s['db']:8} c={s['concurrency']:<3} genvault/bare (median of {s['rounds']}): "
            f"CPU/turn ×{s['cpu_ratio'] or 0:.2f} ({s['genvault_cpu_ms'] or 0:.2f} vs {s['bare_cpu_ms'] or 0:.2f} ms), "
            f"req/s ×{s['rps_ratio'] or 0:.2f}, p99 ×{s['p99_ratio'] or 0:.2f}, errors {s['errors']}"
            + (f"; database CPU/turn {s['genvault_database_cpu_ms']:.2f} ms" if s["genvault_database_cpu_ms"] else "")
        )
    data = {
        "params": {
            "dbs": dbs,
            "concurrency": concurrency,
            "duration": duration,
            "chat_size": chat_size,
            "rounds": rounds,
            "reply_tokens": REPLY_TOKENS,
        },
        "load_generator": "bench._load: asyncio + httpx in a separate process",
        "machine": await machine(),
        "results": results,
        "turn": turn,
    }
    write_result("http", data, out_dir)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--concurrency", type=int, action="append", help="clients; repeat (default: 8 and 64)")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3, help="bare/genvault pairs per client count")
    parser.add_argument("--chat-size", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(
        run(
            dbs=args.db or list(DATABASES),
            concurrency=args.concurrency or [8, 64],
            duration=args.duration,
            chat_size=args.chat_size,
            rounds=args.rounds,
        )
    )


if __name__ == "__main__":
    main()
