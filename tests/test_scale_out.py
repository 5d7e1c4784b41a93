"""Scale-out, shown: two `genvault serve` processes on PostgreSQL + Redis behind Debian's HAProxy.

Turns go through the balancer to both processes; one is killed with SIGKILL mid-stream. Its
streams resume through the balancer on the other (`GET /api/chat/{id}/stream`), whose sweeper
marks its generations `interrupted` with the text it had checkpointed; the other's own turns
finish whole; every turn the service acknowledged has its record and its user message.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genvault.store import Store
from redis_server import free_port
from test_two_processes import Server, sse_chunks, user_message

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HAPROXY_FOUND = os.path.exists(HAPROXY)
TURNS = 12


class Balancer:
    """HAProxy in front of `backends`, health-checking /healthz, retrying a refused connection on
    another backend (`option redispatch`): what a deployment runs in front of genvault.

    A check waits up to 5 s for /healthz (`timeout check`): without it HAProxy waits only `inter`
    (300 ms), and on this loaded machine (load 20+) both processes answered slower than that
    twice in a row while streaming, were both marked down, and a request got HAProxy's own 503.
    A killed process is still seen at once: its port refuses the connection."""

    def __init__(self, backends: list[Server], workdir: Path) -> None:
        self.port = free_port()
        config = workdir / "haproxy.cfg"
        servers = "\n".join(f"    server {s.name} 127.0.0.1:{s.port} check inter 300ms fall 2 rise 1" for s in backends)
        config.write_text(
            f"""global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 5s
    retries 3
    option redispatch
frontend genvault
    bind 127.0.0.1:{self.port}
    default_backend processes
backend processes
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""
        )
        self.log = workdir / "haproxy.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen([HAPROXY, "-f", str(config), "-db"], stdout=self._log_file, stderr=self._log_file)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        await ready(self)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


async def ready(process: Server | Balancer) -> None:
    """Until `process` answers /healthz (a generous ceiling: two cores shared by many)."""
    async with httpx.AsyncClient(base_url=process.url) as client:
        for _ in range(1200):
            if process.proc.poll() is not None:
                raise AssertionError(f"{process} exited: {process.log.read_text()}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{process} did not start: {process.log.read_text()}")


@pytest.fixture
def env(database_maker: Any, redis_settings: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # A migrated schema (the worker's template copy, as `database` gives): migrating an empty one
    # from scratch cost PostgreSQL ~0.6 s of CPU per test (the migrations have their own tests).
    url, schema = database_maker("postgres")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")},
        "GENVAULT_DATABASE_URL": url,
        "GENVAULT_DATABASE_SCHEMA": schema,
        "GENVAULT_REDIS_URL": redis_settings["redis_url"],
        "GENVAULT_REDIS_PREFIX": redis_settings["redis_prefix"],
        "GENVAULT_DATA_DIR": str(tmp_path),
        "GENVAULT_TEST_MODEL_TPS": "8",  # a reply of a few dozen tokens streams for several seconds
        "GENVAULT_CHECKPOINT_MS": "100",
        # Heartbeat every 2 s, sweep every 3 s: the resumes below reach b before it sweeps.
        "GENVAULT_LEASE_SECONDS": "6",
    }


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for thing in reversed(started):
        thing.stop()


def body(chat_id: str, n: int) -> dict[str, Any]:
    text = f"Tell me a long story, number {n}, slowly."
    return {"id": chat_id, "messages": [user_message(f"{chat_id}-u", text)], "trigger": "submit-message"}


async def start_turn(client: httpx.AsyncClient, chat_id: str, n: int) -> tuple[str, str]:
    """POST a turn through the balancer, read until the reply streams, hang up; (generation id,
    text seen so far)."""
    seen = []
    async with client.stream("POST", "/api/chat", json=body(chat_id, n)) as response:
        assert response.status_code == 200, await response.aread()
        generation_id = response.headers["X-Genvault-Generation-Id"]
        async for chunk in _chunks(response):
            if chunk.get("type") == "text-delta":
                seen.append(chunk["delta"])
                return generation_id, "".join(seen)
    raise AssertionError("the reply never streamed")


async def _chunks(response: httpx.Response) -> Any:
    import json

    async for line in response.aiter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[len("data: ") :])


async def owners(store: Store) -> dict[str, str]:
    from sqlalchemy import select

    from genvault.store.schema import generations

    async with store.read() as conn:
        rows = (await conn.execute(select(generations.c.id, generations.c.lease_owner))).all()
    return {row.id: row.lease_owner or "" for row in rows}


@pytest.mark.long
async def test_a_killed_process_behind_haproxy_loses_nothing_acknowledged(
    env: dict[str, str], stack: list[Any], tmp_path: Path
) -> None:
    if not HAPROXY_FOUND:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("under CI haproxy must be installed (./scripts/test installs it)")
        pytest.skip("haproxy is not installed (apt-get install -y haproxy)")
    store = Store(env["GENVAULT_DATABASE_URL"], schema=env["GENVAULT_DATABASE_SCHEMA"])
    await store.upgrade()
    try:
        a = Server("a", env, tmp_path / "a.log")
        b = Server("b", env, tmp_path / "b.log")
        stack.extend([a, b])
        await asyncio.gather(ready(a), ready(b))
        balancer = Balancer([a, b], tmp_path)
        stack.append(balancer)
        await balancer.ready()

        async with httpx.AsyncClient(base_url=balancer.url, timeout=60) as client:
            # A small load through the balancer: TURNS turns at once, spread over both processes.
            started = await asyncio.gather(*(start_turn(client, f"chat-{n}", n) for n in range(TURNS)))
            ids = [generation_id for generation_id, _seen in started]
            by_owner = await owners(store)
            on_a = [g for g in ids if by_owner[g].split(":")[1] == str(a.proc.pid)]
            on_b = [g for g in ids if by_owner[g].split(":")[1] == str(b.proc.pid)]
            assert on_a, "the balancer sent no turn to a"
            assert on_b, "the balancer sent no turn to b"
            assert len(on_a) + len(on_b) == TURNS
            for generation_id in ids:
                row = (await client.get(f"/api/generations/{generation_id}")).json()
                # `pending` too: the move to `streaming` is written behind the stream, and at load
                # ~30 it had not been yet when the first text had streamed.
                assert row["status"] in ("pending", "streaming"), f"{generation_id} ended before the kill: {row}"

            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)

            # Every chat resumes through the balancer (a's connections are refused: HAProxy
            # redispatches to b), to its end: a's end in `abort` once b's sweeper marks it.
            resumed = await asyncio.gather(
                *(asyncio.wait_for(client.get(f"/api/chat/chat-{n}/stream"), 60) for n in range(TURNS))
            )
            records = [(await client.get(f"/api/generations/{g}")).json() for g in ids]
            for _attempt in range(200):
                if all(r["status"] not in ("pending", "streaming") for r in records):
                    break
                await asyncio.sleep(0.1)
                records = [(await client.get(f"/api/generations/{g}")).json() for g in ids]
            messages = [(await client.get(f"/api/chats/chat-{n}/messages")).json() for n in range(TURNS)]
    finally:
        await store.aclose()

    resumed_from_a = 0
    for n, (generation_id, seen) in enumerate(started):
        record, response = records[n], resumed[n]
        chunks = sse_chunks(response.text) if response.status_code == 200 else []
        streamed = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
        if generation_id in on_a:
            assert record["status"] == "interrupted", record
            # What a checkpointed is kept, and is what its clients were shown.
            assert (record["result_text"] or "").startswith(seen) or seen.startswith(record["result_text"] or "")
            if response.status_code == 200:  # resumed on b from Redis: it ends, it does not hang
                assert chunks[-1] == {"type": "abort"}
                assert streamed.startswith(record["result_text"] or "")
                resumed_from_a += 1
            else:
                assert response.status_code == 204  # b had swept it already: nothing running
        else:
            assert record["status"] == "complete", record
            assert response.status_code == 200
            assert chunks[-1]["type"] == "finish"
            assert streamed == record["result_text"]
            assert record["result_text"].startswith(seen)
        # Every acknowledged turn kept its user message.
        texts = [
            part.get("text")
            for message in messages[n]["messages"]
            if message["role"] == "user"
            for part in message["parts"]
        ]
        assert texts == [f"Tell me a long story, number {n}, slowly."], messages[n]
    assert resumed_from_a > 0, "none of a's streams was resumed through the balancer"
