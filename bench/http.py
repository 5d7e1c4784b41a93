"""Benchmark 4, HTTP: requests/s and latency of `GET /api/chats/{id}/messages?limit=50` and of
`POST /api/chat` (the offline test model at full speed, the whole SSE stream read).

    .venv/bin/python -m bench.http [--db sqlite --db postgres] [--concurrency 8] [--duration 8]
                                   [--chat-size 1000]

The server is `genvault serve` (one uvicorn worker) in a subprocess; the load generator is
`bench._load` (asyncio + httpx, keep-alive connections) in a second subprocess, so client and
server do not share a CPU-bound event loop. The chat read by the GET has `--chat-size` messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import DATABASES, fresh_database, machine, summarize, write_result
from bench._contenders import Genvault
from bench._proc import ROOT, free_port, wait_healthy


async def _seed(url: str, size: int) -> str:
    from bench.pageload import _seed_genvault

    genvault = Genvault()
    await genvault.setup(url, 1)
    try:
        await genvault.vault.ensure_user("local")
        await _seed_genvault(genvault, genvault.chat_ids[0], size)
        # `genvault serve` with auth none serves the local user: give the chat to it.
        async with genvault.vault.store.write() as conn:
            for table in ("parts", "messages", "chats"):
                column = "user_id"
                await conn.exec_driver_sql(f"UPDATE {table} SET {column} = 'local'")
            if not url.startswith("sqlite"):
                await conn.exec_driver_sql("ANALYZE")
    finally:
        await genvault.close()
    return genvault.chat_ids[0]


def _load(base: str, kind: str, chat: str, concurrency: int, duration: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench._load", "--url", base, "--kind", kind, "--chat", chat]
    command += ["--concurrency", str(concurrency), "--duration", str(duration)]
    out = subprocess.run(
        command,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return dict(json.loads(out.stdout))


async def run(
    *, dbs: list[str], concurrency: int, duration: float, chat_size: int, out_dir: Path | None = None
) -> dict[str, Any]:
    results = []
    for db in dbs:
        async with fresh_database(db) as url:
            chat = await _seed(url, chat_size)
            with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
                port = free_port()
                env = {
                    "GENVAULT_DATABASE_URL": url,
                    "GENVAULT_DATA_DIR": tmp,
                    "GENVAULT_TEST_MODEL_TPS": "0",
                    "PATH": "/usr/bin:/bin",
                }
                proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
                    [sys.executable, "-m", "genvault", "serve", "--port", str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                base = f"http://127.0.0.1:{port}"
                try:
                    wait_healthy(base, proc)
                    for kind in ("messages", "chat"):
                        got = await asyncio.to_thread(_load, base, kind, chat, concurrency, duration)
                        row = {
                            "db": db,
                            "endpoint": "GET /api/chats/{id}/messages?limit=50"
                            if kind == "messages"
                            else "POST /api/chat",
                            "concurrency": concurrency,
                            "requests_per_s": got["requests"] / got["elapsed_s"],
                            "errors": got["errors"],
                            "latency_s": summarize(got["latencies_s"]) if got["latencies_s"] else None,
                        }
                        results.append(row)
                        lat = row["latency_s"] or {"p50": 0, "p99": 0}
                        print(
                            f"{db:8} {row['endpoint']:40} {row['requests_per_s']:7.1f} req/s  "
                            f"p50 {lat['p50'] * 1000:6.1f} ms  p99 {lat['p99'] * 1000:6.1f} ms  errors {got['errors']}"
                        )
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    data = {
        "params": {"dbs": dbs, "concurrency": concurrency, "duration": duration, "chat_size": chat_size},
        "load_generator": "bench._load: asyncio + httpx in a separate process",
        "machine": await machine(),
        "results": results,
    }
    write_result("http", data, out_dir)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--chat-size", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(
        run(
            dbs=args.db or list(DATABASES),
            concurrency=args.concurrency,
            duration=args.duration,
            chat_size=args.chat_size,
        )
    )


if __name__ == "__main__":
    main()
