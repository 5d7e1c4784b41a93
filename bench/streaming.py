"""Benchmark 3, streaming persistence overhead, and the crash-loss window.

    .venv/bin/python -m bench.streaming [--db sqlite --db postgres] [--tps 1000 --tps 20000]
                                        [--tokens 2000] [--repeats 5] [--kills 5] [--checkpoint-ms 250]

A 2,000-token reply of the offline test model, paced at 1,000 and 20,000 tokens/s, relayed to an
SSE client: by genvault (`POST /api/chat`: records, hub, checkpoints, final message) and by a
bare relay of the same stream (`bench._server --mode bare`), each a one-worker uvicorn process.
Reported: wall time from request to `[DONE]` (median of the repeats, run alternately), the
added wall time, and server CPU per token (the server process's user+system CPU over the
requests / tokens streamed).

Crash loss: a genvault server streaming at 1,000 tokens/s is killed with SIGKILL at a random
moment; the window is the kill time minus the generation's last `checkpoint_at`, and the loss is
the text the client had received beyond the checkpointed text. Target: window <= checkpoint_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._common import DATABASES, fresh_database, machine, new_id, summarize, write_result
from bench._proc import ROOT, cpu_seconds, server


def _body() -> dict[str, Any]:
    # A new question every time: an identical one would be answered by the dedup cache (no model
    # call at all), which is not what this benchmark measures.
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


async def stream_once(client: httpx.AsyncClient, base: str, *, stop_after: float | None = None) -> dict[str, Any]:
    """POST a chat turn and read its SSE stream to `[DONE]` (or for `stop_after` seconds of text:
    counted from the first text delta, so a slow turn start on a loaded machine does not end the
    read before anything streamed)."""
    received: list[str] = []
    start = first_text = time.perf_counter()
    generation_id = None
    done = False
    async with client.stream("POST", f"{base}/api/chat", json=_body()) as response:
        response.raise_for_status()
        generation_id = response.headers.get("x-genvault-generation-id")
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[len("data: ") :]
            if payload == "[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            if chunk["type"] == "text-delta":
                if not received:
                    first_text = time.perf_counter()
                received.append(chunk["delta"])
            if stop_after is not None and received and time.perf_counter() - first_text >= stop_after:
                break
    return {
        "wall_s": time.perf_counter() - start,
        "text": "".join(received),
        "deltas": len(received),
        "done": done,
        "generation_id": generation_id,
    }


async def overhead(
    *,
    dbs: list[str],
    tps_list: list[float],
    tokens: int,
    repeats: int,
    checkpoint_ms: int,
    baseline: Path | None = None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for tps in tps_list:
        common = ["--tps", str(tps), "--tokens", str(tokens)]
        modes: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            async with contextlib.AsyncExitStack() as databases:
                urls = {db: await databases.enter_async_context(fresh_database(db)) for db in dbs}
                servers: list[tuple[str, list[str], dict[str, str] | None]] = [
                    ("bare", ["bench._server", "--mode", "bare", *common], None)
                ]
                # `--baseline`: the same server run from another checkout's `src` as well, so a
                # before/after comparison is side by side in one run.
                variants: list[tuple[str, dict[str, str] | None]] = [("genvault", None)]
                if baseline is not None:
                    pythonpath = f"{baseline / 'src'}{os.pathsep}{ROOT}"
                    variants.insert(0, ("before", {"PYTHONPATH": pythonpath}))
                    # The bare relay shares the SSE framing, so it has a "before" too.
                    servers.append(("before/bare", ["bench._server", "--mode", "bare", *common], variants[0][1]))
                for (label, env), db in ((v, db) for v in variants for db in dbs):
                    servers.append(
                        (
                            f"{label}/{db}",
                            [
                                "bench._server",
                                "--mode",
                                "genvault",
                                "--db",
                                urls[db],
                                "--data-dir",
                                f"{tmp}/{label}-{db}",
                                "--checkpoint-ms",
                                str(checkpoint_ms),
                                *common,
                            ],
                            env,
                        )
                    )
                with contextlib.ExitStack() as processes:
                    running = {name: processes.enter_context(server(args, env)) for name, args, env in servers}
                    async with httpx.AsyncClient(timeout=120) as client:
                        for name, (base, _proc) in running.items():  # warm-up
                            await stream_once(client, base)
                            modes[name] = {"walls": [], "cpu": 0.0, "tokens": 0}
                        for _ in range(repeats):
                            for name, (base, proc) in running.items():
                                cpu_before = cpu_seconds(proc.pid)
                                got = await stream_once(client, base)
                                modes[name]["cpu"] += cpu_seconds(proc.pid) - cpu_before
                                if not got["done"] or got["deltas"] != tokens:
                                    raise AssertionError(f"{name}: {got['deltas']} deltas, done={got['done']}")
                                modes[name]["walls"].append(got["wall_s"])
                                modes[name]["tokens"] += got["deltas"]
        for name, m in modes.items():
            # A `before/…` server is compared with the bare relay of the same checkout.
            bare = modes["before/bare" if name.startswith("before/") else "bare"]
            bare_wall = statistics.median(bare["walls"])
            bare_cpu = bare["cpu"] / bare["tokens"]
            wall = statistics.median(m["walls"])
            cpu_per_token = m["cpu"] / m["tokens"]
            row = {
                "tps": tps,
                "tokens": tokens,
                "server": name,
                "wall_s": summarize(m["walls"]),
                "added_wall_pct": (wall / bare_wall - 1) * 100,
                "cpu_per_token_us": cpu_per_token * 1e6,
                "added_cpu_per_token_us": (cpu_per_token - bare_cpu) * 1e6,
            }
            results.append(row)
            print(
                f"{tps:>7.0f} tok/s {name:18} wall {wall:6.3f} s ({row['added_wall_pct']:+5.1f} %)  "
                f"CPU/token {row['cpu_per_token_us']:6.1f} us (+{row['added_cpu_per_token_us']:.1f} over bare)"
            )
    return results


async def _checkpoint_of(url: str, generation_id: str) -> tuple[float | None, str]:
    from sqlalchemy import select

    from genvault.store import Store
    from genvault.store.schema import generations

    store = Store(url)
    try:
        async with store.read() as conn:
            row = (
                await conn.execute(
                    select(generations.c.checkpoint_at, generations.c.result_text).where(
                        generations.c.id == generation_id
                    )
                )
            ).first()
    finally:
        await store.aclose()
    if row is None or row.checkpoint_at is None:
        return None, ""
    return row.checkpoint_at.timestamp(), row.result_text or ""


async def crash_loss(
    *, dbs: list[str], tps: float, tokens: int, kills: int, checkpoint_ms: int
) -> list[dict[str, Any]]:
    results = []
    rng = random.Random(5)
    for db in dbs:
        windows: list[float] = []
        lost_tokens: list[int] = []
        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            async with fresh_database(db) as url:
                for _ in range(kills):
                    args = ["bench._server", "--mode", "genvault", "--db", url, "--data-dir", tmp]
                    args += ["--tps", str(tps), "--tokens", str(tokens), "--checkpoint-ms", str(checkpoint_ms)]
                    with server(args) as (base, proc):
                        async with httpx.AsyncClient(timeout=60) as client:
                            got = await stream_once(client, base, stop_after=rng.uniform(0.5, 1.5))
                            killed_at = time.time()
                            os.kill(proc.pid, signal.SIGKILL)
                            proc.wait()
                    checkpoint_at, saved = await _checkpoint_of(url, got["generation_id"])
                    if checkpoint_at is None:
                        raise AssertionError("no checkpoint was written before the kill")
                    # The server runs ahead of a client that lags (a loaded machine): its checkpoint may
                    # hold text the client had not read yet (nothing the client saw is lost then).
                    if not (got["text"].startswith(saved) or saved.startswith(got["text"])):
                        raise AssertionError("the checkpointed text and what the client saw diverge")
                    windows.append(killed_at - checkpoint_at)
                    lost_tokens.append(len(got["text"][len(saved) :].split()))
        row = {
            "db": db,
            "tps": tps,
            "checkpoint_ms": checkpoint_ms,
            "window_s": summarize(windows),
            "windows_s": windows,
            "lost_tokens": lost_tokens,
            "max_window_ms": max(windows) * 1000,
            "within_interval": max(windows) * 1000 <= checkpoint_ms,
        }
        results.append(row)
        print(
            f"crash {db:8}: window max {row['max_window_ms']:.0f} ms, median "
            f"{row['window_s']['median'] * 1000:.0f} ms (checkpoint {checkpoint_ms} ms); tokens lost {lost_tokens}"
        )
    return results


async def run(
    *,
    dbs: list[str],
    tps_list: list[float],
    tokens: int,
    repeats: int,
    kills: int,
    checkpoint_ms: int,
    out_dir: Path | None = None,
    baseline: Path | None = None,
) -> dict[str, Any]:
    data = {
        "params": {
            "dbs": dbs,
            "tps": tps_list,
            "tokens": tokens,
            "repeats": repeats,
            "kills": kills,
            "checkpoint_ms": checkpoint_ms,
        },
        "machine": await machine(),
        "overhead": await overhead(
            dbs=dbs,
            tps_list=tps_list,
            tokens=tokens,
            repeats=repeats,
            checkpoint_ms=checkpoint_ms,
            baseline=baseline,
        ),
        "crash": await crash_loss(dbs=dbs, tps=tps_list[0], tokens=tokens, kills=kills, checkpoint_ms=checkpoint_ms)
        if kills
        else [],
    }
    write_result("streaming", data, out_dir)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--tps", action="append", type=float, help="tokens/s (default: 1000 and 20000)")
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs per database for the crash-loss window")
    parser.add_argument("--checkpoint-ms", type=int, default=250)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout (e.g. `git archive` of the commit before a fix) whose src/ also runs, as before/<db>",
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            dbs=args.db or list(DATABASES),
            tps_list=args.tps or [1000.0, 20000.0],
            tokens=args.tokens,
            repeats=args.repeats,
            kills=args.kills,
            checkpoint_ms=args.checkpoint_ms,
            baseline=args.baseline.resolve() if args.baseline else None,
        )
    )


if __name__ == "__main__":
    main()
