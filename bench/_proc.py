"""Server subprocesses for the HTTP-level benchmarks: start, wait until healthy, CPU time, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx

from genvault.allocator import Allocator, allocator_env, resolve

ROOT = Path(__file__).resolve().parent.parent
# The servers' import path: this tree's own `src` first. The venv installs genvault editable,
# pointing at one worktree, so with the root alone a bench run from an exported copy (a "before"
# tree) imported the worktree's genvault and measured it instead of the copy's.
PYTHONPATH = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
_TICK = os.sysconf("SC_CLK_TCK")
# The servers' allocator: the one `genvault serve` runs on by default (`auto`: jemalloc where
# installed), so the benchmarks measure the default; BENCH_ALLOCATOR=pymalloc|malloc|jemalloc|
# mimalloc for another (its own variables, MALLOC_CONF or MIMALLOC_*, pass through). Every server
# of a run on the same one, the bare relay's too, so a ratio compares like with like.
ALLOCATOR = resolve(cast(Allocator, os.environ.get("BENCH_ALLOCATOR", "auto")))


# Under pytest-xdist each worker hands out ports from a block of its own below the kernel's
# ephemeral range (32768+ on Linux), so no other worker, and no outgoing connection, is ever given
# the same one. A port from `bind(0)` is free only at the moment of the check: two workers could
# both be handed it before either server bound it; the loser's server exited, while its wait for
# /healthz was answered by the winner's server (a smoke test then read 404s from the other test's
# database and, once that server stopped, connection errors).
_PORT_BLOCK = 1000
_PORT_BASE = 20000
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_next_port = (
    _PORT_BASE + int(_worker.removeprefix("gw")) % 12 * _PORT_BLOCK + os.getpid() % _PORT_BLOCK
    if _worker.startswith("gw") and _worker[2:].isdigit()
    else None
)


def free_port() -> int:
    """A loopback port nothing listens on now (a worker's own block under xdist, else the kernel's)."""
    global _next_port
    if _next_port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    block = _next_port - _next_port % _PORT_BLOCK
    for _ in range(_PORT_BLOCK):
        port = _next_port
        _next_port = block + (port + 1 - block) % _PORT_BLOCK
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in {block}-{block + _PORT_BLOCK - 1}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def counters(pid: int) -> dict[str, float]:
    """What a process's CPU time is made of beside its instructions, so far (from /proc): user and
    system CPU seconds and minor page faults of all its threads, their voluntary (waits) and
    involuntary (preempted) context switches, and its read and write syscalls (`/proc/PID/io`'s
    `syscr`/`syscw`: socket reads and writes through read/write/readv/writev, as libuv makes
    them; counted without strace, which slows the process and so changes how writes batch).
    `bench._load` reports them per window."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    got = {
        "user_s": int(fields[11]) / _TICK,
        "system_s": int(fields[12]) / _TICK,
        "minor_faults": float(fields[7]),
        "voluntary_switches": 0.0,
        "involuntary_switches": 0.0,
    }
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(": ")
        if name in ("syscr", "syscw"):
            got["read_syscalls" if name == "syscr" else "write_syscalls"] = float(value)
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    got["voluntary_switches"] += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    got["involuntary_switches"] += int(line.split()[1])
    return got


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server at {base} did not become healthy")


@contextlib.contextmanager
def server(
    args: list[str], env: dict[str, str] | None = None, *, quiet: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `python -m <args>` (with `--port` appended) and yield (base URL, process); `quiet`
    discards its output (an access log)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", *args, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, **allocator_env(ALLOCATOR, os.environ), **(env or {})},
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
