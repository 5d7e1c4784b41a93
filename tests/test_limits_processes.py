"""Acceptance: a budget holds across two `genvault serve` processes on PostgreSQL, with and
without Redis, and on one SQLite file. 50 concurrent requests (chat turns on one process,
`/api/generate` on the other) from a user whose budget covers exactly 10 worst-case requests: 10
are admitted, 40 refused, and the spend never passes the budget. With Redis, requests per minute
are counted across both. A killed process's reservation is given back by another's sweeper.
(The module's `postgres` mark covers the SQLite test too: it runs beside the others.)"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from genvault.settings import Settings
from genvault.store.schema import generations, limit_usage
from genvault.vault import Vault
from test_two_processes import Server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORST_NANO = 20_000  # 20 output tokens at $1/MTok, input free (as in test_limits.py)
WORST_USD = Decimal(WORST_NANO) / 10**9


@pytest.fixture(params=["postgres", pytest.param("postgres+redis", marks=pytest.mark.redis)])
def env(request: pytest.FixtureRequest, database_maker: Any, tmp_path: Path) -> dict[str, str]:
    # A migrated schema (the worker's template copy, as `database` gives): migrating an empty one
    # from scratch cost PostgreSQL ~0.6 s of CPU per test (the migrations have their own tests).
    url, schema = database_maker("postgres")
    values = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")},
        "GENVAULT_DATABASE_URL": url,
        "GENVAULT_DATABASE_SCHEMA": schema,
        "GENVAULT_DATA_DIR": str(tmp_path),
        "GENVAULT_TEST_MODEL_TPS": "0",
        "GENVAULT_AUTH": "header",
        "GENVAULT_PRICE_OVERRIDES": json.dumps({"offline/test-model": {"input_mtok": "0", "output_mtok": "1"}}),
        "GENVAULT_LIMITS_MAX_OUTPUT_TOKENS": "20",
        "GENVAULT_LIMITS_REFRESH_SECONDS": "0",
        # 50 turns at once on a loaded 2-core machine: a turn waits for a slot rather than getting
        # the saturation 503, which would stand in for an admission or a refusal and blur the count.
        "GENVAULT_DB_POOL_TIMEOUT_SECONDS": "120",
        # Small pools: two servers at 30 connections each, beside the other test workers' servers,
        # once ran the shared PostgreSQL out of connections ("sorry, too many clients already":
        # 503s in place of refusals). 50 turns queue for these slots instead.
        "GENVAULT_DB_POOL_SIZE": "4",
        "GENVAULT_DB_MAX_OVERFLOW": "4",
    }
    if request.param.endswith("redis"):
        redis: dict[str, str] = request.getfixturevalue("redis_settings")
        values["GENVAULT_REDIS_URL"] = redis["redis_url"]
        values["GENVAULT_REDIS_PREFIX"] = redis["redis_prefix"]
    return values


@pytest.fixture
async def vault(env: dict[str, str]) -> AsyncIterator[Vault]:
    """The library on the same database: installs the schema before the servers start, sets limits."""
    settings = Settings(
        database_url=env["GENVAULT_DATABASE_URL"],
        data_dir=Path(env["GENVAULT_DATA_DIR"]),
        redis_url=env.get("GENVAULT_REDIS_URL"),
        redis_prefix=env.get("GENVAULT_REDIS_PREFIX", "genvault:"),
    )
    async with Vault(settings, database_schema=env["GENVAULT_DATABASE_SCHEMA"]) as the_vault:
        yield the_vault


@pytest.fixture
async def two(env: dict[str, str], tmp_path: Path, vault: Vault) -> AsyncIterator[tuple[Server, Server]]:
    a = Server("A", env, tmp_path / "a.log")
    b = Server("B", env, tmp_path / "b.log")
    try:
        await asyncio.gather(ready(a), ready(b))
        yield a, b
    finally:
        a.stop()
        b.stop()


async def ready(server: Server) -> None:
    """Like `Server.ready`, with a more generous ceiling: two cores shared by many test runs."""
    async with httpx.AsyncClient(base_url=server.url) as client, asyncio.timeout(120):
        while True:
            if server.proc.poll() is not None:
                raise AssertionError(f"{server.name} exited: {server.log.read_text()}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


def as_user(name: str) -> dict[str, str]:
    return {"X-Forwarded-User": name}


@pytest.mark.long
async def test_a_budget_admits_exactly_ten_of_fifty_across_two_processes(
    env: dict[str, str], vault: Vault, two: tuple[Server, Server]
) -> None:
    a, b = two
    await vault.ensure_user("alice")
    await vault.set_limits({"monthly_usd": WORST_USD * 10}, user_id="alice")

    async def request(i: int, client: httpx.AsyncClient) -> int:
        if i % 2:
            body = {
                "id": f"chat-{i}",
                "messages": [{"id": f"u{i}", "role": "user", "parts": [{"type": "text", "text": f"q{i}"}]}],
                "trigger": "submit-message",
            }
            response = await client.post(f"{a.url}/api/chat", json=body, headers=as_user("alice"))
        else:
            response = await client.post(f"{b.url}/api/generate", json={"prompt": f"p{i}"}, headers=as_user("alice"))
        if response.status_code == 429:
            assert "Retry-After" in response.headers
        elif response.status_code not in (200, 201):  # what it was, for the failure message
            unexpected.append(f"{response.status_code} {response.text[:300]}")
        return response.status_code

    unexpected: list[str] = []
    async with httpx.AsyncClient(timeout=180) as client:
        statuses = await asyncio.gather(*(request(i, client) for i in range(50)))
    assert sum(s in (200, 201) for s in statuses) == 10, statuses
    # Once under CI (4 workers) 5 of the 40 were not 429; not reproduced alone: say what they were.
    logs = (a.log.read_text()[-3000:], b.log.read_text()[-3000:])
    assert statuses.count(429) == 40, (sorted(statuses), unexpected, logs)
    async with asyncio.timeout(60):
        while True:
            async with vault.store.read() as conn:
                active = (
                    await conn.execute(
                        select(func.count()).where(
                            generations.c.user_id == "alice", generations.c.status.in_(("pending", "streaming"))
                        )
                    )
                ).scalar_one()
            if active == 0:
                break
            await asyncio.sleep(0.1)
    async with vault.store.read() as conn:
        count, total = (
            await conn.execute(
                select(func.count(), func.sum(generations.c.cost_nano_usd)).where(generations.c.user_id == "alice")
            )
        ).one()
        row = (await conn.execute(select(limit_usage).where(limit_usage.c.subject == "user:alice"))).one()
    assert count == 10
    assert total <= WORST_NANO * 10
    assert (row.month_nano_usd, row.running, row.reserved_nano_usd) == (total, 0, 0)
    if "GENVAULT_REDIS_URL" in env:
        await requests_per_minute_count_across_both(vault, a, b)


async def requests_per_minute_count_across_both(vault: Vault, a: Server, b: Server) -> None:
    """With Redis, both processes count one user's requests in the same moving window."""
    await vault.ensure_user("bob")
    await vault.set_limits({"rpm": 10}, user_id="bob")
    statuses: list[Any] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(11):
            server = a if i % 2 else b
            response = await client.post(f"{server.url}/api/generate", json={"prompt": f"r{i}"}, headers=as_user("bob"))
            statuses.append(response.status_code)
    assert statuses == [201] * 10 + [429]
    assert response.json()["error"]["limit"] == "rpm"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.long
async def test_a_killed_process_holds_nothing_once_another_sweeps_its_generation(
    env: dict[str, str], vault: Vault, tmp_path: Path
) -> None:
    """A real crash: the process running a budgeted generation is killed (SIGKILL, no shutdown);
    the sweeper of another process on the database ends the record `interrupted`, and the update
    that does so gives back its running slot and reservation (revision 0015's trigger)."""
    await vault.ensure_user("carol")
    await vault.set_limits({"total_usd": WORST_USD * 2, "concurrent": 1}, user_id="carol")
    # 20 output tokens at half a token a second: still running when it is killed.
    slow = Server("slow", {**env, "GENVAULT_TEST_MODEL_TPS": "0.5"}, tmp_path / "slow.log")
    try:
        await ready(slow)
        async with httpx.AsyncClient(base_url=slow.url, timeout=180) as client:
            created = await client.post("/api/generate", json={"prompt": "die under me"}, headers=as_user("carol"))
            assert created.status_code == 201, created.text
            busy = await client.post("/api/generate", json={"prompt": "no slot"}, headers=as_user("carol"))
            assert busy.status_code == 429
            assert busy.json()["error"]["limit"] == "concurrent"
        slow.proc.kill()
        slow.proc.wait(timeout=60)
    finally:
        slow.stop()
    generation_id = created.json()["id"]
    async with vault.store.read() as conn:
        held = (await conn.execute(select(limit_usage).where(limit_usage.c.subject == "user:carol"))).one()
    assert (held.running, held.reserved_nano_usd) == (1, WORST_NANO)
    swept = await vault.engine.sweep()  # the killed process's pid is gone from this host
    assert generation_id in [record.id for record in swept]
    final = await vault.get_generation(generation_id, user_id="carol")
    assert final.status == "interrupted"
    async with vault.store.read() as conn:
        row = (await conn.execute(select(limit_usage).where(limit_usage.c.subject == "user:carol"))).one()
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, final.cost_nano_usd or 0)
    # The slot is free again.
    again = await vault.generate("after the crash", user_id="carol")
    assert (await vault.wait(again.id, user_id="carol")).status == "complete"


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    values = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")},
        "GENVAULT_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "GENVAULT_DATA_DIR": str(tmp_path / "data"),
        "GENVAULT_TEST_MODEL_TPS": "0",
        "GENVAULT_AUTH": "header",
        "GENVAULT_PRICE_OVERRIDES": json.dumps({"offline/test-model": {"input_mtok": "0", "output_mtok": "1"}}),
        "GENVAULT_LIMITS_MAX_OUTPUT_TOKENS": "20",
        "GENVAULT_LIMITS_REFRESH_SECONDS": "0",
        "GENVAULT_DB_POOL_TIMEOUT_SECONDS": "120",
        # Small pools: two servers at 30 connections each, beside the other test workers' servers,
        # once ran the shared PostgreSQL out of connections ("sorry, too many clients already":
        # 503s in place of refusals). 50 turns queue for these slots instead.
        "GENVAULT_DB_POOL_SIZE": "4",
        "GENVAULT_DB_MAX_OVERFLOW": "4",
    }
    return values


@pytest.mark.long
async def test_a_budget_admits_exactly_ten_of_fifty_across_two_processes_on_one_sqlite_file(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    """The embedded database shared by two processes: the reservation is taken inside the insert,
    which holds SQLite's write lock (a file lock, across processes), so neither can take the
    other's last room."""
    settings = Settings(database_url=sqlite_env["GENVAULT_DATABASE_URL"], data_dir=tmp_path / "data")
    async with Vault(settings) as vault:  # installs the schema before the servers start
        await vault.ensure_user("alice")
        await vault.set_limits({"daily_usd": WORST_USD * 10}, user_id="alice")
    a = Server("A", sqlite_env, tmp_path / "a.log")
    b = Server("B", sqlite_env, tmp_path / "b.log")
    try:
        await asyncio.gather(ready(a), ready(b))
        async with httpx.AsyncClient(timeout=180) as client:
            statuses = await asyncio.gather(
                *(
                    client.post(
                        f"{(a if i % 2 else b).url}/api/generate", json={"prompt": f"p{i}"}, headers=as_user("alice")
                    )
                    for i in range(50)
                )
            )
    finally:
        a.stop()
        b.stop()
    codes = [r.status_code for r in statuses]
    assert codes.count(201) == 10, codes
    assert codes.count(429) == 40, codes
    async with Vault(settings) as vault:
        for response in statuses:
            if response.status_code == 201:
                await vault.wait(response.json()["id"], user_id=None)
        async with vault.store.read() as conn:
            count, total = (
                await conn.execute(
                    select(func.count(), func.sum(generations.c.cost_nano_usd)).where(generations.c.user_id == "alice")
                )
            ).one()
            row = (await conn.execute(select(limit_usage).where(limit_usage.c.subject == "user:alice"))).one()
    assert count == 10
    assert total <= WORST_NANO * 10
    assert (row.day_nano_usd, row.running, row.reserved_nano_usd) == (total, 0, 0)
