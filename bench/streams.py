"""Benchmark 6, many slow streams at once (issue 15).

    .venv/bin/python -m bench.streams [--n 100 --n 300 --n 500 --n 1000] [--db sqlite --db postgres]
                                      [--tokens 200] [--tps 20] [--starts-per-s 100] [--settle 30]
                                      [--rounds 1]

A client in its own process (`python -m bench.streams --client ...`) holds N concurrent
`POST /api/chat` streams, each a `--tokens`-token reply of the offline test model at `--tps`
tokens/s, starts staggered at `--starts-per-s`. Against, in the same run and one at a time (a
fresh one-worker uvicorn process for each N): the bare relay of the same stream
(`bench._server --mode bare`), genvault on SQLite, genvault on PostgreSQL.

Reported per (N, server): completed streams (every delta and `[DONE]`), errors (by HTTP status,
or cut short), time to first token p50/p99, inter-token gap p50/p99/max (over every pair of
consecutive deltas of every stream), server CPU per token (the server's user+system CPU over the
run / deltas received), server RSS at start, peak (sampled every 0.2 s) and `--settle` seconds
after the run, and for genvault the records: complete, interrupted (a live generation swept: must
be 0), other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._common import DATABASES, fresh_database, machine, new_id, percentile, write_result
from bench._proc import ALLOCATOR, ROOT, cpu_seconds, server

SERVERS = ("bare", *DATABASES)


def _body() -> dict[str, Any]:
    return {
        "id": new_id("chat"),
        "trigger": "submit-message",
        "messages": [
            {
                "id": new_id("msg"),
                "role": "user",
                "parts": [{"type": "text", "text": f"Tell me a story ({new_id('n')})."}],
            }
        ],
    }


# -- the client (its own process) ---------------------------------------------------------------


async def _one(
    client: httpx.AsyncClient, url: str, tokens: int, gaps: list[float], stamps: list[float]
) -> dict[str, Any]:
    start = time.perf_counter()
    first: float | None = None
    first_wall = 0.0
    last: float | None = None
    deltas = 0
    done = False
    try:
        async with client.stream("POST", f"{url}/api/chat", json=_body()) as response:
            if response.status_code != 200:
                await response.aread()
                return {"error": str(response.status_code)}
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                if '"text-delta"' in line:
                    wall = time.time()
                    stamps.append(wall)
                    now = time.perf_counter()
                    if first is None:
                        first, first_wall = now, wall
                    else:
                        assert last is not None
                        gaps.append(now - last)
                    last = now
                    deltas += 1
    except httpx.HTTPError as exc:
        return {"error": type(exc).__name__}
    if not done or deltas != tokens:
        return {"error": "cut short", "deltas": deltas}
    return {"ttft": (first or start) - start, "deltas": deltas, "first_wall": first_wall, "done_wall": time.time()}


async def client_main(url: str, n: int, tokens: int, starts_per_s: float) -> dict[str, Any]:
    gaps: list[float] = []
    stamps: list[float] = []  # wall-clock time of every delta received
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    timeout = httpx.Timeout(connect=60, read=120, write=60, pool=120)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def staggered(i: int) -> dict[str, Any]:
            await asyncio.sleep(i / starts_per_s)
            return await _one(client, url, tokens, gaps, stamps)

        started = time.perf_counter()
        results = await asyncio.gather(*(staggered(i) for i in range(n)))
        elapsed = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    errors: dict[str, int] = {}
    for r in results:
        if "error" in r:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    ttfts = [r["ttft"] for r in ok]
    # The steady window: every stream has started and none has finished. The server does nothing
    # there but stream (no turn starts, no finalizes): its CPU per token there is the relay's own.
    window = None
    if ok:
        begin, end = max(r["first_wall"] for r in ok), min(r["done_wall"] for r in ok)
        if end - begin >= 1.0 and len(ok) == n:
            window = {"begin": begin, "end": end, "deltas": sum(1 for t in stamps if begin <= t <= end)}
    return {
        "n": n,
        "completed": len(ok),
        "errors": errors,
        "deltas": sum(int(r.get("deltas", 0)) for r in results),
        "elapsed_s": elapsed,
        "ttft_s": _pcts(ttfts),
        "gap_s": {**_pcts(gaps), "max": max(gaps) if gaps else None},
        "steady": window,
    }


def _pcts(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p99": None}
    return {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}


# -- the runner ---------------------------------------------------------------------------------


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def _records(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from genvault.store import Store
    from genvault.store.schema import generations

    store = Store(url)
    try:
        await store.upgrade()
        async with store.read() as conn:
            rows = (await conn.execute(select(generations.c.status, func.count()).group_by(generations.c.status))).all()
    finally:
        await store.aclose()
    return {str(status): int(count) for status, count in rows}


async def one_run(
    name: str,
    args: list[str],
    *,
    n: int,
    tokens: int,
    starts_per_s: float,
    settle: float,
    db_url: str | None,
    start_settle: float = 3.0,
) -> dict[str, Any]:
    before_records = await _records(db_url) if db_url else {}
    with server(args) as (base, proc):  # on `genvault serve`'s allocator (bench._proc.ALLOCATOR)
        # Let start-up settle (and its garbage go back) before the baseline reading; the test
        # suite's smoke run, which reads no number, passes 0.
        await asyncio.sleep(start_settle)
        rss_start = rss_kib(proc.pid)
        peak = rss_start
        cpu_before = cpu_seconds(proc.pid)
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.streams",
            "--client",
            "--url",
            base,
            "--n",
            str(n),
            "--tokens",
            str(tokens),
            "--starts-per-s",
            str(starts_per_s),
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        out_task = asyncio.ensure_future(client.communicate())
        samples: list[tuple[float, float]] = []  # (wall time, server CPU seconds)
        while not out_task.done():
            peak = max(peak, rss_kib(proc.pid))
            samples.append((time.time(), cpu_seconds(proc.pid)))
            await asyncio.wait({out_task}, timeout=0.2)
        stdout, _ = out_task.result()
        cpu = cpu_seconds(proc.pid) - cpu_before
        result = json.loads(stdout)
        await asyncio.sleep(settle)
        rss_after = rss_kib(proc.pid)
    records: dict[str, int] = {}
    if db_url:
        after = await _records(db_url)
        records = {k: after.get(k, 0) - before_records.get(k, 0) for k in after}
    steady = result.get("steady")
    steady_cpu = None
    if steady and steady["deltas"]:
        used = _cpu_at(samples, steady["end"]) - _cpu_at(samples, steady["begin"])
        steady_cpu = used / steady["deltas"] * 1e6
    row = {
        "server": name,
        **result,
        "cpu_per_token_us": cpu / result["deltas"] * 1e6 if result["deltas"] else None,
        "steady_cpu_per_token_us": steady_cpu,
        "rss_start_mib": rss_start / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_after_mib": rss_after / 1024,
        "settle_s": settle,
        "records": records,
    }
    gap = row["gap_s"]
    print(
        f"N={n:5} {name:9} completed {row['completed']:5}  errors {sum(row['errors'].values()):4}  "
        f"TTFT p50/p99 {_ms(row['ttft_s']['p50'])}/{_ms(row['ttft_s']['p99'])}  "
        f"gap p50/p99/max {_ms(gap['p50'])}/{_ms(gap['p99'])}/{_ms(gap['max'])}  "
        f"CPU/token {row['cpu_per_token_us'] or 0:6.1f} us (steady {row['steady_cpu_per_token_us'] or 0:5.1f})  "
        f"RSS {row['rss_start_mib']:.0f}/{row['rss_peak_mib']:.0f}/"
        f"{row['rss_after_mib']:.0f} MiB  records {records}",
        flush=True,
    )
    return row


def _cpu_at(samples: list[tuple[float, float]], when: float) -> float:
    """The server's CPU seconds at wall time `when`, interpolated between the samples."""
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if t0 <= when <= t1:
            return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1
    return samples[-1][1] if samples and when > samples[-1][0] else (samples[0][1] if samples else 0.0)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


async def run(
    *,
    ns: list[int],
    dbs: list[str],
    tokens: int = 200,
    tps: float = 20.0,
    starts_per_s: float = 100.0,
    settle: float = 30.0,
    rounds: int = 1,
    out_dir: Path | None = None,
    start_settle: float = 3.0,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    params = {
        "ns": ns,
        "dbs": dbs,
        "tokens": tokens,
        "tps": tps,
        "starts_per_s": starts_per_s,
        "settle_s": settle,
        "rounds": rounds,
        "allocator": ALLOCATOR,
    }
    common = ["--tps", str(tps), "--tokens", str(tokens), "--concurrent"]
    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            urls = {db: await stack.enter_async_context(fresh_database(db)) for db in dbs}
            for round_no in range(rounds):
                for n in ns:
                    for name in ("bare", *dbs):
                        if name == "bare":
                            args = ["bench._server", "--mode", "bare", *common]
                            url = None
                        else:
                            url = urls[name]
                            args = ["bench._server", "--mode", "genvault", "--db", url]
                            args += ["--data-dir", f"{tmp}/{name}", *common]
                        row = await one_run(
                            name,
                            args,
                            n=n,
                            tokens=tokens,
                            starts_per_s=starts_per_s,
                            settle=settle,
                            db_url=url,
                            start_settle=start_settle,
                        )
                        results.append({"round": round_no, **row})
                        await _write(results, params, out_dir)  # as it goes: a long run leaves what it measured
    return await _write(results, params, out_dir, final=True)


async def _write(
    results: list[dict[str, Any]], params: dict[str, Any], out_dir: Path | None, *, final: bool = False
) -> dict[str, Any]:
    data = {
        "params": params,
        "complete": final,
        "machine": await machine(),
        "results": results,
        "summary": summarize_runs(results),
    }
    write_result("streams", data, out_dir)
    return data


def summarize_runs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (N, server): medians over the rounds, and ratios to the bare relay of the same round."""
    rows = []
    for n in sorted({r["n"] for r in results}):
        bare = {r["round"]: r for r in results if r["n"] == n and r["server"] == "bare"}
        for name in dict.fromkeys(r["server"] for r in results if r["n"] == n):
            runs = [r for r in results if r["n"] == n and r["server"] == name]

            def med(get: Any, runs: list[dict[str, Any]] = runs) -> float | None:
                values = [v for v in (get(r) for r in runs) if v is not None]
                return statistics.median(values) if values else None

            def ratio(
                get: Any, runs: list[dict[str, Any]] = runs, bare: dict[int, dict[str, Any]] = bare
            ) -> float | None:
                values = []
                for r in runs:
                    b = bare.get(r["round"])
                    if b is not None and get(r) is not None and get(b):
                        values.append(get(r) / get(b))
                return statistics.median(values) if values else None

            rows.append(
                {
                    "n": n,
                    "server": name,
                    "rounds": len(runs),
                    "completed": med(lambda r: r["completed"]),
                    "errors": med(lambda r: sum(r["errors"].values())),
                    "interrupted": med(lambda r: r["records"].get("interrupted", 0)),
                    "ttft_p50_s": med(lambda r: r["ttft_s"]["p50"]),
                    "ttft_p99_s": med(lambda r: r["ttft_s"]["p99"]),
                    "gap_p50_s": med(lambda r: r["gap_s"]["p50"]),
                    "gap_p99_s": med(lambda r: r["gap_s"]["p99"]),
                    "gap_max_s": med(lambda r: r["gap_s"]["max"]),
                    "cpu_per_token_us": med(lambda r: r["cpu_per_token_us"]),
                    "rss_start_mib": med(lambda r: r["rss_start_mib"]),
                    "rss_peak_mib": med(lambda r: r["rss_peak_mib"]),
                    "rss_after_mib": med(lambda r: r["rss_after_mib"]),
                    "gap_p99_x_bare": ratio(lambda r: r["gap_s"]["p99"]),
                    "cpu_per_token_x_bare": ratio(lambda r: r["cpu_per_token_us"]),
                    "steady_cpu_per_token_us": med(lambda r: r.get("steady_cpu_per_token_us")),
                    "steady_cpu_x_bare": ratio(lambda r: r.get("steady_cpu_per_token_us")),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", action="append", type=int, help="concurrent streams (default: 100 300 500 1000)")
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--tps", type=float, default=20.0)
    parser.add_argument("--starts-per-s", type=float, default=100.0)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the run before the RSS reading")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.client:
        [n] = args.n
        print(json.dumps(asyncio.run(client_main(args.url, n, args.tokens, args.starts_per_s))))
        return
    asyncio.run(
        run(
            ns=args.n or [100, 300, 500, 1000],
            dbs=args.db or list(DATABASES),
            tokens=args.tokens,
            tps=args.tps,
            starts_per_s=args.starts_per_s,
            settle=args.settle,
            rounds=args.rounds,
        )
    )


if __name__ == "__main__":
    main()
