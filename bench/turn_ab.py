"""A chat turn's server CPU, this tree against another (a base) and the bare relay, in the same
rounds: the before/after measure for a change worth ~10 %, which same-run medians of
`bench.http` do not resolve on a loaded machine (the bare relay's own CPU per turn moves by a
third between its rounds).

    .venv/bin/python -m bench.turn_ab --base /tmp/base-copy [--db postgres] [--rounds 8]
                                      [--duration 3] [--clients 8] [--other NAME=PATH ...]
                                      [--variant NAME:K=V[,K=V] ...] [--variant-bare]

`--base` is an exported tree (`git archive main | tar -x -C /tmp/base-copy`). Each server is
`bench._server` (one uvicorn worker, access log on, the offline model replying 20 tokens at full
speed) with its tree's own `src` first on `PYTHONPATH` (so the venv's editable install does not
supply this tree's genvault to the base), on a fresh database of its own. Each round loads every
server in turn with `bench._load` (`--clients` clients for `--duration` s), the order rotating from
round to round; CPU per turn is the server's from /proc over the measured window (on PostgreSQL
also the database's: the backends serving the tree's database, `bench._load --database-url`).
Printed: each round, then per tree the median of its same-round ratios to the bare relay and to
the base.

`--variant NAME:K=V[,K=V]` adds a server of this tree with those environment variables over the
usual ones (a process-wide setting: `BENCH_ALLOCATOR`'s variables, `MALLOC_CONF`, a `PYTHONPATH`
entry, which goes before the tree's), compared with `branch` (the same tree without them) instead
of the base; `--base` may then be left out. With `--variant-bare` each variant also gets a bare
relay of its own on the same variables, and its ×bare is to that one (an allocator changes both).
Nothing is written to `bench/results`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
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
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"bench._load against {base_url} (pid {pid}) failed: {done.stderr[-2000:]}")
    got = json.loads(done.stdout)
    turns = got["requests"]
    db_ms = 1000 * got["database_cpu_s"] / turns if got.get("database_cpu_s") is not None else None
    per_turn = {name: value / turns for name, value in got["server_counters"].items()}
    return 1000 * got["server_cpu_s"] / turns, turns / got["elapsed_s"], got["errors"], db_ms, per_turn


def _variant(spec: str) -> tuple[str, dict[str, str]]:
    """`NAME:K=V[,K=V]` → (NAME, {K: V}); a value may be empty (`LD_PRELOAD=`) or hold commas
    not followed by `K=` (`MALLOC_CONF=narenas:1,tcache:false`)."""
    name, _, pairs = spec.partition(":")
    env = dict(pair.partition("=")[::2] for pair in re.split(r",(?=[A-Za-z_]\w*=)", pairs) if pair)
    return name, env


def _env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """A server's environment over `_proc.server`'s: the tree's own import path (after a
    variant's `PYTHONPATH`), then the variant's variables."""
    path = ":".join(filter(None, (extra.get("PYTHONPATH"), f"{root}/src:{root}")))
    return {**extra, "PYTHONPATH": path}


async def run(
    args: argparse.Namespace, trees: dict[str, Path], variants: dict[str, dict[str, str]] | None = None
) -> None:
    common = ["--tokens", "20", "--tps", "0", "--access-log"]
    variants = variants or {}
    # Each genvault server: its tree and its extra variables (none but a variant's).
    plans = {name: (root, {}) for name, root in trees.items()} | {n: (HERE, e) for n, e in variants.items()}
    # The bare relay each is compared with: its variant's own with `--variant-bare`, else the one.
    bare_of = {name: f"bare:{name}" if name in variants and args.variant_bare else "bare" for name in plans}
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="genvault-turn-ab-"))
        servers: dict[str, tuple[str, int]] = {}
        databases: dict[str, str] = {}  # PostgreSQL: each tree's, for its backends' CPU
        for name, (root, extra) in plans.items():
            url = await stack.enter_async_context(fresh_database(args.db))
            if args.db == "postgres":
                databases[name] = url
            os.makedirs(f"{tmp}/{name}")
            _proc.ROOT = root  # the server runs from its own tree
            try:
                argv = ["bench._server", "--mode", "genvault", "--db", url, "--data-dir", f"{tmp}/{name}", *common]
                base_url, proc = stack.enter_context(_proc.server(argv, env=_env(root, extra), quiet=True))
            finally:
                _proc.ROOT = HERE
            servers[name] = (base_url, proc.pid)
        bares: dict[str, tuple[str, int]] = {}
        for bare in dict.fromkeys(bare_of.values()):
            extra = variants[bare.removeprefix("bare:")] if bare != "bare" else {}
            argv = ["bench._server", "--mode", "bare", *common]
            base_url, proc = stack.enter_context(_proc.server(argv, env=_env(HERE, extra), quiet=True))
            bares[bare] = (base_url, proc.pid)
        servers = {**bares, **servers}
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
            print(
                f"round {round_}: "
                + "  ".join(
                    f"{n} {results[n][-1][0]:.2f} ms ×{results[n][-1][0] / results[bare_of.get(n, n)][-1][0]:.2f} "
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
        for name in plans:
            # A variant against its own tree without it; a tree against the base.
            against = "branch" if name in variants else "base"
            if against not in results or name == against:
                against = next(n for n in plans if n != name)
            bare = bare_of[name]
            to_bare = statistics.median(results[name][i][0] / results[bare][i][0] for i in rounds)
            to_base = statistics.median(results[name][i][0] / results[against][i][0] for i in rounds)
            lower = sum(results[name][i][0] < results[against][i][0] for i in rounds)
            rps = statistics.median(results[name][i][1] / results[bare][i][1] for i in rounds)
            database = ""
            if args.db == "postgres":
                db_ms, base_db_ms = [r[3] or 0.0 for r in results[name]], [r[3] or 0.0 for r in results[against]]
                db_to_base = statistics.median(db_ms[i] / base_db_ms[i] for i in rounds)
                db_lower = sum(db_ms[i] < base_db_ms[i] for i in rounds)
                database = (
                    f"; database CPU/turn median {statistics.median(db_ms):.2f} ms, "
                    f"×{db_to_base:.2f} of {against} (lower in {db_lower} of {args.rounds} rounds)"
                )
            print(
                f"{args.db} {name}: CPU/turn median {statistics.median(r[0] for r in results[name]):.2f} ms, "
                f"×{to_bare:.2f} of {bare}, ×{to_base:.2f} of {against} (lower in {lower} of {args.rounds} rounds), "
                f"req/s ×{rps:.2f} of {bare}{database}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="an exported tree to compare with (needed unless --variant)")
    parser.add_argument("--db", choices=DATABASES, default="postgres")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--other", action="append", help="NAME=PATH: another tree, measured alike")
    parser.add_argument(
        "--variant", action="append", help="NAME:K=V[,K=V]: this tree with those environment variables, measured alike"
    )
    parser.add_argument("--variant-bare", action="store_true", help="a bare relay of its own for each variant")
    args = parser.parse_args()
    if args.base is None and not args.variant:
        parser.error("--base is needed unless --variant")
    trees = {"base": Path(args.base).resolve()} if args.base else {}
    trees["branch"] = HERE
    for other in args.other or []:
        name, _, path = other.partition("=")
        trees[name] = Path(path).resolve()
    variants = dict(_variant(spec) for spec in args.variant or [])
    asyncio.run(run(args, trees, variants))


if __name__ == "__main__":
    main()
