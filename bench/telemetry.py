"""What OpenTelemetry costs a generation, in one process (issue 22 item 1).

    .venv/bin/python -m bench.telemetry [--n 200] [--rounds 3]

Text generations of the offline test model (unpaced, a short reply; the dedup cache off so each
calls the model) through `Vault.generate` + `wait`, on a fresh SQLite file per contender and
round, in alternating rounds: `off` (no OTLP endpoint: no `Telemetry`, the engine's listener
lists empty) and `on` (`OTEL_EXPORTER_OTLP_ENDPOINT` set: a span per generation, batched and
exported over OTLP/HTTP to a receiver in another process, whose CPU is not counted). CPU is the
process's (user + system, every thread: the exporter's batch thread too) per generation, after
20 warm-up generations; the ratio on/off is taken per round, and the medians are reported.
Writes bench/results/telemetry.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import machine, write_result
from bench._proc import free_port

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


async def _per_generation(tmp: str, n: int, on: bool, endpoint: str) -> float:
    from genvault import Settings, Vault

    if on:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    else:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    settings = Settings(data_dir=Path(tmp), test_model_tps=0, cache_ttl_seconds=0)
    async with Vault(settings) as vault:
        assert (vault.telemetry is not None) == on
        for i in range(20):
            await vault.wait((await vault.generate(f"warm-up {i}")).id)
        cpu = time.process_time()
        for i in range(n):
            await vault.wait((await vault.generate(f"question {i}: how are you?")).id)
        return (time.process_time() - cpu) / n


def _start_receiver(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])


async def main(n: int, rounds: int) -> dict[str, Any]:
    port = free_port()
    receiver = _start_receiver(port)
    endpoint = f"http://127.0.0.1:{port}"
    samples: dict[str, list[float]] = {"off": [], "on": []}
    ratios: list[float] = []
    try:
        for r in range(rounds):
            got = {}
            for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
                with tempfile.TemporaryDirectory() as tmp:
                    got[name] = await _per_generation(tmp, n, name == "on", endpoint)
                samples[name].append(got[name])
                print(f"round {r + 1} {name:3}: CPU {got[name] * 1e6:8.0f} µs/generation")
            ratios.append(got["on"] / got["off"])
    finally:
        receiver.kill()
        receiver.wait()
    result = {
        "n": n,
        "rounds": rounds,
        "cpu_us_per_generation": {k: statistics.median(v) * 1e6 for k, v in samples.items()},
        "samples_us": {k: [s * 1e6 for s in v] for k, v in samples.items()},
        "ratio_on_off": statistics.median(ratios),
        "ratios": ratios,
        "machine": await machine(),
    }
    print(f"median on/off: ×{result['ratio_on_off']:.3f}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    write_result("telemetry", asyncio.run(main(args.n, args.rounds)))
