"""Redis down: generations still work and lose nothing (cache and cross-process streams degrade to
this process, with one rate-limited warning), and everything recovers when Redis returns."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from genvault.providers import testmodel as tm
from redis_server import RedisServer, free_port


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "genvault._redis"]


async def test_with_redis_unreachable_generations_complete_and_single_flight_stays_local(
    vault_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="genvault._redis")
    provider = tm.TestProvider(tokens_per_second=100)
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"redis_url": closed})
    records = await asyncio.gather(*(vault.generate("Redis is down") for _ in range(5)))
    streamed = [c async for c in vault.replay(records[0].id)]
    finals = [await vault.wait(r.id) for r in records]
    assert {r.status for r in finals} == {"complete"}
    assert len({r.result_text for r in finals}) == 1
    assert provider.call_count == 1  # joined in this process
    assert "".join(c["delta"] for c in streamed if c["type"] == "text-delta") == finals[0].result_text
    again = await vault.wait((await vault.generate("Redis is down")).id)
    assert again.status == "complete"
    assert again.cached_from is None  # no shared cache while Redis is away
    warnings = redis_warnings(caplog)
    assert len(warnings) == 1  # rate-limited: many failures, one line
    assert "Redis unavailable" in warnings[0]
    assert vault.redis_health.down


@pytest.mark.slow
async def test_when_redis_returns_the_cache_and_streams_work_again(
    vault_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="genvault._redis")
    server = RedisServer()
    server.start()
    try:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"redis_url": server.url})
        first = await vault.wait((await vault.generate("Before the outage")).id)
        hit = await vault.wait((await vault.generate("Before the outage")).id)
        assert hit.cached_from == first.id

        server.kill()
        during = await vault.wait((await vault.generate("During the outage")).id)
        assert during.status == "complete"
        replayed = [c async for c in vault.replay(during.id)]
        assert "".join(c["delta"] for c in replayed if c["type"] == "text-delta") == during.result_text
        assert vault.redis_health.down

        server.start()
        await asyncio.sleep(vault.redis_health.retry_seconds)  # its pause after the last failure
        after = await vault.wait((await vault.generate("After the outage")).id)
        after_hit = await vault.wait((await vault.generate("After the outage")).id)
        assert after_hit.cached_from == after.id
        assert not vault.redis_health.down
        assert any("reachable again" in m for m in redis_warnings(caplog))
        assert provider.call_count == 3
    finally:
        server.kill()


@pytest.mark.slow
async def test_a_follower_in_another_process_gets_an_error_not_a_quiet_end_when_redis_dies(
    vault_factory: Any, tmp_path: Any
) -> None:
    """Two vaults on one database and one Redis are two processes to the hub (each follows the
    other's generations through Redis only). Redis dies mid-reply under B's follower: B's stream
    ends with an `error` chunk, never as if the reply were whole; A's generation completes."""
    server = RedisServer()
    server.start()
    try:
        gate = asyncio.Event()

        async def sleep(seconds: float) -> None:
            await (gate.wait() if seconds == 3600 else asyncio.sleep(seconds))

        provider = tm.TestProvider(tokens_per_second=0, sleep=sleep)
        overrides = {"redis_url": server.url, "redis_prefix": "gvtest:follow:"}
        producer = await vault_factory(providers={"offline": provider}, settings_overrides=overrides)
        follower = await vault_factory(providers={"offline": provider}, settings_overrides=overrides)
        provider.enqueue(tm.text("The first half"), tm.delay(3600), tm.text(" and the second half."))
        turn = await producer.chat(
            "c1", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}
        )
        assert not await follower.hub.local.exists(turn.generation.id)  # B follows through Redis

        chunks: list[dict[str, Any]] = []
        shown = ""
        async for chunk in follower.replay(turn.generation.id):
            chunks.append(chunk)
            if chunk["type"] == "text-delta":
                shown += chunk["delta"]
                if shown == "The first half":
                    server.kill()
                    gate.set()
        types = [c["type"] for c in chunks]
        assert types[-1] == "error", types
        assert "finish" not in types
        assert "reload" in chunks[-1]["errorText"]
        record = await producer.wait(turn.generation.id)
        assert record.status == "complete"
        assert record.result_text == "The first half and the second half."
    finally:
        server.kill()
