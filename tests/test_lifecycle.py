"""The generation lifecycle through the Vault, on SQLite and PostgreSQL: pending before the call,
streaming with checkpoints, one final state, idempotency, cancel, errors, sweeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from genvault.errors import Conflict, InvalidRequest, NotFound
from genvault.providers import testmodel as tm
from genvault.providers.base import ModelRequest
from genvault.store import generations as gen_store
from genvault.store.schema import generations


async def count_rows(vault: Any) -> int:
    async with vault.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(generations))).scalar_one())


async def wait_for(predicate: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class TestPendingBeforeTheCall:
    async def test_the_pending_row_is_committed_before_the_provider_receives_the_request(
        self, vault_factory: Any
    ) -> None:
        seen: list[tuple[str, str]] = []
        provider = tm.TestProvider(tokens_per_second=0)
        vault_holder: dict[str, Any] = {}

        async def on_request(request: ModelRequest) -> None:
            # A separate connection sees only committed data.
            vault = vault_holder["vault"]
            async with vault.store.read() as conn:
                rows = (await conn.execute(select(generations.c.id, generations.c.status))).all()
            seen.extend((row.id, row.status) for row in rows)

        provider.on_request = on_request
        vault = await vault_factory(providers={"offline": provider})
        vault_holder["vault"] = vault
        record = await vault.generate("hello")
        assert record.status == "pending"
        await vault.wait(record.id)
        assert seen == [(record.id, "pending")]


class TestCompleteGeneration:
    async def test_a_generation_ends_complete_with_text_usage_and_timings(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("Hello there, world"), tm.usage(input=7, output=4))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("Say hello", model="offline/test-model")
        final = await vault.wait(record.id)
        assert final.status == "complete"
        assert final.result_text == "Hello there, world"
        assert final.usage.input_tokens == 7
        assert final.usage.output_tokens == 4
        assert final.finish_reason == "stop"
        assert final.created_at <= final.started_at <= final.first_token_at <= final.finished_at  # type: ignore[operator]
        assert final.model == "offline/test-model"
        assert final.provider == "offline"
        assert final.request == {"prompt": "Say hello", "params": {}}
        assert final.url == f"/generate/{record.id}"

    async def test_the_stream_is_a_valid_ui_message_stream_and_replays_identically(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.reasoning("Let me think"), tm.text("Answer"))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("q")
        live = [chunk async for chunk in vault.stream(record.id)]
        replay = [chunk async for chunk in vault.stream(record.id)]
        assert live == replay
        types = [c["type"] for c in live]
        assert types == [
            "start",
            "start-step",
            "reasoning-start",
            *["reasoning-delta"] * (types.count("reasoning-delta")),
            "reasoning-end",
            "text-start",
            *["text-delta"] * (types.count("text-delta")),
            "text-end",
            "finish-step",
            "finish",
        ]
        assert live[0] == {"type": "start", "messageId": record.id}
        from_three = [chunk async for chunk in vault.stream(record.id, start=3)]
        assert from_three == live[3:]

    async def test_a_consumer_that_goes_away_neither_stops_nor_loses_the_generation(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("one two three four five six"), tm.delay(0.05), tm.text(" seven"))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("count")
        async for _chunk in vault.stream(record.id):
            break  # the client disconnects after the first chunk
        final = await vault.wait(record.id)
        assert final.status == "complete"
        assert final.result_text == "one two three four five six seven"


class TestCheckpoints:
    async def test_partial_output_reaches_the_database_while_streaming(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("first part."), tm.delay(1.0), tm.text(" second part."))
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"checkpoint_ms": 50})
        record = await vault.generate("go")

        async def checkpointed() -> bool:
            async with vault.store.read() as conn:
                row = await gen_store.get(conn, record.id)
            return row.status == "streaming" and row.result_text == "first part."

        await wait_for(checkpointed, within=0.9)
        final = await vault.wait(record.id)
        assert final.result_text == "first part. second part."
        assert final.checkpoint_at is not None

    async def test_finalizing_twice_changes_nothing(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        record = await vault.generate("x")
        final = await vault.wait(record.id)
        async with vault.store.write() as conn:
            changed = await gen_store.finalize(conn, record.id, {"status": "error", "error": "late"})
        assert changed is False
        assert await vault.get_generation(record.id) == final


class TestFailures:
    async def test_a_provider_error_mid_stream_ends_error_with_the_message_and_the_partial_text(
        self, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("partial answer"), tm.error("model overloaded", status=529))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("q")
        chunks = [c async for c in vault.stream(record.id)]
        final = await vault.wait(record.id)
        assert final.status == "error"
        assert final.error is not None
        assert "model overloaded" in final.error
        assert final.result_text == "partial answer"
        assert {"type": "error", "errorText": final.error} in chunks

    async def test_cancel_ends_cancelled_and_keeps_the_partial_output(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("so far"), tm.delay(30), tm.text(" never"))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("q")

        async def has_text() -> bool:
            run = vault.engine._runs.get(record.id)
            return bool(run and run.result_text)

        await wait_for(has_text)
        cancelled = await vault.cancel(record.id)
        assert cancelled.status == "cancelled"
        assert cancelled.result_text == "so far"
        assert cancelled.finished_at is not None
        chunks = [c async for c in vault.stream(record.id)]
        assert chunks[-1] == {"type": "abort"}
        again = await vault.cancel(record.id)  # cancelling twice is harmless
        assert again == cancelled

    async def test_cancelling_a_finished_generation_is_a_conflict(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        record = await vault.generate("x")
        await vault.wait(record.id)
        with pytest.raises(Conflict, match="already ended complete"):
            await vault.cancel(record.id)


class TestIdempotency:
    async def test_a_repeated_request_with_the_same_key_returns_the_same_record_without_a_second_call(
        self, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider})
        first = await vault.generate("hello", idempotency_key="k1")
        second = await vault.generate("hello", idempotency_key="k1")
        assert second.id == first.id
        await vault.wait(first.id)
        third = await vault.generate("hello", idempotency_key="k1")
        assert third.id == first.id
        assert third.status == "complete"
        assert provider.call_count == 1
        assert await count_rows(vault) == 1

    async def test_concurrent_requests_with_one_key_make_one_record(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider})
        records = await asyncio.gather(*(vault.generate("same", idempotency_key="k") for _ in range(8)))
        assert len({r.id for r in records}) == 1
        await vault.wait(records[0].id)
        assert provider.call_count == 1

    async def test_reusing_a_key_for_a_different_request_is_a_conflict(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        await vault.generate("hello", idempotency_key="k1")
        with pytest.raises(Conflict, match="different request"):
            await vault.generate("something else", idempotency_key="k1")


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"prompt": ""}, "prompt is empty"),
            ({"prompt": "   "}, "prompt is empty"),
            ({"prompt": "x", "model": "gpt-4o"}, "provider/model"),
            ({"prompt": "x", "model": "nosuch/model"}, "nosuch"),
            ({"prompt": "x", "model": "openai/"}, "provider/model"),
            ({"prompt": "x", "model": "openai/gpt-4o-mini"}, "OPENAI_API_KEY"),
            ({"prompt": "x", "params": {"temperature": 5}}, "temperature"),
            ({"prompt": "x", "params": {"max_tokens": -1}}, "max_tokens"),
            ({"prompt": "x", "params": {"bogus": 1}}, "bogus"),
            ({"prompt": "nul \x00 inside"}, "NUL"),
            ({"prompt": "lone \ud800 surrogate"}, "surrogate"),
        ],
    )
    async def test_bad_input_is_refused_with_a_clear_error_and_no_row(
        self, vault_factory: Any, kwargs: dict[str, Any], message: str
    ) -> None:
        vault = await vault_factory()
        options = dict(kwargs)  # parametrize shares the dict between the SQLite and PostgreSQL runs
        prompt = options.pop("prompt")
        with pytest.raises(InvalidRequest, match=message):
            await vault.generate(prompt, **options)
        assert await count_rows(vault) == 0

    async def test_a_negative_list_limit_is_refused(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        with pytest.raises(InvalidRequest, match="limit"):
            await vault.list_generations(limit=-1)

    async def test_another_users_generation_is_not_found(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        await vault.ensure_user("alice")
        record = await vault.generate("mine", user_id="alice")
        with pytest.raises(NotFound):
            await vault.get_generation(record.id, user_id="local")
        with pytest.raises(NotFound):
            await vault.cancel(record.id, user_id="local")


class TestSweeper:
    async def test_an_expired_lease_is_marked_interrupted_with_its_checkpointed_text(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        await vault.ensure_user("bob")
        past = datetime.now(UTC) - timedelta(minutes=5)
        async with vault.store.write() as conn:
            await gen_store.insert_pending(
                conn,
                {
                    "id": "gen_orphan",
                    "kind": "text",
                    "user_id": "bob",
                    "model": "offline/test-model",
                    "provider": "offline",
                    "request": {"prompt": "p"},
                    "created_at": past,
                    "lease_owner": "elsewhere:1:abc",
                    "lease_expires_at": past,
                },
            )
            await conn.execute(
                update(generations)
                .where(generations.c.id == "gen_orphan")
                .values(status="streaming", result_text="checkpointed words")
            )
        swept = await vault.engine.sweep()
        assert [r.id for r in swept] == ["gen_orphan"]
        record = await vault.get_generation("gen_orphan", user_id="bob")
        assert record.status == "interrupted"
        assert record.result_text == "checkpointed words"
        assert await vault.engine.sweep() == []  # once only

    async def test_a_live_lease_of_a_running_generation_is_left_alone(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("slow"), tm.delay(0.5))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("q")
        assert await vault.engine.sweep() == []
        assert (await vault.wait(record.id)).status == "complete"


class TestListing:
    async def test_lists_page_newest_first_with_filters(self, vault_factory: Any) -> None:
        vault = await vault_factory()
        ids = []
        for i in range(5):
            record = await vault.generate(f"prompt {i}")
            await vault.wait(record.id)
            ids.append(record.id)
        first = await vault.list_generations(limit=2)
        second = await vault.list_generations(limit=2, cursor=first.next_cursor)
        third = await vault.list_generations(limit=2, cursor=second.next_cursor)
        listed = [r.id for page in (first, second, third) for r in page.items]
        assert listed == list(reversed(ids))
        assert third.next_cursor is None
        assert (await vault.list_generations(status="error")).items == []
        assert len((await vault.list_generations(model="offline/test-model")).items) == 5
        with pytest.raises(InvalidRequest, match="cursor"):
            await vault.list_generations(cursor="not-a-cursor")

    async def test_usage_groups_tokens_by_model_user_and_day(self, vault_factory: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("a"), tm.usage(input=10, output=5))
        provider.enqueue(tm.text("b"), tm.usage(input=20, output=7))
        vault = await vault_factory(providers={"offline": provider})
        await vault.ensure_user("carol")
        for prompt, user in (("a", "local"), ("b", "carol")):
            record = await vault.generate(prompt, user_id=user)
            await vault.wait(record.id, user_id=user)
        by_model = await vault.usage(group_by="model")
        assert [(r.key, r.generations, r.input_tokens, r.output_tokens) for r in by_model] == [
            ("offline/test-model", 2, 30, 12)
        ]
        assert by_model[0].unpriced_generations == 2  # the test model has no price: unknown, not free
        by_user = {r.key: r.input_tokens for r in await vault.usage(group_by="user")}
        assert by_user == {"local": 10, "carol": 20}
        by_day = await vault.usage(group_by="day")
        assert [r.key for r in by_day] == [datetime.now(UTC).strftime("%Y-%m-%d")]
