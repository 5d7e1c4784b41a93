"""Benchmark: what the `/v1` gateway adds in front of an upstream, against calling that upstream
directly and against LiteLLM's proxy in front of the same upstream, in one run.

    .venv/bin/python -m bench.gateway [--clients 1 --clients 8 --clients 64] [--duration 5] [--rounds 3]
                                      [--chunks 50] [--litellm /tmp/llvenv/bin/litellm]

Processes: the fake upstream (`bench.fake_upstream`, OpenAI wire format, `--chunks` words per
answer), `genvault serve` (SQLite, every call a record: pending row, checkpoints, final row) with
`openai/fake` routed to it, LiteLLM's proxy (one worker) when `--litellm` names its executable, and
the load generator (`bench._rawload`, raw keep-alive HTTP/1.1, each body different so no cache
answers). Per contender and client count: non-streamed latency p50/p99 and requests/s, the
added p50/p99 over the direct call in the same round, server CPU per request (from /proc), RSS;
then streamed calls: server CPU per streamed chunk. Each round runs every contender back to back;
the report takes the median over rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import percentile, write_result
from bench._proc import PYTHONPATH, ROOT, cpu_seconds, free_port, wait_healthy

MODEL = "fake-model"
# LiteLLM's proxy refuses to start without a strong master key; every contender is sent it.
KEY = "sk-" + "6b1f" * 16


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def _process(
    command: list[str], env: dict[str, str], base: str, health: str = "/healthz"
) -> Iterator[subprocess.Popen[bytes]]:
    log = tempfile.NamedTemporaryFile(prefix="bench-gateway-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_healthy(base, proc, timeout=120) if health == "/healthz" else _wait(base + health, proc)
        except RuntimeError:
            raise RuntimeError(f"{command[:3]} did not start; log: {log.name}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _load(base: str, model: str, clients: int, duration: float, *, stream: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench._rawload", "--url", base, "--model", model]
    command += ["--concurrency", str(clients), "--duration", str(duration), "--key", KEY]
    if stream:
        command.append("--stream")
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, env=_env())
    return dict(json.loads(out.stdout))


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GENVAULT_", "OPENAI_"))}
    return {**base, "PYTHONPATH": PYTHONPATH, **extra}


def _measure(base: str, model: str, pid: int, clients: int, duration: float, stream: bool) -> dict[str, Any]:
    cpu_before = cpu_seconds(pid)
    result = _load(base, model, clients, duration, stream=stream)
    cpu = cpu_seconds(pid) - cpu_before
    latencies = result.pop("latencies_s")
    n = len(latencies)
    return {
        "requests": n,
        "errors": result["errors"],
        "rps": n / result["elapsed_s"],
        "p50_ms": percentile(latencies, 50) * 1000 if n else None,
        "p99_ms": percentile(latencies, 99) * 1000 if n else None,
        "cpu_s": cpu,
        "rss_mb": _rss_mb(pid),
    }


def _litellm_config(upstream: str, directory: Path) -> Path:
    config = directory / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-upstream\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )
    return config


def run(
    *, clients: list[int], duration: float, rounds: int, chunks: int, litellm: str | None, out_dir: Path | None = None
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="genvault-bench-gateway-") as tmp:
        up_port, gv_port, ll_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        genvault = f"http://127.0.0.1:{gv_port}"
        proxy = f"http://127.0.0.1:{ll_port}"
        up_cmd = [sys.executable, "-m", "bench.fake_upstream", "--port", str(up_port), "--chunks", str(chunks)]
        gv_env = _env(
            GENVAULT_DATA_DIR=tmp,
            GENVAULT_OPENAI_BASE_URL=f"{upstream}/v1",
            OPENAI_API_KEY="sk-upstream",
            GENVAULT_TEST_MODEL_TPS="0",
        )
        gv_cmd = [sys.executable, "-m", "genvault", "serve", "--port", str(gv_port)]
        with contextlib.ExitStack() as stack:
            up = stack.enter_context(_process(up_cmd, _env(), upstream))
            gv = stack.enter_context(_process(gv_cmd, gv_env, genvault))
            contenders: list[tuple[str, str, str, int]] = [
                ("direct", upstream, MODEL, up.pid),
                ("genvault", genvault, f"openai/{MODEL}", gv.pid),
            ]
            if litellm:
                ll_env = _env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", LITELLM_MASTER_KEY=KEY)
                ll_cmd = [litellm, "--config", str(_litellm_config(upstream, Path(tmp))), "--port", str(ll_port)]
                ll_cmd += ["--num_workers", "1"]
                ll = stack.enter_context(_process(ll_cmd, ll_env, proxy, health="/health/liveliness"))
                contenders.append(("litellm", proxy, MODEL, ll.pid))
            for round_no in range(rounds):
                for count in clients:
                    for name, base, model, pid in contenders:
                        row = _measure(base, model, pid, count, duration, stream=False)
                        rows.append({"round": round_no, "contender": name, "clients": count, "stream": False, **row})
                        print(json.dumps(rows[-1]), file=sys.stderr)
                for name, base, model, pid in contenders:
                    row = _measure(base, model, pid, 8, duration, stream=True)
                    rows.append({"round": round_no, "contender": name, "clients": 8, "stream": True, **row})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    data = {"parameters": {"clients": clients, "duration": duration, "rounds": rounds, "chunks": chunks}}
    data["rounds"] = rows
    data["summary"] = summarize(rows, clients, chunks)
    write_result("gateway", data, out_dir)
    return data


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(rows: list[dict[str, Any]], clients: list[int], chunks: int) -> list[dict[str, Any]]:
    """Per contender and client count, medians over rounds; the added latency is taken against
    the direct call of the same round, then the median of those differences."""
    out = []
    by = {(r["round"], r["contender"], r["clients"], r["stream"]): r for r in rows}
    contenders = sorted({r["contender"] for r in rows}, key=["direct", "genvault", "litellm"].index)
    rounds = sorted({r["round"] for r in rows})
    for stream, counts in ((False, clients), (True, [8])):
        for count in counts:
            for name in contenders:
                mine = [by[(i, name, count, stream)] for i in rounds if (i, name, count, stream) in by]
                direct = [by.get((i, "direct", count, stream)) for i in rounds]
                added50 = [
                    m["p50_ms"] - d["p50_ms"]
                    for m, d in zip(mine, direct, strict=False)
                    if d and m["p50_ms"] is not None
                ]
                added99 = [
                    m["p99_ms"] - d["p99_ms"]
                    for m, d in zip(mine, direct, strict=False)
                    if d and m["p99_ms"] is not None
                ]
                cpu_per_request = [m["cpu_s"] / m["requests"] * 1e6 for m in mine if m["requests"]]
                row = {
                    "contender": name,
                    "clients": count,
                    "stream": stream,
                    "rps": _median([m["rps"] for m in mine]),
                    "p50_ms": _median([m["p50_ms"] for m in mine]),
                    "p99_ms": _median([m["p99_ms"] for m in mine]),
                    "added_p50_ms": _median(list(added50)) if name != "direct" else None,
                    "added_p99_ms": _median(list(added99)) if name != "direct" else None,
                    "cpu_us_per_request": _median(list(cpu_per_request)),
                    "rss_mb": _median([m["rss_mb"] for m in mine]),
                    "errors": sum(m["errors"] for m in mine),
                }
                if stream:
                    row["cpu_us_per_chunk"] = (
                        None if row["cpu_us_per_request"] is None else row["cpu_us_per_request"] / chunks
                    )
                out.append(row)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    def f(value: float | None, digits: int = 2) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        "| call | clients | contender | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| server CPU µs/req | µs/chunk | RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary:
        lines.append(
            f"| {'stream' if r['stream'] else 'non-stream'} | {r['clients']} | {r['contender']} | {f(r['rps'], 0)} | "
            f"{f(r['p50_ms'])} | {f(r['p99_ms'])} | {f(r['added_p50_ms'])} | {f(r['added_p99_ms'])} | "
            f"{f(r['cpu_us_per_request'], 0)} | {f(r.get('cpu_us_per_chunk'), 1)} | {f(r['rss_mb'], 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, action="append")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--litellm", default=None, help="the litellm executable (a separate venv)")
    args = parser.parse_args()
    data = run(
        clients=args.clients or [1, 8, 64],
        duration=args.duration,
        rounds=args.rounds,
        chunks=args.chunks,
        litellm=args.litellm,
    )
    print(table(data["summary"]))


if __name__ == "__main__":
    main()
