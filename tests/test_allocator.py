"""`genvault serve` runs on jemalloc where it is installed: it re-executes its own command line
once with the environment that selects the allocator; `GENVAULT_ALLOCATOR=pymalloc` opts out and a
missing library falls back to Python's own allocator."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from genvault import allocator
from genvault.allocator import APPLIED_ENV, allocator_exec, resolve
from redis_server import free_port

ARGV = ["python", "-m", "genvault", "serve", "--port", "8000"]
has_jemalloc = allocator._library("jemalloc") is not None
needs_jemalloc = pytest.mark.skipif(not has_jemalloc, reason="libjemalloc2 not installed (scripts/test installs it)")


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The libraries the loader finds: the test says which."""
    found: set[str] = set()
    monkeypatch.setattr(allocator, "_library", lambda name: f"lib{name}.so.2" if name in found else None)
    return found


class TestChoice:
    def test_auto_is_jemalloc_when_installed_and_pythons_own_when_not(self, installed: set[str]) -> None:
        assert resolve("auto") == "pymalloc"
        installed.add("jemalloc")
        assert resolve("auto") == "jemalloc"

    def test_a_named_library_that_is_missing_falls_back_to_pythons_allocator_with_a_warning(
        self, installed: set[str], caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="genvault.allocator"):
            assert resolve("mimalloc") == "pymalloc"
        assert "mimalloc is not installed" in caplog.text
        assert allocator_exec("mimalloc", {}, ARGV) is None  # nothing to change: serves as it is


class TestRestart:
    def test_serve_restarts_its_command_line_with_jemalloc_preloaded(self, installed: set[str]) -> None:
        installed.add("jemalloc")
        plan = allocator_exec("auto", {"HOME": "/h", "LD_PRELOAD": "libother.so"}, ARGV)
        assert plan is not None
        argv, env = plan
        assert argv == [sys.executable, *ARGV[1:]]
        assert env == {
            "HOME": "/h",
            "LD_PRELOAD": "libother.so libjemalloc.so.2",  # a preload of the user's is kept
            "PYTHONMALLOC": "malloc",
            APPLIED_ENV: "jemalloc",
        }

    def test_the_restarted_process_never_restarts_again(self, installed: set[str]) -> None:
        installed.add("jemalloc")
        assert allocator_exec("auto", {APPLIED_ENV: "jemalloc"}, ARGV) is None

    def test_pymalloc_opts_out_and_auto_keeps_a_pythonmalloc_the_user_set(self, installed: set[str]) -> None:
        installed.add("jemalloc")
        assert allocator_exec("pymalloc", {}, ARGV) is None
        assert allocator_exec("auto", {"PYTHONMALLOC": "malloc"}, ARGV) is None
        plan = allocator_exec("pymalloc", {"PYTHONMALLOC": "malloc"}, ARGV)  # named: it wins
        assert plan is not None
        assert plan[1]["PYTHONMALLOC"] == "pymalloc"

    def test_glibc_malloc_needs_no_library(self, installed: set[str]) -> None:
        plan = allocator_exec("malloc", {}, ARGV)
        assert plan is not None
        assert plan[1] == {"PYTHONMALLOC": "malloc", APPLIED_ENV: "malloc"}

    def test_serve_called_in_process_never_replaces_the_caller(
        self, installed: set[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from genvault.cli import serve as serve_cli
        from genvault.cli._app import state

        installed.add("jemalloc")
        assert not state.own_process  # the CLI runner, an embedding program: `main()` was not the entry
        monkeypatch.setattr(os, "execve", lambda *args: pytest.fail("exec'd the test process"))
        serve_cli._restart_on("jemalloc")


def _serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")}
    base = {k: v for k, v in inherited.items() if k not in ("PYTHONMALLOC", "LD_PRELOAD")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genvault", "serve", "--port", str(port)],
        env={**base, "GENVAULT_DATA_DIR": str(tmp_path), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # imports alone take 10 s on a loaded machine
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("serve did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@needs_jemalloc
@pytest.mark.slow
def test_the_serve_process_itself_runs_on_jemalloc(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path)
    try:
        assert "libjemalloc" in _mapped(proc.pid)  # the same process id: an exec, not a child
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        _stop(proc)


@needs_jemalloc
@pytest.mark.slow
def test_genvault_allocator_pymalloc_keeps_pythons_allocator(tmp_path: Path) -> None:
    proc, _ = _serve(tmp_path, GENVAULT_ALLOCATOR="pymalloc")
    try:
        assert "libjemalloc" not in _mapped(proc.pid)
        assert APPLIED_ENV not in Path(f"/proc/{proc.pid}/environ").read_bytes().decode(errors="replace")
    finally:
        _stop(proc)
