"""`genvault serve` runs on glibc's allocator (`PYTHONMALLOC=malloc`) unless told otherwise: it
re-executes its own command once with the variable set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genvault.cli import serve as serve_cli
from genvault.cli._app import state

needs_glibc = pytest.mark.skipif(not serve_cli._on_glibc(), reason="the re-execution is for glibc's allocator")


@pytest.fixture
def as_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "own_process", True)


@needs_glibc
@pytest.mark.usefixtures("as_the_command")
def test_serve_restarts_its_own_command_line_with_pythonmalloc_malloc() -> None:
    plan = serve_cli.allocator_exec({"HOME": "/somewhere"})
    assert plan is not None
    argv, env = plan
    assert argv == [sys.executable, *sys.orig_argv[1:]]
    assert env == {"HOME": "/somewhere", "PYTHONMALLOC": "malloc"}


@pytest.mark.usefixtures("as_the_command")
@pytest.mark.parametrize("value", ["malloc", "pymalloc", ""])
def test_a_set_pythonmalloc_is_kept_so_the_restarted_process_serves_and_pymalloc_opts_out(value: str) -> None:
    assert serve_cli.allocator_exec({"PYTHONMALLOC": value}) is None


def test_serve_called_in_process_never_replaces_the_caller() -> None:
    assert not state.own_process  # the CLI runner, an embedding program: `main()` was not the entry
    assert serve_cli.allocator_exec({}) is None


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_") and k != "PYTHONMALLOC"}
    return {**env, "GENVAULT_DATA_DIR": str(tmp_path), **extra}


@needs_glibc
@pytest.mark.slow
def test_the_serve_process_itself_runs_on_glibc_malloc_and_ends_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "genvault", "serve", "--port", "9"],  # never reached: stopped first
        env=_command_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # imports on a loaded machine
        while _environ(proc.pid).get("PYTHONMALLOC") != "malloc" and proc.poll() is None:
            assert time.monotonic() < deadline, "serve never re-executed itself"
            time.sleep(0.05)
        assert proc.poll() is None  # the same process id, still running: an exec, not a child
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_glibc
@pytest.mark.slow
def test_the_restarted_serve_keeps_the_arguments_and_its_exit_status(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genvault", "serve", "--auth", "nonsense"],
        env=_command_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr  # the configuration error, after the re-execution
    assert result.stderr.count("invalid configuration") == 1
    assert "auth" in result.stderr
