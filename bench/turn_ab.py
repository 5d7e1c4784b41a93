"""A chat turn's server CPU, this tree against another (a base) and the bare relay, in the same
rounds: the before/after measure for a change worth ~10 %, which same-run medians of
`bench.http` do not resolve on a loaded machine (the bare relay's own CPU per turn moves by a
third between its rounds).

    .venv/bin/python -m bench.turn_ab --base /tmp/base-copy [--db postgres] [--rounds 8]
                                      [--duration 3] [--clients 8] [--other NAME=PATH ...]

`--base` is an exported tree (`git archive main | tar -x -C /tmp/base-copy`). Each server is
`bench._server` (one uvicorn worker, access log on, the offline model replying 20 tokens at full
speed) with its tree's own `src` first on `PYTHONPATH` (so the venv's editable install does not
supply this tree's genvault to the base), on a fresh database of its own. Each round loads every
server in turn with `bench._load` (`--clients` clients for `--duration` s), the order rotating from
round to round; CPU per turn is the server's from /proc over the measured window (on PostgreSQL
also the database's: the backends serving the tree's database, `bench._load --database-url`).
Printed: each round, then per tree the median of its same-round ratios to the bare relay and to
the base.
Nothing is written to `bench/results`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _proc
from bench._common import DATABASES, fresh_database

HERE = _proc.ROOT
# One load's figures: CPU ms per turn, turns/s, errors, the database's CPU ms per turn, counters per turn.
Result = tuple[float, float, int, float | None, dict[str, float]]


def _load(base_url: str, pid: int, clients: int, duration: float, database: str | None = None) -> Result:
    """CPU ms per turn, turns/s, errors, the database's backends' CPU ms per turn (given
    `database`, a PostgreSQL URL), and the server's counters per turn (`_proc.counters`: user
    and system ms, minor faults, context switches)."""
    command = [sys.executable, "-m", "bench._load", "--url", base_url, "--kind", "chat"]
    command += ["--concurrency", str(clients), "--duration", str(duration), "--server-pid", str(pid)]
    if database is not None:
        command += ["--database-url", database]
    env = {"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(command, cwd=HERE, check=True, capture_output=True, text=True, env=env).stdout
    got = json.loads(out)
    turns = got["requests"]
    db_ms = 1000 * got["database_cpu_s"] / turns if got.get("database_cpu_s") is not None else None
    per_turn = {name: value / turns for name, value in got["server_counters"].items()}
    return 1000 * got["server_cpu_s"] / turns, turns / got["elapsed_s"], got["errors"], db_ms, per_turn


async def run(args: argparse.Namespace, trees: dict[str, Path]) -> None:
    common = ["--tokens", "20", "--tps", "0", "--access-log"]
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="genvault-turn-ab-"))
        servers: dict[str, tuple[str, int]] = {}
        databases: dict[str, str] = {}  # PostgreSQL: each tree's, for its backends' CPU
        for name, root in trees.items():
            url = await stack.enter_async_context(fresh_database(args.db))
            if args.db == "postgres":
                databases[name] = url
            os.makedirs(f"{tmp}/{name}")
            _proc.ROOT = root  # the server runs from its own tree
            try:
                argv = ["bench._server", "--mode", "genvault", "--db", url, "--data-dir", f"{tmp}/{name}", *common]
                base_url, proc = stack.enter_context(
                    _proc.server(argv, env={"PYTHONPATH": f"{root}/src:{root}"}, quiet=True)
                )
            finally:
                _proc.ROOT = HERE
            servers[name] = (base_url, proc.pid)
        base_url, proc = stack.enter_context(_proc.server(["bench._server", "--mode", "bare", *common], quiet=True))
        servers = {"bare": (base_url, proc.pid), **servers}
        names = list(servers)
        for url, pid in servers.values():  # warm-up
            await asyncio.to_thread(_load, url, pid, args.clients, 1.0)
        results: dict[str, list[Result]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order if round_ % 2 == 0 else order[::-1]:
                url, pid = servers[name]
                database = databases.get(name)
                results[name].append(await asyncio.to_thread(_load, url, pid, args.clients, args.duration, database))
            bare = results["bare"][-1][0]
            print(
                f"round {round_}: "
                + "  ".join(
                    f"{n} {results[n][-1][0]:.2f} ms ×{results[n][-1][0] / bare:.2f} "
                    f"{results[n][-1][1]:.0f}/s errors {results[n][-1][2]}"
                    + (f" db {db:.2f} ms" if (db := results[n][-1][3]) is not None else "")
                    for n in names
                ),
                flush=True,
            )
        rounds = range(args.rounds)
        for name in names:
            # What the CPU per turn is made of (medians of the rounds): the system part, page
            # faults and preemptions are where time exceeds what instruction counts show.
            split = {key: statistics.median(r[4][key] for r in results[name]) for key in results[name][0][4]}
            print(
                f"{args.db} {name} per turn: user {1000 * split['user_s']:.2f} ms, system "
                f"{1000 * split['system_s']:.2f} ms, minor faults {split['minor_faults']:.2f}, context switches "
                f"{split['voluntary_switches']:.2f} voluntary, {split['involuntary_switches']:.2f} involuntary, "
                f"syscalls {split['read_syscalls']:.1f} read, {split['write_syscalls']:.1f} write"
            )
        for name in names[1:]:
            to_bare = statistics.median(results[name][i][0] / results["bare"][i][0] for i in rounds)
            to_base = statistics.median(results[name][i][0] / results["base"][i][0] for i in rounds)
            lower = sum(results[name][i][0] < results["base"][i][0] for i in rounds)
            rps = statistics.median(results[name][i][1] / results["bare"][i][1] for i in rounds)
            database = ""
            if args.db == "postgres":
                db_ms, base_db_ms = [r[3] or 0.0 for r in results[name]], [r[3] or 0.0 for r in results["base"]]
                db_to_base = statistics.median(db_ms[i] / base_db_ms[i] for i in rounds)
                db_lower = sum(db_ms[i] < base_db_ms[i] for i in rounds)
                database = (
                    f"; database CPU/turn median {statistics.median(db_ms):.2f} ms, "
                    f"×{db_to_base:.2f} of base (lower in {db_lower} of {args.rounds} rounds)"
                )
            print(
                f"{args.db} {name}: CPU/turn median {statistics.median(r[0] for r in results[name]):.2f} ms, "
                f"×{to_bare:.2f} of bare, ×{to_base:.2f} of base (lower in {lower} of {args.rounds} rounds), "
                f"req/s ×{rps:.2f} of bare{database}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="an exported tree to compare with")
    parser.add_argument("--db", choices=DATABASES, default="postgres")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--other", action="append", help="NAME=PATH: another tree, measured alike")
    args = parser.parse_args()
    trees = {"base": Path(args.base).resolve(), "branch": HERE}
    for other in args.other or []:
        name, _, path = other.partition("=")
        trees[name] = Path(path).resolve()
    asyncio.run(run(args, trees))


if __name__ == "__main__":
    main()
