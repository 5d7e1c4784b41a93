"""`pip install genvault` from a wheel this test builds, into a fresh venv, and `genvault serve`
as the first command there: it creates its SQLite database and answers /healthz.

The wheel comes from `uv build`; the venv is made by uv and filled offline from uv's cache (which
the test environment's own sync filled), or from the package index when the cache lacks a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench._proc import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _uv() -> list[str]:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(ROOT / ".cache" / "uv-tool" / "bin" / "uv")):
        if candidate and Path(candidate).exists():
            return [candidate]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    for python in ("python3", "/usr/bin/python3"):
        if subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    pytest.skip("uv is not installed (./scripts/test installs it)")


@pytest.mark.timeout(900)  # building and installing on a loaded machine: a ceiling
@pytest.mark.long
def test_the_built_wheel_installs_in_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENVAULT_", "VIRTUAL_ENV"))}
    dist = tmp_path / "dist"
    built = subprocess.run(
        [*uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], capture_output=True, text=True, env=env
    )
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("genvault-*.whl")

    venv = tmp_path / "venv"
    made = subprocess.run([*uv, "venv", "--python", sys.executable, str(venv)], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    install = [*uv, "pip", "install", "--python", str(python), str(wheel)]
    done = subprocess.run([*install, "--offline"], capture_output=True, text=True, env=env)
    if done.returncode != 0:  # a file the cache does not hold: from the index after all
        done = subprocess.run(install, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr

    # The first command on the fresh install: serve (it creates the database), then /healthz.
    port = free_port()
    home = tmp_path / "home"
    server_env = {**env, "HOME": str(home), "GENVAULT_PORT": str(port)}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(venv / "bin" / "genvault"), "serve", "--port", str(port)],
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + 300  # a ceiling for a loaded machine, not an expectation
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                response = client.get("/healthz")
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)  # polling a process's startup, not synchronising tests
        assert list(home.glob(".local/share/genvault/*.db")), "serve made its SQLite database"
        assert client.get("/").status_code == 200  # templates and static files are in the wheel
        assert client.get("/static/genvault.css").status_code == 200
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _compose_defaults(value: str) -> str:
    """`${NAME:-default}` as compose resolves it with NAME unset."""
    import re

    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_compose_configures_genvault_for_postgres_redis_and_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    """What can be checked without a Docker daemon: the compose file's genvault environment is a
    valid configuration that uses all three services, and the Dockerfile copies what exists."""
    import yaml

    from genvault.settings import Settings

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"genvault", "postgres", "redis", "minio", "minio-bucket"} <= set(services)
    for name, value in services["genvault"]["environment"].items():
        monkeypatch.setenv(name, _compose_defaults(str(value)))
    settings = Settings()
    assert settings.resolved_database_url.startswith("postgresql://genvault:")
    assert settings.resolved_database_url.endswith("@postgres:5432/genvault")
    assert settings.redis_url == "redis://redis:6379/0"
    assert (settings.blob_store, settings.s3_endpoint, settings.s3_bucket) == ("s3", "http://minio:9000", "genvault")
    assert set(services["genvault"]["depends_on"]) == {"postgres", "redis", "minio-bucket"}

    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert 'CMD ["genvault", "serve"]' in dockerfile

    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True)
        if probe.returncode != 0:
            continue  # `docker` without its compose plugin
        checked = subprocess.run(
            [*command, "-f", str(ROOT / "compose.yaml"), "config", "-q"], capture_output=True, text=True, cwd=ROOT
        )
        assert checked.returncode == 0, checked.stderr
        break
