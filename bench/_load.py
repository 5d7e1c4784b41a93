"""The HTTP load generator, run as its own process: `concurrency` asyncio workers with httpx
keep-alive connections, for `duration` seconds. Prints one JSON object on stdout.

    python -m bench._load --url http://127.0.0.1:P --kind messages --chat CHAT --concurrency 8 --duration 8
    python -m bench._load --url http://127.0.0.1:P --kind chat --concurrency 8 --duration 8 --server-pid PID
                          [--database-url postgresql://…]

With `--database-url` (PostgreSQL), the CPU of the database server's backends serving that
database over the measured window is reported too: what a request costs PostgreSQL's own
processes, which share the machine's cores with the server and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import time
import uuid
from typing import Any

import httpx

from bench._proc import counters, cpu_seconds


async def _backends(url: str) -> tuple[Any, dict[int, float]]:
    """A connection to the database at `url`, and the CPU seconds so far of every other backend
    serving that database (from /proc: the database server runs on this machine)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    return conn, await _backend_cpu(conn)


async def _backend_cpu(conn: Any) -> dict[int, float]:
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    cpu = {}
    for row in rows:
        with contextlib.suppress(FileNotFoundError):  # ended meanwhile
            cpu[row["pid"]] = cpu_seconds(row["pid"])
    return cpu


# How long the client keeps an idle connection for reuse: well under the servers' keep-alive
# timeout. The servers (`bench._server`, as `genvault serve`) run uvicorn with its default, 5 s,
# counted from when the server has written a response; httpx's default expiry is also 5 s but
# counted from when the client has read the response, which on a loaded machine is later (0.36 s
# and more at load 20). A connection idle between the two was reused after the server had closed it: the
# request went into a closed socket and failed as `httpx.ReadError('')`, for the bare relay as
# for genvault, however long the response had taken (docs/benchmarks.md, "pgturn3", "Round 2").
# Connections only sit idle at the end of the warm-up, while the slowest worker finishes (in the
# measured window each is reused at once); one idle for longer than this is reopened instead.
# Failures at 4.64 s of client-side idle put the lag at 0.36 s or more: 2 s is over five times that.
KEEPALIVE_EXPIRY_S = 3.0


def _chat_body() -> dict[str, Any]:
    # A new question each time: an identical one would be answered by the dedup cache, not the model.
    text = f"Hi! ({uuid.uuid4().hex[:8]})"
    return {
        "id": f"chat_{uuid.uuid4().hex}",
        "trigger": "submit-message",
        "messages": [{"id": f"msg_{uuid.uuid4().hex}", "role": "user", "parts": [{"type": "text", "text": text}]}],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    kinds: collections.Counter[str] = collections.Counter()  # what the errors were
    limits = httpx.Limits(
        max_connections=args.concurrency,
        max_keepalive_connections=args.concurrency,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    async with httpx.AsyncClient(base_url=args.url, timeout=60, limits=limits) as client:

        async def one() -> None:
            if args.kind == "messages":
                response = await client.get(f"/api/chats/{args.chat}/messages", params={"limit": 50})
                response.raise_for_status()
                response.json()
                return
            async with client.stream("POST", "/api/chat", json=_chat_body()) as response:
                response.raise_for_status()
                body = b"".join([chunk async for chunk in response.aiter_bytes()])
                if not body.endswith(b"data: [DONE]\n\n"):
                    raise RuntimeError("stream ended without [DONE]")

        async def worker(deadline: float) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    await one()
                except httpx.HTTPStatusError as exc:
                    errors += 1
                    kinds[f"HTTP {exc.response.status_code}"] += 1
                    continue
                except (httpx.HTTPError, RuntimeError) as exc:
                    errors += 1
                    kinds[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker(time.perf_counter() + args.warmup) for _ in range(args.concurrency)))
        latencies.clear()
        errors = 0
        kinds.clear()
        database, db_start = await _backends(args.database_url) if args.database_url else (None, {})
        cpu_start = cpu_seconds(args.server_pid) if args.server_pid else None
        counted = counters(args.server_pid) if args.server_pid else None
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + args.duration) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(args.server_pid) - cpu_start if cpu_start is not None else None
        if counted is not None:
            counted = {name: value - counted[name] for name, value in counters(args.server_pid).items()}
        db_cpu = None
        if database is not None:
            # A backend that started in the window counts from zero (its connection's setup included).
            db_end = await _backend_cpu(database)
            db_cpu = sum(seconds - db_start.get(pid, 0.0) for pid, seconds in db_end.items())
            await database.close()
    return {
        "requests": len(latencies),
        "errors": errors,
        "error_kinds": dict(kinds),
        "elapsed_s": elapsed,
        "latencies_s": latencies,
        # The server's user + system CPU over the measured window (not the warm-up).
        "server_cpu_s": cpu,
        # The same window's split of it (user, system), its minor page faults and context
        # switches (`_proc.counters`): where CPU time goes that instruction counts do not show.
        "server_counters": counted,
        # The database's backends' user + system CPU over the same window (`--database-url`).
        "database_cpu_s": db_cpu,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=("messages", "chat"), required=True)
    parser.add_argument("--chat", default="")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--server-pid", type=int, help="report this process's CPU time over the measured window")
    parser.add_argument("--database-url", help="PostgreSQL: report its backends' CPU time over the window too")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
