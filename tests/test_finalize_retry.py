"""PostgreSQL backends terminated while a reply is finalized (issue 14, item 1): the client is
told `finish` only once the record and the chat message are committed; a dropped connection is
retried (finalize is idempotent); a finalize that cannot be done ends the stream with an `error`
instead, and the record is then written as that error, not left `streaming` for the sweeper."""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.providers import testmodel as tm
from genvault.store import chats as chat_store
from genvault.store import finishes
from genvault.store import generations as gen_store
from genvault.store.driver import PooledDriver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def database(database_maker: Any) -> tuple[str, str | None]:
    made: tuple[str, str | None] = database_maker("postgres")
    return made


class Terminator:
    """Terminates the PostgreSQL backend a finalize runs on, at a chosen statement of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kills: Counter[str] = Counter()  # generation id -> terminations left
        self.forever: set[str] = set()
        self.done: Counter[str] = Counter()

    async def strike(self, conn: AsyncConnection, generation_id: str) -> None:
        if self.armed(generation_id):
            await self.strike_pid((await conn.execute(text("SELECT pg_backend_pid()"))).scalar(), generation_id)

    def armed(self, generation_id: str) -> bool:
        return generation_id in self.forever or self.kills[generation_id] > 0

    async def strike_pid(self, pid: int, generation_id: str) -> None:
        self.kills[generation_id] -= 1
        admin = await asyncpg.connect(self.url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        self.done[generation_id] += 1


@pytest.fixture
def terminator(monkeypatch: pytest.MonkeyPatch, database: tuple[str, str | None]) -> Terminator:
    killer = Terminator(database[0])
    finalize, free_chat = gen_store.finalize, chat_store.free_chat
    where: dict[str, str] = {}

    async def finalize_then(conn: AsyncConnection, generation_id: str, values: dict[str, Any]) -> bool:
        if where.get(generation_id, "finalize") == "finalize":
            await killer.strike(conn, generation_id)
        return await finalize(conn, generation_id, values)

    async def free_chat_then(conn: AsyncConnection, chat_id: str, generation_id: str) -> None:
        # After the generation's update and the assistant message, before COMMIT.
        await free_chat(conn, chat_id, generation_id)
        if where.get(generation_id) == "commit":
            await killer.strike(conn, generation_id)

    # The one-step finalize (`store.finishes`, autocommit, so no COMMIT of its own to strike
    # before): terminated as its statement is sent, at either place; the engine then goes on to
    # the transaction above, struck there as planned while terminations are left. (Its answer
    # lost after it committed: `test_turn_statements`.)
    finishing: contextvars.ContextVar[str | None] = contextvars.ContextVar("finishing", default=None)
    finish_postgresql, run = finishes._finish_postgresql, PooledDriver.run

    async def finish_then(store: Any, generation_id: str, *args: Any) -> bool:
        token = finishing.set(generation_id)
        try:
            return await finish_postgresql(store, generation_id, *args)
        finally:
            finishing.reset(token)

    async def run_then(self: PooledDriver, call: Any, *, what: str) -> Any:
        generation_id = finishing.get()
        if generation_id is None or not killer.armed(generation_id):
            return await run(self, call, what=what)
        await killer.strike_pid(await self.connection.fetchval("SELECT pg_backend_pid()"), generation_id)
        return await run(self, call, what=what)

    monkeypatch.setattr(gen_store, "finalize", finalize_then)
    monkeypatch.setattr(chat_store, "free_chat", free_chat_then)
    monkeypatch.setattr(finishes, "_finish_postgresql", finish_then)
    monkeypatch.setattr(PooledDriver, "run", run_then)
    killer.where = where  # type: ignore[attr-defined]
    return killer


def user(message_id: str, text_: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text_}]}


async def test_terminated_backends_at_finalize_never_lose_a_reply_the_client_saw_finish(
    vault_factory: Any, terminator: Terminator
) -> None:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"finalize_retry_seconds": 2.0})
    # (where, terminations): once before the update, once just before COMMIT (the message written),
    # twice, and on every try for longer than the retry budget.
    plans = [("finalize", 1), ("commit", 1), ("finalize", 2), ("commit", 2), ("finalize", -1), ("commit", -1)]
    outcomes = []
    for turn, (where, kills) in enumerate(plans):
        chat_id = f"chat-{turn}"
        reply = f"Answer number {turn}, which the client reads to its end."
        provider.enqueue(tm.text(reply))
        # `chat` returns right after creating the reply's task, which has not run yet: the
        # terminations are armed before it can reach its finalize.
        started = await vault.chat(chat_id, message=user(f"u{turn}", f"question {turn}"))
        generation_id = started.generation.id
        terminator.where[generation_id] = where  # type: ignore[attr-defined]
        if kills < 0:
            terminator.forever.add(generation_id)
        else:
            terminator.kills[generation_id] = kills
        chunks = [c async for c in vault.stream(generation_id)]
        terminator.forever.discard(generation_id)
        types = [c["type"] for c in chunks]
        async with asyncio.timeout(20):  # left `streaming`, it would wait for the sweeper
            record = await vault.wait(generation_id)
        messages = (await vault.chat_messages(chat_id)).messages
        assert terminator.done[generation_id] >= (kills if kills > 0 else 2), (where, kills)
        assert record.status not in ("pending", "streaming")
        stored = messages[-1]
        assert stored["role"] == "assistant"
        assert stored["id"] == started.message_id
        shown = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
        assert "".join(p["text"] for p in stored["parts"] if p["type"] == "text") == shown == reply
        if "finish" in types:
            assert types[-1] == "finish"
            assert "error" not in types
            assert record.status == "complete"
            assert "status" not in stored["metadata"]["genvault"]
            outcomes.append("finish")
        else:
            # Not saved in time: told so, and the record says the same, with the reply kept.
            assert types[-1] == "error", types
            assert kills < 0
            assert record.status == "error"
            assert record.error is not None
            assert "could not be saved" in record.error
            assert stored["metadata"]["genvault"]["status"] == "error"
            outcomes.append("error")
    assert outcomes == [("error" if kills < 0 else "finish") for _where, kills in plans]
