"""The HTTP load generator, run as its own process: `concurrency` asyncio workers with httpx
keep-alive connections, for `duration` seconds. Prints one JSON object on stdout.

    python -m bench._load --url http://127.0.0.1:P --kind messages --chat CHAT --concurrency 8 --duration 8
    python -m bench._load --url http://127.0.0.1:P --kind chat --concurrency 8 --duration 8 --server-pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
import uuid
from typing import Any

import httpx

from bench._proc import cpu_seconds


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
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
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
        cpu_start = cpu_seconds(args.server_pid) if args.server_pid else None
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + args.duration) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(args.server_pid) - cpu_start if cpu_start is not None else None
    return {
        "requests": len(latencies),
        "errors": errors,
        "error_kinds": dict(kinds),
        "elapsed_s": elapsed,
        "latencies_s": latencies,
        # The server's user + system CPU over the measured window (not the warm-up).
        "server_cpu_s": cpu,
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
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
