"""The README's quick start on a stock Debian/Ubuntu Python, in a clean copy of the repository.

The copy runs with only the system directories on PATH (so no `uv` and no pyenv), Debian's own
`/usr/bin/python3` (which carries the PEP 668 `EXTERNALLY-MANAGED` marker: pip into it is refused)
and `PIP_REQUIRE_VIRTUALENV=1` (pip refuses outside a venv on any Python). `./scripts/run` must
still install uv (into its private venv under `.cache/`), sync `.venv` and run genvault;
`./scripts/test` must add its tools without removing anything and stop at the first failing lint.
uv itself comes from PyPI through pip; the project's dependencies mostly from uv's cache, which
the developer's or CI's own sync filled (what differs for the system Python's version from PyPI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _stock_env() -> dict[str, str]:
    # The machine's own settings (certificates, package index mirrors) stay; what points at a
    # developer's tools goes.
    drop = ("VIRTUAL_ENV", "UV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in drop and not name.startswith(("PYENV", "GENVAULT_", "PYTEST_"))
    }
    env.update(
        PATH="/usr/bin:/bin",
        PIP_REQUIRE_VIRTUALENV="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_PYTHON=str(SYSTEM_PYTHON),
        # Compiling every installed package to bytecode is ~20 s of CPU that a throwaway copy
        # never uses back.
        UV_COMPILE_BYTECODE="0",
    )
    return env


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / os.fsdecode(name)
        if not source.is_file():
            continue  # deleted in the work tree
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@pytest.fixture
def stock_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (git ls-files) to copy the repository")
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no system /usr/bin/python3 here")
    env = _stock_env()
    probe = subprocess.run([str(SYSTEM_PYTHON), "-m", "uv", "--version"], env=env, capture_output=True)
    if probe.returncode == 0:
        pytest.skip("uv is installed into the system Python here, so the stock case cannot be shown")
    copy = tmp_path / "genvault"
    _copy_repo(copy)
    return copy, env


@pytest.mark.long
@pytest.mark.timeout(1200)  # installs uv and the environment on a loaded machine: a ceiling
def test_quick_start_on_an_externally_managed_python(stock_copy: tuple[Path, dict[str, str]]) -> None:
    copy, env = stock_copy
    assert shutil.which("uv", path=env["PATH"]) is None
    # The condition itself: pip into the system Python is refused here.
    refused = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "uv"], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0, refused.stdout
    assert "externally-managed" in refused.stderr or "virtualenv" in refused.stderr, refused.stderr

    run = subprocess.run(["./scripts/run", "--help"], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Usage: genvault" in run.stdout
    assert (copy / ".cache" / "uv-tool" / "bin" / "uv").exists()  # the private venv, not the system
    assert (copy / ".venv" / "bin" / "genvault").exists()
    assert not (copy / ".venv" / "bin" / "ruff").exists()  # run installs what running needs

    # A lint failure fails ./scripts/test before pytest starts (it used to be ignored).
    (copy / "src" / "genvault" / "_lint_bait.py").write_text("import os\n")
    (copy / "tests" / "client" / "package-lock.json").unlink()  # no npm install in this check
    test = subprocess.run(["./scripts/test", "-x"], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode != 0, test.stdout + test.stderr
    assert "== ruff" in test.stdout
    assert "== pytest" not in test.stdout
    assert "F401" in test.stdout  # ruff's unused import

    # Both scripts share .venv and neither removes the other's tools.
    assert (copy / ".venv" / "bin" / "ruff").exists()
    again = subprocess.run(["./scripts/run", "--help"], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (copy / ".venv" / "bin" / "ruff").exists()
    assert (copy / ".venv" / "bin" / "pytest").exists()
