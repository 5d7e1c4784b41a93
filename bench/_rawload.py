"""A raw HTTP/1.1 keep-alive load generator for `bench.gateway`, run as its own process: asyncio
streams, no HTTP library (httpx saturates a core long before the servers under test do).

`concurrency` connections each POST one JSON body after another for `duration` seconds (after a
`warmup`), reading each response whole (Content-Length or chunked). Every body differs (a counter
in the prompt, with a nonce of the process's own, so not even a later run repeats one), so no
server can answer from a cache. Prints one JSON object on stdout:
requests, errors, elapsed seconds and every latency.

    python -m bench._rawload --url http://127.0.0.1:P --path /v1/chat/completions --model openai/fake \
        --concurrency 8 --duration 5 [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

_counter = itertools.count()
# Per process: every load run is a process of its own, and a counter alone repeats the same
# prompts in the next run, which genvault's dedup cache then answers as copies.
_RUN = secrets.token_hex(6)


def _body(args: argparse.Namespace) -> bytes:
    prompt = f"Say something ({_RUN}-{next(_counter)})"
    body: dict[str, Any] = {"model": args.model, "messages": [{"role": "user", "content": prompt}]}
    if args.path == "/v1/messages":
        body["max_tokens"] = 256
    if args.stream:
        body["stream"] = True
    return json.dumps(body).encode()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    raise RuntimeError("response with neither Content-Length nor chunked encoding")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    latencies: list[float] = []
    errors = 0
    extra = "".join(f"{h}\r\n" for h in args.header)

    async def worker(deadline: float, record: bool) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                body = _body(args)
                request = (
                    f"POST {args.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {args.key}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                start = time.perf_counter()
                writer.write(request)
                status, _payload = await _read_response(reader)
                if status != 200:
                    errors += 1
                    continue
                if record:
                    latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    await asyncio.gather(*(worker(time.perf_counter() + args.warmup, False) for _ in range(args.concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(worker(start + args.duration, True) for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "errors": errors, "elapsed_s": elapsed, "latencies_s": latencies}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--model", required=True)
    parser.add_argument("--key", default="unused")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--stream", action="store_true")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
