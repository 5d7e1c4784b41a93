"""Liveness is one heartbeat per process; checkpoints are one statement per flush; a saturated
server answers 503 with Retry-After, never 500 (on SQLite and PostgreSQL, in process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import func, select, update

from genvault._json import dump_json
from genvault.errors import Busy, GenvaultError
from genvault.liveness import TurnGate
from genvault.liveness.written import SAME, Written, common_prefix, message_append, next_checkpoint
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store import Store
from genvault.store import processes as processes_store
from genvault.store.schema import generations, processes


async def wait_for(predicate: Any, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def _true(value: bool) -> bool:
    return value


async def row(vault: Any, generation_id: str) -> Any:
    async with vault.store.read() as conn:
        return (await conn.execute(select(generations).where(generations.c.id == generation_id))).mappings().one()


async def streaming(vault: Any, generation_id: str) -> bool:
    return bool((await row(vault, generation_id))["status"] == "streaming")


def slow_provider() -> tm.TestProvider:
    provider = tm.TestProvider(tokens_per_second=0)
    # A long pause mid-reply: the generation is live and idle, as a slow model is.
    provider.enqueue(tm.text("first words "), tm.delay(60), tm.text("never reached"))
    return provider


class TestHeartbeat:
    @pytest.mark.long
    async def test_a_process_never_sweeps_its_own_live_generation_even_with_its_lease_long_expired(
        self, vault_factory: Any
    ) -> None:
        vault = await vault_factory(providers={"offline": slow_provider()})
        record = await vault.generate("q")
        await wait_for(lambda: streaming(vault, record.id))
        # The per-generation lease of old is long gone: only the process's heartbeat counts now.
        async with vault.store.write() as conn:
            await conn.execute(
                update(generations)
                .where(generations.c.id == record.id)
                .values(lease_expires_at=datetime.now(UTC) - timedelta(hours=1))
            )
        other = await vault_factory()  # another process on the same database, heartbeating
        assert await other.engine.sweep() == []
        assert await vault.engine.sweep() == []
        assert (await row(vault, record.id))["status"] == "streaming"
        assert vault.engine.is_running_here(record.id)
        assert not any("stuck" in p for p in (await vault.verify()).problems)  # its process heartbeats

    async def test_a_process_that_stopped_heartbeating_is_declared_dead_and_stops_its_runs_cleanly(
        self, vault_factory: Any
    ) -> None:
        a = await vault_factory(providers={"offline": slow_provider()})
        b = await vault_factory()
        record = await a.generate("q")
        await wait_for(lambda: streaming(a, record.id))
        await a.engine.liveness.flush()
        old_owner = a.engine.owner_id
        # A stalled: its row expired (as if its loop had stopped for longer than the lease).
        async with a.store.write() as conn:
            await conn.execute(
                update(processes)
                .where(processes.c.id == old_owner)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        swept = await b.engine.sweep()
        assert [r.id for r in swept] == [record.id]
        assert swept[0].status == "interrupted"
        assert swept[0].result_text == "first words "
        # A's next heartbeat finds itself declared dead: it stops the run, the record stays as B
        # marked it, and A carries on under a new id.
        assert await a.engine.liveness.beat() is False
        assert not a.engine.is_running_here(record.id)
        final = await a.get_generation(record.id)
        assert final.status == "interrupted"
        assert final.result_text == "first words "
        assert a.engine.owner_id != old_owner
        assert await a.engine.liveness.beat() is True
        async with a.store.read() as conn:
            dead_at = (await conn.execute(select(processes.c.dead_at).where(processes.c.id == old_owner))).scalar()
        assert dead_at is not None
        # New turns on A run under its new id and are left alone by B.
        a_provider = a.registry.resolve("offline/test-model")[0]
        a_provider.enqueue(tm.text("again"))
        again = await a.generate("q2")
        assert (await a.wait(again.id)).status == "complete"
        assert await b.engine.sweep() == []

    async def test_a_clean_exit_retires_the_row_and_a_generation_cancelled_elsewhere_stops_here(
        self, vault_factory: Any
    ) -> None:
        a = await vault_factory(providers={"offline": slow_provider()})
        b = await vault_factory()
        record = await a.generate("q")
        await wait_for(lambda: streaming(a, record.id))
        await b.cancel(record.id)  # B does not run it: it ends the record in the database
        await a.engine.liveness.beat()  # A's heartbeat checks its runs' statuses
        await wait_for(lambda: _not_running(a, record.id))
        assert (await a.get_generation(record.id)).status == "cancelled"
        owner = b.engine.owner_id
        await b.aclose()
        async with a.store.read() as conn:
            dead_at = (await conn.execute(select(processes.c.dead_at).where(processes.c.id == owner))).scalar()
        assert dead_at is not None


class TestCancelledElsewhere:
    """A reply cancelled from another process that ends here before this process notices (no
    checkpoint flush or heartbeat in between): its record stays `cancelled`, and still gets what
    was produced and paid for, so usage and budgets count it."""

    @staticmethod
    def gated_provider(gate: asyncio.Event) -> tm.TestProvider:
        async def sleep(seconds: float) -> None:
            if seconds >= 60:  # the scripted pause: until the test opens the gate
                await gate.wait()
            else:
                await asyncio.sleep(seconds)

        provider = tm.TestProvider(tokens_per_second=0, sleep=sleep)
        provider.enqueue(tm.text("first words "), tm.delay(60), tm.text("and the rest"))
        return provider

    @pytest.mark.parametrize("kind", ["generation", "chat turn"])
    async def test_a_reply_ending_before_its_process_notices_keeps_output_usage_and_cost(
        self, vault_factory: Any, kind: str
    ) -> None:
        gate = asyncio.Event()
        overrides = {"checkpoint_ms": 60_000, "price_overrides": _PRICES}
        a = await vault_factory(providers={"offline": self.gated_provider(gate)}, settings_overrides=overrides)
        b = await vault_factory(settings_overrides=overrides)
        if kind == "chat turn":
            message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]}
            generation_id = (await a.chat("c", message=message)).generation.id
        else:
            generation_id = (await a.generate("q")).id
        await wait_for(lambda: streaming(a, generation_id))
        assert (await b.cancel(generation_id)).status == "cancelled"  # in the database only
        gate.set()  # the reply ends on A, which has not seen the cancel
        await a.engine.wait(generation_id)
        record = await a.get_generation(generation_id)
        assert record.status == "cancelled"
        assert record.result_text == "first words and the rest"
        produced = len(tm.split_tokens("first words ")) + len(tm.split_tokens("and the rest"))
        assert record.usage.output_tokens == produced
        # $1 / $2 per million tokens: 1,000 / 2,000 nano-USD a token.
        assert record.cost_nano_usd == 1_000 * record.usage.input_tokens + 2_000 * record.usage.output_tokens
        if kind == "chat turn":
            history = await a.chat_messages("c")
            assert [m["role"] for m in history.messages] == ["user", "assistant"]
            assert history.messages[-1]["parts"][-1]["text"] == "first words and the rest"
            assert await a.active_generation("c") is None  # the chat takes a new turn


_PRICES = {"offline/test-model": {"input_mtok": "1", "output_mtok": "2"}}


async def _not_running(vault: Any, generation_id: str) -> bool:
    return not vault.engine.is_running_here(generation_id)


class TestCoalescedCheckpoints:
    async def test_one_flush_writes_every_dirty_generation_in_one_statement(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        ids = []
        for n in range(12):
            provider.enqueue(tm.text(f"reply {n} so far "), tm.delay(60))
            ids.append((await vault.generate(f"q{n}")).id)
        for generation_id in ids:
            await wait_for(lambda g=generation_id: streaming(vault, g))
        liveness = vault.engine.liveness
        flushes, written = liveness.flushes, liveness.checkpoints_written
        assert await liveness.flush() == 12
        assert (liveness.flushes - flushes, liveness.checkpoints_written - written) == (1, 12)
        for n, generation_id in enumerate(ids):
            assert (await row(vault, generation_id))["result_text"] == f"reply {n} so far "
        assert await liveness.flush() == 0  # nothing new: nothing written
        for generation_id in ids:
            await vault.cancel(generation_id)

    async def test_on_sqlite_checkpoints_are_grouped_writes(self, vault_factory: Any) -> None:
        # One hop and one transaction on the liveness store's writer connection, shared by the
        # checkpoints that queue together (store/sqlite_groups.py).
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        if vault.store.dialect != "sqlite":
            pytest.skip("SQLite's write groups")
        groups = vault.engine.liveness.store.sqlite_groups()
        provider.enqueue(tm.text("so far "), tm.delay(60))
        generation_id = (await vault.generate("q")).id
        await wait_for(lambda: streaming(vault, generation_id))  # its first-token mark, in a group
        await wait_for(lambda: _true(not groups._running))  # that group has ended
        writes = groups.writes
        assert await vault.engine.liveness.flush() == 1
        assert groups.writes == writes + 1
        assert (await row(vault, generation_id))["result_text"] == "so far "
        await vault.cancel(generation_id)

    async def test_a_chat_turns_checkpoint_carries_its_message_so_far(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("Partial answer "), tm.delay(60))
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        turn = await vault.chat(
            "chat-1", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
        )
        generation_id = turn.generation.id
        await wait_for(lambda: streaming(vault, generation_id))
        await vault.engine.liveness.flush()
        stored = await row(vault, generation_id)
        assert stored["result_text"] == "Partial answer "
        texts = [p.get("text") for p in stored["result_message"]["parts"] if p["type"] == "text"]
        assert texts == ["Partial answer "]
        await vault.cancel(generation_id)


class TestFirstTokens:
    async def test_on_sqlite_the_first_token_is_written_in_the_turns_write_groups(self, vault_factory: Any) -> None:
        # Not on the liveness store's connection: its commits made SQLite drop the turns' writer
        # connection's page cache (liveness/heartbeat.py).
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        if vault.store.dialect != "sqlite":
            pytest.skip("SQLite's write groups")
        turns, own = vault.store.sqlite_groups(), vault.engine.liveness.store.sqlite_groups()
        provider.enqueue(tm.text("so far "), tm.delay(60))
        before = turns.writes
        generation_id = (await vault.generate("q")).id
        await wait_for(lambda: streaming(vault, generation_id))  # its first-token mark, written
        await wait_for(lambda: _true(not turns._running and not own._running))  # and counted
        assert own.writes == 0  # no checkpoint is due (60 s), and the mark went elsewhere
        assert turns.writes >= before + 2  # the opening and the mark
        stored = await row(vault, generation_id)
        assert (stored["status"], stored["lease_owner"]) == ("streaming", vault.engine.owner_id)
        await vault.cancel(generation_id)

    async def test_the_writer_moves_started_streams_to_streaming_and_never_revives_an_ended_one(
        self, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider})
        ids = []
        for n in range(3):
            provider.enqueue(tm.text(f"reply {n} "), tm.delay(60))
            ids.append((await vault.generate(f"q{n}")).id)
        for generation_id in ids:
            await wait_for(lambda g=generation_id: streaming(vault, g))
            stored = await row(vault, generation_id)
            assert stored["first_token_at"] is not None
            assert stored["started_at"] is not None
            assert stored["lease_owner"] == vault.engine.owner_id
        await vault.cancel(ids[0])
        # A first token written late (its write failed and was retried) must not undo the cancel.
        now = datetime.now(UTC)
        vault.engine.liveness.first_token(ids[0], started_at=now, first_token_at=now)
        await vault.engine.liveness.write_marks()
        assert (await row(vault, ids[0]))["status"] == "cancelled"
        for generation_id in ids[1:]:
            await vault.cancel(generation_id)


class TestBackpressure:
    async def test_a_pool_timeout_is_busy_not_an_internal_error(self, database: tuple[str, str | None]) -> None:
        url, schema = database
        if url.endswith(":memory:"):
            pytest.skip("no pool")
        store = Store(url, schema=schema, pool_size=1, max_overflow=0, pool_timeout=0.2)
        try:
            async with store.read() as conn:
                await conn.execute(select(1))
                with pytest.raises(Busy):
                    async with store.read() as second:
                        await second.execute(select(1))
        finally:
            await store.aclose()

    async def test_the_gate_waits_a_bounded_time_then_refuses(self) -> None:
        gate = TurnGate(1, 0.05)
        async with gate.enter():
            with pytest.raises(Busy) as refused:
                async with gate.enter():
                    pass
        assert refused.value.retry_after >= 1
        assert gate.refused == 1
        async with gate.enter():  # free again
            assert gate.in_use == 1

    async def test_a_turn_waits_past_the_stall_time_while_the_queue_moves(self) -> None:
        # 250 turns ahead of it, each holding the one slot 20 ms: the last waits about 5 s, longer
        # than the 2 s stall time, and is let in, because another turn got through every 20 ms: a
        # busy database is not a stuck one. (150 turns once took 1.995 s under load: the loop's
        # timers fire up to a clock tick early, so a 20 ms sleep is not a 20 ms floor.)
        gate = TurnGate(1, 2.0, max_wait_seconds=600)
        loop = asyncio.get_running_loop()

        async def turn() -> None:
            async with gate.enter():
                await asyncio.sleep(0.02)

        async with gate.enter():
            ahead = [asyncio.create_task(turn()) for _ in range(250)]
            await wait_for(lambda: _true(gate.waiting == 250))
            started = loop.time()
            last = asyncio.create_task(turn())
        await last
        assert loop.time() - started > gate.stall_seconds
        await asyncio.gather(*ahead)
        assert gate.refused == 0

    async def test_a_slot_is_held_for_the_block_and_released_however_it_ends(self) -> None:
        # `enter()`'s uncontended step takes a slot without `Semaphore.acquire`: the count, the
        # release on an error, and a queued turn let in once a slot frees are the semaphore's.
        gate = TurnGate(2, 5.0)
        assert gate.enter() is gate.enter()  # one stateless context manager per gate
        seen: list[int] = []

        async def failing() -> None:
            async with gate.enter():
                seen.append(gate.in_use)
                raise RuntimeError("the block failed")

        with pytest.raises(RuntimeError):
            await failing()
        assert seen == [1]
        assert gate.in_use == 0
        async with gate.enter(), gate.enter():
            assert gate.in_use == 2
            waiter = asyncio.create_task(self._enter_and_count(gate))
            await wait_for(lambda: _true(gate.waiting == 1))
        assert await waiter == 1
        assert gate.in_use == 0
        assert gate._passed == 4
        assert gate.refused == 0

    @staticmethod
    async def _enter_and_count(gate: TurnGate) -> int:
        async with gate.enter():
            return gate.in_use

    async def test_a_moving_queue_is_still_waited_at_most_max_wait_seconds(self) -> None:
        gate = TurnGate(1, 30.0, max_wait_seconds=0.05)
        async with gate.enter():
            with pytest.raises(Busy, match="waited"):
                async with gate.enter():
                    pass
        assert gate.refused == 1


@pytest.fixture
async def saturated(vault_factory: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    vault = await vault_factory()
    vault.engine.gate = TurnGate(1, 0.05)
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield vault, client


async def count(vault: Any) -> int:
    async with vault.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(generations))).scalar_one())


async def test_a_saturated_server_answers_503_with_retry_after_and_writes_nothing(
    saturated: tuple[Any, httpx.AsyncClient],
) -> None:
    vault, client = saturated
    async with vault.engine.gate.enter():  # every turn slot taken
        chat = await client.post(
            "/api/chat",
            json={
                "id": "busy-chat",
                "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
                "trigger": "submit-message",
            },
        )
        generate = await client.post("/api/generate", json={"prompt": "hi"})
    assert chat.status_code == 503
    assert chat.headers["Retry-After"].isdigit()
    assert chat.headers["content-type"].startswith("text/plain")  # useChat shows it as error.message
    assert "busy" in chat.text
    assert generate.status_code == 503
    assert generate.json()["error"]["code"] == "busy"
    assert "Retry-After" in generate.headers
    assert await count(vault) == 0
    ok = await client.post("/api/generate", json={"prompt": "hi"})
    assert ok.status_code == 201, ok.text


async def test_prices_are_loaded_before_the_vault_reports_started(vault_factory: Any) -> None:
    from genvault import pricing

    pricing._bundled_snapshot.cache_clear()
    pricing._source.cache_clear()
    await vault_factory()
    assert pricing._bundled_snapshot.cache_info().currsize == 1
    assert pricing._source.cache_info().currsize == 1


async def test_sqlite_writers_of_one_process_queue_first_come_first_served(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path}/fifo.db")
    await store.upgrade()
    entered: list[int] = []

    async def writer(n: int) -> None:
        async with store.write() as conn:
            entered.append(n)
            await conn.execute(select(1))
            await asyncio.sleep(0.001)  # hold the lock across a turn of the loop

    try:
        tasks = []
        for n in range(40):
            tasks.append(asyncio.create_task(writer(n)))
            await asyncio.sleep(0)  # each asks in this order
        await asyncio.gather(*tasks)
    finally:
        await store.aclose()
    assert entered == list(range(40))


class TestQuietTrim:
    @pytest.mark.long
    def test_it_trims_once_per_quiet_spell_never_while_busy(self) -> None:
        from genvault.liveness.memory import QuietTrim, malloc_trim

        now = [0.0]
        trim = QuietTrim(quiet_seconds=1.0, clock=lambda: now[0])
        glibc = malloc_trim()  # False where the allocator has no such call: then it never trims
        assert trim.tick(busy=True) is False
        assert trim.tick(busy=False) is False  # quiet only just now
        now[0] = 0.5
        assert trim.tick(busy=False) is False
        now[0] = 1.5
        assert trim.tick(busy=False) is glibc
        now[0] = 10.0
        assert trim.tick(busy=False) is False  # nothing ran since: nothing to give back
        assert trim.tick(busy=True) is False
        now[0] = 11.0
        assert trim.tick(busy=False) is False
        now[0] = 12.5
        assert trim.tick(busy=False) is glibc
        assert trim.trims == (2 if glibc else 0)

    @pytest.mark.long
    async def test_a_quiet_server_forgets_finished_streams_and_gives_memory_back(self, vault_factory: Any) -> None:
        from genvault.liveness.memory import malloc_trim

        vault = await vault_factory(settings_overrides={"checkpoint_ms": 50, "stream_retain_seconds": 0.2})
        record = await vault.generate("q")
        await vault.wait(record.id)
        trims = vault.engine.liveness.trim.trims

        async def forgotten() -> bool:
            # Nothing else opens a stream: only the writer's quiet tick can have forgotten it.
            return not vault.hub._streams and (vault.engine.liveness.trim.trims > trims or not malloc_trim())

        await wait_for(forgotten, within=60)


class _Gate:
    """The test model's `sleep`: a pause (`tm.delay`) lasts until the test releases it."""

    def __init__(self) -> None:
        self.paused = asyncio.Event()
        self._go = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        self._go.clear()
        self.paused.set()
        await self._go.wait()

    async def next_pause(self) -> None:
        await asyncio.wait_for(self.paused.wait(), 20)
        self.paused.clear()

    def release(self) -> None:
        self._go.set()


class TestAppendOnlyCheckpoints:
    async def test_each_checkpoint_leaves_the_row_equal_to_the_reply_so_far(self, vault_factory: Any) -> None:
        gate = _Gate()
        provider = tm.TestProvider(tokens_per_second=0, sleep=gate)
        provider.enqueue(
            tm.reasoning("Thinking ‹é› "),
            tm.delay(1),
            tm.reasoning("harder. "),
            tm.text("Hello "),
            tm.delay(1),
            tm.text("wörld 🌍, "),
            tm.delay(1),
            tm.delay(1),  # nothing new: the row stays as it was
            tm.text("and more."),
            tm.delay(1),
        )
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        turn = await vault.chat(
            "chat-1", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
        )
        generation_id = turn.generation.id
        run = vault.engine._runs[generation_id]
        for _ in range(5):
            await gate.next_pause()
            await vault.engine.liveness.flush()
            await vault.engine.liveness.flush()  # a second flush with nothing new changes nothing
            stored = await row(vault, generation_id)
            assert stored["result_text"] == run.result_text
            assert stored["result_message"] == run.snapshot()
            gate.release()
        await vault.wait(generation_id)
        assert (await row(vault, generation_id))["result_text"] == "Hello wörld 🌍, and more."

    async def test_after_a_flush_that_committed_but_failed_the_next_leaves_the_row_equal_to_the_reply(
        self, vault_factory: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        gate = _Gate()
        provider = tm.TestProvider(tokens_per_second=0, sleep=gate)
        words = [tm.text("Hello "), tm.delay(1), tm.text("wörld, "), tm.delay(1), tm.text("again."), tm.delay(1)]
        provider.enqueue(*words)
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        if vault.store.dialect != "sqlite":
            pytest.skip("a commit the process sees fail: SQLite's grouped write, run then raised")
        turn = await vault.chat(
            "chat-1", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
        )
        generation_id = turn.generation.id
        run = vault.engine._runs[generation_id]
        write = processes_store.checkpoint_many_sqlite

        async def committed_then_failed(*args: Any, **kwargs: Any) -> set[str]:
            await write(*args, **kwargs)
            raise GenvaultError("the commit's answer was lost")

        await gate.next_pause()
        assert await vault.engine.liveness.flush() == 1
        gate.release()
        await gate.next_pause()
        with monkeypatch.context() as patched:
            patched.setattr(processes_store, "checkpoint_many_sqlite", committed_then_failed)
            assert await vault.engine.liveness.flush() == 0
        gate.release()
        await gate.next_pause()
        assert await vault.engine.liveness.flush() == 1
        stored = await row(vault, generation_id)
        assert stored["result_text"] == run.result_text == "Hello wörld, again."
        assert stored["result_message"] == run.snapshot()
        gate.release()
        await vault.wait(generation_id)

    async def test_after_a_flush_that_committed_but_failed_any_change_of_the_message_is_written_right(
        self, vault_factory: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A message whose change undoes the one the lost commit wrote: kept characters counted
        # against the text before that commit would keep the wrong ones.
        settings = {"checkpoint_ms": 60_000}
        vault = await vault_factory(providers={"offline": slow_provider()}, settings_overrides=settings)
        if vault.store.dialect != "sqlite":
            pytest.skip("a commit the process sees fail: SQLite's grouped write, run then raised")
        generation_id = (await vault.generate("q")).id
        await wait_for(lambda: streaming(vault, generation_id))
        liveness = vault.engine.liveness
        messages = iter(
            {"id": "m", "role": "assistant", "parts": [{"type": "text", "text": text}]} for text in ("ab", "xb", "abcd")
        )

        class Scripted:
            def __init__(self) -> None:
                self.generation_id, self.dirty, self.text = generation_id, True, ["first words "]
                self.snapshot = lambda: next(messages)

        scripted = Scripted()
        liveness.track(scripted)
        assert await liveness.flush() == 1
        write = processes_store.checkpoint_many_sqlite

        async def committed_then_failed(*args: Any, **kwargs: Any) -> set[str]:
            await write(*args, **kwargs)
            raise GenvaultError("the commit's answer was lost")

        scripted.dirty = True
        with monkeypatch.context() as patched:
            patched.setattr(processes_store, "checkpoint_many_sqlite", committed_then_failed)
            assert await liveness.flush() == 0
        assert (await row(vault, generation_id))["result_message"]["parts"][0]["text"] == "xb"
        assert await liveness.flush() == 1
        assert (await row(vault, generation_id))["result_message"]["parts"][0]["text"] == "abcd"
        await vault.cancel(generation_id)

    async def test_a_checkpoint_written_twice_writes_the_same_row(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("one two "), tm.delay(60))
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 60_000})
        generation_id = (await vault.generate("q")).id
        await wait_for(lambda: streaming(vault, generation_id))
        await vault.engine.liveness.flush()
        rows = [{"i": generation_id, "o": 8, "t": "three"}]
        for _ in range(2):  # as when a write committed but the process saw it fail, and retried
            async with vault.store.write() as conn:
                assert await processes_store.checkpoint_many(conn, rows, at=datetime.now(UTC)) == {generation_id}
        assert (await row(vault, generation_id))["result_text"] == "one two three"
        await vault.cancel(generation_id)


class TestMessageAppend:
    message: ClassVar[dict[str, Any]] = {
        "id": "m",
        "role": "assistant",
        "parts": [{"type": "step-start"}, {"type": "text", "text": "ab"}],
    }

    def grown(self, text: str, **changes: Any) -> dict[str, Any]:
        return {**self.message, "parts": [{"type": "step-start"}, {"type": "text", "text": text, **changes}]}

    def test_only_text_appended_to_one_part_is_an_append(self) -> None:
        assert message_append(self.message, self.grown("abcd")) == (1, 2, "cd")
        assert message_append(self.message, self.grown("ab")) is SAME

    def test_anything_else_is_written_whole(self) -> None:
        assert message_append(None, self.message) is None
        assert message_append(self.message, self.grown("xbcd")) is None  # not a prefix
        assert message_append(self.message, self.grown("abc", state="done")) is None
        assert message_append(self.message, {**self.grown("abc"), "metadata": {"a": 1}}) is None
        assert message_append(self.message, {**self.message, "parts": [*self.message["parts"], {"type": "x"}]}) is None
        two = {**self.message, "parts": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        both = {**self.message, "parts": [{"type": "text", "text": "a1"}, {"type": "text", "text": "b1"}]}
        assert message_append(two, both) is None

    def test_as_text_the_message_sends_only_what_follows_the_characters_it_keeps(self) -> None:
        row, written = next_checkpoint("g", [], self.message, Written(), as_text=True)
        assert (row["x"], row["r"]) == (0, dump_json(self.message))
        row, grown = next_checkpoint("g", [], self.grown("abcé"), written, as_text=True)
        assert row["r"] == 'cé"}]}'  # the text appended, and what closes the part and the message
        assert dump_json(self.message)[: row["x"]] + row["r"] == dump_json(self.grown("abcé"))
        row, _ = next_checkpoint("g", [], self.grown("abcé"), grown, as_text=True)
        assert row.keys() == {"i", "o", "t"}  # nothing changed: the column stays
        row, _ = next_checkpoint("g", [], self.grown("xbc"), grown, as_text=True)  # not an append
        assert dump_json(self.grown("abcé"))[: row["x"]] + row["r"] == dump_json(self.grown("xbc"))

    def test_common_prefix_is_the_length_both_start_with(self) -> None:
        import random

        rng = random.Random(15)
        for _ in range(500):
            a = "".join(rng.choice("ab") for _ in range(rng.randrange(0, 200)))
            b = a[: rng.randrange(0, len(a) + 1)] + "".join(rng.choice("abc") for _ in range(rng.randrange(0, 80)))
            expected = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            assert common_prefix(a, b) == common_prefix(b, a) == expected

    def test_the_next_checkpoint_sends_the_text_since_the_last_one(self) -> None:
        text = ["ab", "c"]
        row, written = next_checkpoint("g", text, None, Written())
        assert row == {"i": "g", "o": 0, "t": "abc"}
        text += ["d", "é"]
        row, written = next_checkpoint("g", text, None, written)
        assert row == {"i": "g", "o": 3, "t": "dé"}
        row, _ = next_checkpoint("g", ["replaced"], None, written)  # a new list: written whole
        assert row == {"i": "g", "o": 0, "t": "replaced"}

    def test_a_checkpoint_leaves_the_run_one_piece_of_text_per_checkpoint(self) -> None:
        text = ["a", "b", "c"]
        row, written = next_checkpoint("g", text, None, Written())
        assert text == ["abc"]
        text += ["d", "e"]
        row, _unsaved = next_checkpoint("g", text, None, written)  # say this write fails
        assert (row["o"], row["t"], text) == (3, "de", ["abc", "de"])
        text.append("f")
        row, written = next_checkpoint("g", text, None, written)  # the write above failed: again
        assert (row["o"], row["t"], text) == (3, "def", ["abc", "def"])
        row, _ = next_checkpoint("g", text, None, written)
        assert (row["o"], row["t"], text) == (6, "", ["abc", "def"])
        assert "".join(text) == "abcdef"
