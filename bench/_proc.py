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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on loopback `port` (Linux's /proc)."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    sockets.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    return True
    return False


class PortTaken(RuntimeError):
    """Another process listened on the port first (it was free when picked): start again elsewhere."""


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    # A 200 counts only from `proc` itself: the port is picked free, then bound by the server a
    # second or more later, and in between another process (a parallel test worker's server) can
    # take it. Its /healthz answered for ours once, and the run measured that server (404s for a
    # chat it never had, then refused connections once it stopped).
    port = int(base.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if _listens_elsewhere(port):
                raise PortTaken(f"port {port} was taken by another process")
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200 and _listens(proc.pid, port):
                return
        time.sleep(0.05)
    raise RuntimeError(f"server at {base} did not become healthy")


def _listens_elsewhere(port: int) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    except OSError:
        return True
    return False


@contextlib.contextmanager
def server(
    args: list[str], env: dict[str, str] | None = None, *, quiet: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `python -m <args>` (with `--port` appended) and yield (base URL, process); `quiet`
    discards its output (an access log)."""
    for attempt in range(3):
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
            break
        except PortTaken:
            proc.wait()
            if attempt == 2:
                raise
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
    try:
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
