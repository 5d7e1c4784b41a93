"""What every benchmark shares: a fresh database per run, statistics, the result files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RESULTS = Path(__file__).with_name("results")
PG_HOST = os.environ.get("GENVAULT_BENCH_PG", "postgres@127.0.0.1:5432")
DATABASES = ("sqlite", "postgres")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


async def create_pg_database(name: str) -> str:
    """Create the PostgreSQL database `name` on the bench's server; its URL."""
    import asyncpg

    admin = await asyncpg.connect(f"postgresql://{PG_HOST}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql://{PG_HOST}/{name}"


@contextlib.asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[str]:
    """The URL of an empty database made for this run, dropped (or deleted) at the end."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database {kind!r}: sqlite or postgres")
    import asyncpg

    name = f"genvault_bench_{uuid.uuid4().hex[:12]}"
    url = await create_pg_database(name)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(f"postgresql://{PG_HOST}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "median": statistics.median(samples),
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "max": max(samples),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


async def _postgres_version() -> str | None:
    with contextlib.suppress(Exception):
        import asyncpg

        conn = await asyncpg.connect(f"postgresql://{PG_HOST}/postgres", timeout=2)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    return None


LOOPS = ("uvloop", "asyncio")


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Run a benchmark on `loop`: uvloop (the default: `genvault serve` runs on it, through
    uvicorn) or asyncio's own loop, for what a library user on the standard loop gets. Every
    contender of a run shares the loop."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    if loop != "asyncio":
        raise ValueError(f"unknown event loop {loop!r}: uvloop or asyncio")
    return asyncio.run(main)


def event_loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def machine() -> dict[str, Any]:
    pg = await _postgres_version()
    return {
        "event_loop": event_loop_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": pg,
    }


def write_result(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    """`bench/results/<name>.json` with the run's parameters, machine and time."""
    target = (out_dir or RESULTS) / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    target.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return target


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t: ...` then `t[0]` is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)
