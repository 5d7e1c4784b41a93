"""Shared fixtures: isolated databases on SQLite and the real PostgreSQL, a network guard.

Every test that takes `db_url` runs once per backend. PostgreSQL tests get a fresh schema inside a
database made for this test session (dropped at the end), because the server keeps state between
sessions. Locally a missing PostgreSQL skips those tests with the reason; under CI (`CI=true`)
it fails them instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings

from bench._proc import free_port

PG_ADMIN_URL = os.environ.get("GENVAULT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


# -- hypothesis on a loaded machine -------------------------------------------------------------

# Hypothesis's per-example deadline (200 ms) and its "input generation is slow" health check are
# wall-clock limits: with 4 workers on 2 cores, a worker paused for a few seconds failed a test
# whose inputs are small (seen: 2 examples in 3.6 s). Neither is what a property test is about;
# a test that cares about its own speed says so itself.
settings.register_profile("genvault", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("genvault")


# -- no real network in tests ------------------------------------------------------------------

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    local = isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost"))
    if self.family in (socket.AF_INET, socket.AF_INET6) and not local:
        raise RuntimeError(f"tests may not reach the network (tried {address!r}); use httpx.MockTransport")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _patient_http_clients() -> Iterator[None]:
    # httpx's default 5 s timeout is a deadline for a loaded machine (4 workers on 2 cores, the
    # servers under test in the same processes): a slow answer there is not the failure a test is
    # about, and tests of a timeout set their own. A ceiling, as the SDK and browser tests use.
    import httpx

    defaults = [httpx.AsyncClient.__init__.__kwdefaults__, httpx.Client.__init__.__kwdefaults__]
    before = [d["timeout"] for d in defaults]
    for d in defaults:
        d["timeout"] = httpx.Timeout(60.0)
    yield
    for d, timeout in zip(defaults, before, strict=True):
        d["timeout"] = timeout


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real keys must never make a test reach a real provider.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("GENVAULT_")]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # argon2id at its RFC 9106 default costs ~0.35 s of CPU per hash and check, paid by every sign-in
    # a test makes (the suite's largest CPU item after the browsers). The tests are about what the
    # hash guards, not its cost: same algorithm, minimal work factors.
    from argon2 import PasswordHasher

    import genvault.sessions

    monkeypatch.setattr(genvault.sessions, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


# -- FastAPI's per-app route state, built once per worker ----------------------------------------
#
# FastAPI (0.165) builds each included route's state (its dependant, and a pydantic TypeAdapter
# per parameter and response field) lazily, the first time a request is matched against it, and
# keeps it on that app's inclusion of the router. genvault's routers are module-level, but every
# test makes a new app (`create_app`), so every test rebuilt the state of each route its requests
# passed: 40-180 ms of CPU per first request to a route, about a quarter of the workers' own CPU
# in the HTTP test files. The state depends only on the route and the inclusion's settings (path
# prefix, dependencies, responses, ...), which are the same for every app, except for the app
# itself (`dependency_overrides_provider`). So the first build per worker is kept, and each app
# gets a copy with its own app and its own request handler, made as FastAPI makes it. Applied
# only to the FastAPI version it was written against (a private API); any other runs unpatched.
# GENVAULT_TEST_FRESH_ROUTES=1 turns it off.

_ROUTE_STATE_FASTAPI = "0.165.0"


def _frozen(value: Any) -> Any:
    """A hashable stand-in for `value` that is equal for equal settings (identity otherwise)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *map(_frozen, value))
    if isinstance(value, dict):
        return ("dict", *sorted(((repr(k), _frozen(v)) for k, v in value.items()), key=lambda kv: kv[0]))
    try:
        hash(value)
    except TypeError:
        if hasattr(value, "__dict__"):
            return (type(value), _frozen(vars(value)))
        return ("id", id(value))
    return value


def _share_route_state() -> Any:
    import copy
    import dataclasses

    import fastapi
    import fastapi.routing as routing

    context_class = getattr(routing, "_EffectiveRouteContext", None)
    if fastapi.__version__ != _ROUTE_STATE_FASTAPI or context_class is None:
        return None
    original = context_class.__dict__["from_api_route"]
    built: dict[Any, tuple[Any, Any, Any]] = {}

    def from_api_route(cls: Any, *, original_route: Any, include_context: Any) -> Any:
        settings = tuple(
            (f.name, _frozen(getattr(include_context, f.name)))
            for f in dataclasses.fields(include_context)
            if f.name not in ("dependency_overrides_provider", "included_router")
        )
        key = (id(original_route), id(include_context.included_router), settings)
        hit = built.get(key)
        if hit is None or hit[0] is not original_route or hit[1] is not include_context.included_router:
            context = original.__func__(cls, original_route=original_route, include_context=include_context)
            # The objects themselves are kept, so their ids are never reused for others.
            built[key] = (original_route, include_context.included_router, context)
            return context
        # What `from_api_route` does after the state: this app's provider, a handler of its own.
        context = copy.copy(hit[2])
        context.dependency_overrides_provider = include_context.dependency_overrides_provider
        token = routing._effective_route_context_var.set(context)
        try:
            context.app = routing.wrap_app_with_body_limit(
                routing.request_response(original_route.get_route_handler()), context.max_body_size
            )
        finally:
            routing._effective_route_context_var.reset(token)
        return context

    context_class.from_api_route = classmethod(from_api_route)
    return lambda: setattr(context_class, "from_api_route", original)


@pytest.fixture(autouse=True, scope="session")
def _route_state_once() -> Iterator[None]:
    if os.environ.get("GENVAULT_TEST_FRESH_ROUTES") == "1":
        yield
        return
    restore = _share_route_state()
    yield
    if restore is not None:
        restore()


# -- PostgreSQL ----------------------------------------------------------------------------------


def _service_unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc}); start it as the README says"
    if IN_CI:
        pytest.fail(f"under CI every service must be up: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database created for this test session on the real server; yields its URL."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"gvtest_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL

    async def create() -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _service_unavailable(f"PostgreSQL at {admin}", exc)
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(drop())


@pytest.fixture
def pg_schema(pg_database: str) -> Iterator[tuple[str, str]]:
    """(url, schema): an empty schema of its own for one test."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    yield pg_database, schema
    asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


# -- migrated databases, from a template ---------------------------------------------------------
#
# Nearly every test starts a Vault on a fresh database, and migrating one from empty costs
# ~0.15 s of CPU (Alembic and its revisions) and, on PostgreSQL, ~0.6 s of the server's time: over
# the suite's ~1,200 databases, minutes of CI on two cores. So each worker migrates one template
# per backend, once, and each test gets a copy (SQLite: the file, by the backup API; PostgreSQL:
# the template schema's `pg_dump`, replayed under the test's schema name in one round trip). The
# copy is at the head revision, so the Vault's own upgrade finds nothing to do. Tests of the
# migrations themselves take an empty database: `@pytest.mark.empty_database`.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genvault.store import Store

    path = tmp_path_factory.mktemp("template") / "genvault.db"

    async def migrate() -> None:
        store = Store(f"sqlite:///{path}")
        try:
            await store.upgrade()
        finally:
            await store.aclose()

    asyncio.run(migrate())
    return path


@pytest.fixture(scope="session")
def pg_template(pg_database: str) -> str:
    """The SQL that builds a migrated schema, with `{schema}` where its name goes."""
    import shutil
    import subprocess

    import asyncpg

    from genvault.store import Store

    template = f"gvtemplate_{uuid.uuid4().hex[:12]}"  # unique: replaced by text below

    async def migrate() -> None:
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute(f'CREATE SCHEMA "{template}"')
        finally:
            await conn.close()
        store = Store(pg_database, schema=template)
        try:
            await store.upgrade()
        finally:
            await store.aclose()

    asyncio.run(migrate())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:  # the schema is built by Alembic instead, per test
        return ""
    dumped = subprocess.run(
        [pg_dump, "--no-owner", "--no-privileges", "--inserts", "--schema", template, pg_database],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # psql's meta-commands (`\restrict`, which newer pg_dump writes) are not SQL, and the test's
    # schema exists already (`pg_schema`).
    skipped = ("\\", f"CREATE SCHEMA {template};")
    statements = "\n".join(line for line in dumped.splitlines() if not line.startswith(skipped))
    return statements.replace("{", "{{").replace("}", "}}").replace(template, "{schema}")


@pytest.fixture
async def pg_connection(pg_schema: tuple[str, str], pg_template: str) -> AsyncIterator[Any]:
    """An asyncpg connection to this test's migrated schema (the template's copy), on its search
    path: for tests of the SQL PostgreSQL runs (plans, triggers), below the store."""
    import asyncpg

    url, schema = pg_schema
    connection = await asyncpg.connect(url)
    try:
        if pg_template:
            await connection.execute(pg_template.format(schema=schema))
        else:  # no pg_dump: migrate it here
            from genvault.store import Store

            store = Store(url, schema=schema)
            try:
                await store.upgrade()
            finally:
                await store.aclose()
        await connection.execute(f'SET search_path TO "{schema}"')
        yield connection
    finally:
        await connection.close()


def _copy_sqlite(template: Path, target: Path) -> None:
    import sqlite3

    source, copy = sqlite3.connect(template), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


@pytest.fixture
def database_maker(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """`make(backend)` -> (url, schema) of this test's fresh database on "sqlite" or "postgres":
    the templated copy (or empty under `@pytest.mark.empty_database`), as `database` gives. For a
    module whose own `database` fixture picks the backend (SQLite unless a test asks for both)."""
    empty = request.node.get_closest_marker("empty_database") is not None

    def make(backend: str) -> tuple[str, str | None]:
        if backend == "sqlite":
            path = tmp_path / "genvault.db"
            if not empty:
                _copy_sqlite(request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}", None
        url, schema = request.getfixturevalue("pg_schema")
        if not empty and (build := request.getfixturevalue("pg_template")):
            import asyncpg

            async def run() -> None:
                conn = await asyncpg.connect(url)
                try:
                    await conn.execute(build.format(schema=schema))
                finally:
                    await conn.close()

            asyncio.run(run())
        return url, schema

    return make


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, database_maker: Any) -> tuple[str, str | None]:
    """(url, schema) of a fresh database: a new SQLite file, or a new PostgreSQL schema; migrated
    to the head revision, or empty under `@pytest.mark.empty_database`."""
    made: tuple[str, str | None] = database_maker(request.param)
    return made


# -- S3 (moto's standalone server on loopback) ------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server for this test session: moto's standalone server, in its own
    process on a free loopback port. Yields its endpoint URL."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180  # a ceiling: several workers start theirs at once
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    _service_unavailable("moto's S3 server (pip install 'moto[server]')", exc)
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_settings(s3_endpoint: str) -> dict[str, Any]:
    """Settings values for a fresh, empty bucket of this test's own on the session's S3 server."""
    import httpx

    bucket = f"gv-{uuid.uuid4().hex[:16]}"
    httpx.put(f"{s3_endpoint}/{bucket}", timeout=10).raise_for_status()
    return {
        "blob_store": "s3",
        "s3_bucket": bucket,
        "s3_prefix": "genvault",
        "s3_endpoint": s3_endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
        "s3_allow_http": True,
    }


# -- vaults --------------------------------------------------------------------------------------


@pytest.fixture
def settings_factory(tmp_path: Path, database: tuple[str, str | None]) -> Any:
    from genvault.settings import Settings

    url, _schema = database

    def make(**overrides: Any) -> Settings:
        # The pool's and the turn gate's wait is a ceiling in tests (a loaded machine, parallel
        # workers), not the server's 10 s; tests of the 503 itself set it low.
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": url,
            "test_model_tps": 0,
            "db_pool_timeout_seconds": 120,
        }
        values.update(overrides)
        return Settings(**values)

    return make


async def _vaults(database: tuple[str, str | None], settings_factory: Any) -> AsyncIterator[Any]:
    from genvault.vault import Vault

    _url, schema = database
    opened: list[Vault] = []

    async def make(**kwargs: Any) -> Vault:
        settings = kwargs.pop("settings", None) or settings_factory(**kwargs.pop("settings_overrides", {}))
        vault = Vault(settings, database_schema=schema, **kwargs)
        await vault.start()
        opened.append(vault)
        return vault

    yield make
    for vault in opened:
        await vault.aclose(grace_seconds=0)


@pytest.fixture
async def vault_factory(database: tuple[str, str | None], settings_factory: Any) -> AsyncIterator[Any]:
    """Builds started Vaults on the test's database; all are closed at the end."""
    async for make in _vaults(database, settings_factory):
        yield make


@pytest_asyncio.fixture(loop_scope="session")
async def session_loop_vault_factory(database: tuple[str, str | None], settings_factory: Any) -> AsyncIterator[Any]:
    """`vault_factory` for a test on the worker's session event loop (`asyncio(loop_scope="session")`):
    the browser tests, which share one Playwright driver per worker (tests/test_browser.py). A
    Vault is bound to the loop it starts on, so it must start on the test's."""
    async for make in _vaults(database, settings_factory):
        yield make


# -- Redis ---------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("GENVAULT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_settings() -> AsyncIterator[dict[str, str]]:
    """Settings for the real Redis under a random key prefix; every key under it is deleted after."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    prefix = f"gvtest:{uuid.uuid4().hex[:12]}:"
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        await client.aclose()
        _service_unavailable(f"Redis at {REDIS_URL}", exc)
    yield {"redis_url": REDIS_URL, "redis_prefix": prefix}
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["sql", pytest.param("redis", marks=pytest.mark.redis)])
def cache_backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings overrides selecting the dedup cache backend: the SQL table or Redis."""
    if request.param == "sql":
        return {}
    settings: dict[str, str] = request.getfixturevalue("redis_settings")
    return settings


# -- parallel workers (pytest-xdist) -------------------------------------------------------------
#
# `./scripts/test` runs the suite on several workers (`-n`). Every session fixture above is per
# worker and isolated by name (a database, a moto server and a Redis prefix of its own; ports are
# free ports), so tests need nothing to run in parallel. Two marks exist for those that do:
#   @pytest.mark.xdist_group("name")  tests of one group run on one worker, one after another
#                                     (with `--dist loadgroup`, which ./scripts/test passes);
#   @pytest.mark.serial               the test runs alone: it waits for the tests running on other
#                                     workers to end, and they wait for it.
# `serial` is a reader/writer lock over files shared by the run's workers: each test holds the
# shared side; a serial test takes the gate first (so new tests queue behind it), then the
# exclusive side.


@pytest.fixture(autouse=True)
def _serial_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:  # one process: nothing runs beside this test
        yield
        return
    import fcntl
    import tempfile

    serial = request.node.get_closest_marker("serial") is not None
    base = Path(tempfile.gettempdir()) / f"genvault-tests-{run_id}"
    with open(f"{base}.gate", "a") as gate, open(f"{base}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
        finally:
            if not serial:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if serial:
                fcntl.flock(gate, fcntl.LOCK_UN)


# -- the run's tail ------------------------------------------------------------------------------
#
# xdist hands tests out in collection order, so a test of 30-60 s collected late starts near the
# end and the other workers sit idle while it runs. Tests marked `long` (~10 s or more on CI,
# from the run's `--durations`) are moved to the front, in their collected order, and the short
# ones fill the tail. The sort is stable and keeps each `long` test beside the others of its
# module (the ten axe sweeps stay consecutive, so a worker keeps their module-scoped world).
# `xdist_group` is unaffected: loadgroup keys a group by the `@name` suffix xdist gives its node
# ids, not by position. (xdist 3.8 sets that suffix through `item._nodeid`, which pytest 9.2 no
# longer reads: the mark groups nothing today, with or without this hook; no test uses it yet.)
# `serial` is a lock taken when a test runs (`_serial_guard`), not an order.
# Last, after pytest's own reordering by parametrized fixtures and xdist's group suffixes.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
