"""Acceptance: two `genvault serve` processes sharing PostgreSQL and Redis behave as one service.

A chat reply started on A is resumed from B mid-stream and arrives whole and identical; when A is
killed with SIGKILL mid-stream, B's sweeper marks the record `interrupted` after the lease, with
the text A had checkpointed, and B's followers get an `abort` instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genvault.store import Store
from redis_server import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


class Server:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "genvault", "serve", "--port", str(self.port)],
            env={**env, "GENVAULT_PORT": str(self.port)},
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(1200):  # a generous ceiling: imports alone take 10 s on a loaded machine
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited: {self.log.read_text()}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


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
        "GENVAULT_TEST_MODEL_TPS": "12",  # a reply of a few dozen tokens streams for a few seconds
        "GENVAULT_CHECKPOINT_MS": "100",
        # Heartbeat every 2 s, sweep every 3 s: a 2 s lease let B sweep a live A that a load of
        # ~30 had kept from heartbeating in time, interrupting the reply B was to see complete.
        "GENVAULT_LEASE_SECONDS": "6",
    }


@pytest.fixture
def servers(env: dict[str, str], tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def user_message(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def sse_chunks(body: str) -> list[dict[str, Any]]:
    lines = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


async def start_reply(server: Server, chat_id: str, text: str) -> str:
    """POST the message on `server`, read until the reply streams, then hang up (it keeps running)."""
    body = {"id": chat_id, "messages": [user_message(f"{chat_id}-u", text)], "trigger": "submit-message"}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        client.stream("POST", "/api/chat", json=body) as response,
    ):
        assert response.status_code == 200, await response.aread()
        generation_id = response.headers["X-Genvault-Generation-Id"]
        async for line in response.aiter_lines():
            if '"text-delta"' in line:
                return generation_id
    raise AssertionError("the reply never streamed")


@pytest.mark.long
async def test_a_reply_started_on_one_process_resumes_whole_on_another(
    env: dict[str, str], servers: list[Server], tmp_path: Path
) -> None:
    # Install the schema first, so the two processes start side by side and both find it current.
    store = Store(env["GENVAULT_DATABASE_URL"], schema=env["GENVAULT_DATABASE_SCHEMA"])
    await store.upgrade()
    await store.aclose()
    a = Server("A", env, tmp_path / "a.log")
    b = Server("B", env, tmp_path / "b.log")
    servers.extend([a, b])
    await asyncio.gather(a.ready(), b.ready())

    generation_id = await start_reply(a, "shared-chat", "Tell me about two processes.")
    async with httpx.AsyncClient(timeout=30) as client:
        resumed = await client.get(f"{b.url}/api/chat/shared-chat/stream")
        assert resumed.status_code == 200, "the reply ended before B resumed it (machine too slow?)"
        assert resumed.headers["X-Genvault-Generation-Id"] == generation_id
        original = await client.get(f"{a.url}/api/generations/{generation_id}/stream")
        record = (await client.get(f"{b.url}/api/generations/{generation_id}")).json()
    assert record["status"] == "complete"
    chunks = sse_chunks(resumed.text)
    assert chunks[0]["type"] == "start"
    assert chunks[-1]["type"] == "finish"
    # Byte-identical from the first chunk, but for the generation route's `id:` lines (its SSE
    # carries event ids for `Last-Event-ID`; the AI SDK resume route does not).
    assert resumed.text == "".join(
        line for line in original.text.splitlines(keepends=True) if not line.startswith("id: ")
    )
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == record["result_text"]

    # Kill A mid-stream while B follows the next reply.
    killed_id = await start_reply(a, "doomed-chat", "Tell me something long before you are killed.")
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as client:
        following = asyncio.create_task(client.get("/api/chat/doomed-chat/stream"))
        for _ in range(300):
            row = (await client.get(f"/api/generations/{killed_id}")).json()
            # `pending` too: the move to `streaming` is written behind the stream.
            assert row["status"] in ("pending", "streaming"), f"it ended before A could be killed: {row}"
            if len((row["result_text"] or "").split()) >= 3:
                break
            await asyncio.sleep(0.05)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        checkpointed = (await client.get(f"/api/generations/{killed_id}")).json()["result_text"]

        for _ in range(300):  # lease 6 s, B sweeps every 3 s
            final = (await client.get(f"/api/generations/{killed_id}")).json()
            if final["status"] not in ("pending", "streaming"):
                break
            await asyncio.sleep(0.1)
        followed = await asyncio.wait_for(following, 60)
    assert final["status"] == "interrupted"
    assert final["result_text"] == checkpointed
    assert len(checkpointed.split()) >= 3
    streamed = sse_chunks(followed.text)
    assert streamed[-1] == {"type": "abort"}
    assert "".join(c["delta"] for c in streamed if c["type"] == "text-delta").startswith(checkpointed)
