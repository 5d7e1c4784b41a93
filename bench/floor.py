"""What a durable chat turn costs at the least: the bare relay, the bare relay with hand-written
durable records (`bench._server --mode raw`), and genvault, loaded alike in the same rounds
(issue 16's targets are ratios to the bare relay; this says how much of the distance any server
that keeps its records pays on this machine).

    .venv/bin/python -m bench.floor [--db sqlite --db postgres] [--rounds 6] [--duration 3] [--clients 8]

Servers (`bench._server`, one uvicorn worker, access log on, the offline model replying 20 tokens
at full speed), each with a database but the bare relay on a fresh one of its own:

- `bare`: the bare relay (no records);
- `raw-one`: the bare relay, the request's JSON parsed, one row inserted `pending` before the
  model call and updated `complete` with the reply before `finish` is sent, each committed (on
  PostgreSQL an autocommit on an asyncpg pool, a synchronous commit; on SQLite a transaction on a
  connection of its own thread, WAL): the two durable commits alone;
- `raw-turn`: the same with the rows a chat turn stores (chat, user message and part, pending
  generation; the generation's end, reply and part, chat freed), one statement each end, in
  tables with primary keys only (no foreign keys, CHECKs, triggers, search or list indexes);
- `genvault`: `genvault serve`'s app (this tree).

Each round loads every server in turn with `bench._load` (`--clients` clients, `--duration` s; the
order rotating and alternating direction from round to round), which reads the server's CPU (and
on PostgreSQL its database's backends') from /proc over the measured window. Printed: each round, then per
server the medians of its CPU per turn, the database's CPU per turn, and its same-round ratios to
the bare relay (CPU per turn, req/s). Nothing is written to `bench/results`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile

from bench import _proc
from bench._common import DATABASES, fresh_database

COMMON = ["--tokens", "20", "--tps", "0", "--access-log"]
# name -> the server's arguments beyond COMMON (None: no database)
SERVERS: dict[str, list[str] | None] = {
    "bare": None,
    "raw-one": ["--mode", "raw", "--rows", "one"],
    "raw-turn": ["--mode", "raw", "--rows", "turn"],
    "genvault": ["--mode", "genvault"],
}


def _load(url: str, pid: int, clients: int, duration: float, database: str | None) -> dict[str, float]:
    command = [sys.executable, "-m", "bench._load", "--url", url, "--kind", "chat"]
    command += ["--concurrency", str(clients), "--duration", str(duration), "--server-pid", str(pid)]
    if database is not None:
        command += ["--database-url", database]
    env = {"PYTHONPATH": _proc.PYTHONPATH, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(command, cwd=_proc.ROOT, check=True, capture_output=True, text=True, env=env).stdout
    got = json.loads(out)
    turns = got["requests"]
    db = got.get("database_cpu_s")
    return {
        "cpu_ms": 1000 * got["server_cpu_s"] / turns,
        "rps": turns / got["elapsed_s"],
        "errors": got["errors"],
        "db_ms": 1000 * db / turns if db is not None else 0.0,
    }


async def run(args: argparse.Namespace, db: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="genvault-floor-"))
        servers: dict[str, tuple[str, int, str | None]] = {}
        for name, mode in SERVERS.items():
            database = None
            argv = ["bench._server", "--mode", "bare", *COMMON]
            if mode is not None:
                url = await stack.enter_async_context(fresh_database(db))
                argv = ["bench._server", *mode, "--db", url, "--data-dir", f"{tmp}/{name}", *COMMON]
                database = url if db == "postgres" else None  # whose backends' CPU to read
            base, proc = stack.enter_context(_proc.server(argv, quiet=True))
            servers[name] = (base, proc.pid, database)
        names = list(servers)
        for url, pid, _ in servers.values():  # warm-up
            await asyncio.to_thread(_load, url, pid, args.clients, 1.0, None)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order if round_ % 2 == 0 else order[::-1]:
                url, pid, database = servers[name]
                results[name].append(await asyncio.to_thread(_load, url, pid, args.clients, args.duration, database))
            bare = results["bare"][-1]
            print(
                f"{db} round {round_}: "
                + "  ".join(
                    f"{n} {r['cpu_ms']:.2f} ms ×{r['cpu_ms'] / bare['cpu_ms']:.2f} {r['rps']:.0f}/s "
                    f"(×{r['rps'] / bare['rps']:.2f}) db {r['db_ms']:.2f} ms errors {r['errors']:.0f}"
                    for n in names
                    if (r := results[n][-1])
                ),
                flush=True,
            )
        rounds = range(args.rounds)
        for name in names:
            mine, bare_rounds = results[name], results["bare"]
            cpu = statistics.median(r["cpu_ms"] for r in mine)
            db_ms = statistics.median(r["db_ms"] for r in mine)
            to_bare = statistics.median(mine[i]["cpu_ms"] / bare_rounds[i]["cpu_ms"] for i in rounds)
            rps = statistics.median(mine[i]["rps"] / bare_rounds[i]["rps"] for i in rounds)
            print(
                f"{db} {name:9s} CPU/turn {cpu:.2f} ms ×{to_bare:.2f} of bare; req/s "
                f"{statistics.median(r['rps'] for r in mine):.0f} ×{rps:.2f} of bare; "
                f"database CPU/turn {db_ms:.2f} ms; "
                f"errors {sum(r['errors'] for r in mine):.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="default: both")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    for db in args.db or DATABASES:
        asyncio.run(run(args, db))


if __name__ == "__main__":
    main()
