"""The dedup cache and single-flight through the Vault, for the SQL and the Redis backend, on
SQLite and PostgreSQL: identical requests never call the provider twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from genvault.cache import CachePolicy, SqlCache, cache_key
from genvault.errors import InvalidRequest
from genvault.providers import testmodel as tm
from genvault.providers.base import ModelRequest, ToolSpec
from genvault.store.schema import cache_entries

PRICES = {"offline/test-model": {"input_mtok": "1", "output_mtok": "2"}}


@pytest.fixture
def make_vault(vault_factory: Any, cache_backend: dict[str, str]) -> Any:
    async def make(provider: tm.TestProvider, **settings: Any) -> Any:
        overrides = {"price_overrides": PRICES, **cache_backend, **settings}
        return await vault_factory(providers={"offline": provider}, settings_overrides=overrides)

    return make


async def finished(vault: Any, record: Any, user_id: str = "local") -> Any:
    return await vault.wait(record.id, user_id=user_id)


class TestTheCacheKey:
    def request(self, **changes: Any) -> ModelRequest:
        values: dict[str, Any] = {
            "model": "test-model",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "system": None,
            "params": {"temperature": 0.5},
        }
        values.update(changes)
        return ModelRequest(**values)

    def test_the_same_request_gives_the_same_key_with_its_algorithm_named(self) -> None:
        a = cache_key(model="offline/test-model", request=self.request(), user_id="u")
        b = cache_key(model="offline/test-model", request=self.request(), user_id="u")
        assert a == b
        assert a.startswith("sha256:")

    @pytest.mark.parametrize(
        "changes",
        [
            {"system": "be brief"},
            {"params": {"temperature": 0.6}},
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi!"}]}]},
            {"tools": [ToolSpec(name="weather")]},
        ],
    )
    def test_anything_that_changes_the_output_changes_the_key(self, changes: dict[str, Any]) -> None:
        base = cache_key(model="offline/test-model", request=self.request(), user_id="u")
        assert cache_key(model="offline/test-model", request=self.request(**changes), user_id="u") != base

    def test_a_key_is_what_it_was_when_stored(self) -> None:
        # Keys are stored (the SQL cache, Redis): the material's canonical JSON and its hash may not drift.
        schema = {"type": "object", "b": 1, "a": [1.5, None]}
        request = self.request(
            messages=[{"role": "user", "content": [{"type": "text", "text": "héllo ✓"}]}],
            system="be brief",
            params={"temperature": 0.5, "max_tokens": 3},
            tools=[ToolSpec(name="weather", description="d", input_schema=schema)],
        )
        assert (
            cache_key(model="offline/test-model", request=request, user_id="u")
            == "sha256:ce4b9f2f81e3bc522f4278af88c5c896985b81f61ec421bc4ccf0d216a3e21e2"
        )

    def test_the_model_and_the_user_scope_change_the_key(self) -> None:
        base = cache_key(model="offline/test-model", request=self.request(), user_id="u")
        assert cache_key(model="openai/gpt-4o", request=self.request(), user_id="u") != base
        assert cache_key(model="offline/test-model", request=self.request(), user_id="v") != base
        assert cache_key(model="offline/test-model", request=self.request(), user_id=None) != base


class TestRepeatedRequests:
    async def test_a_repeated_request_is_answered_from_the_cache_as_its_own_record(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        first = await finished(vault, await vault.generate("What is a vault?"))
        second = await finished(vault, await vault.generate("What is a vault?"))
        assert provider.call_count == 1
        assert first.id != second.id
        assert (first.status, second.status) == ("complete", "complete")
        assert second.cached_from == first.id
        assert second.result_text == first.result_text
        assert second.cost_nano_usd == 0
        assert first.cost_nano_usd
        assert first.cost_nano_usd > 0
        assert second.saved_nano_usd == first.cost_nano_usd
        assert first.cached_from is None
        assert first.saved_nano_usd is None
        assert first.cache_key == second.cache_key is not None

    async def test_a_hit_streams_the_same_reply_under_its_own_ids(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        first = await finished(vault, await vault.generate("Stream it"))
        second = await finished(vault, await vault.generate("Stream it"))
        chunks = [c async for c in vault.replay(second.id)]
        assert chunks[0] == {"type": "start", "messageId": second.message_id}
        assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == first.result_text
        assert chunks[-1]["type"] == "finish"

    async def test_after_the_ttl_the_provider_is_called_again(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider, cache_ttl_seconds=0.3)
        await finished(vault, await vault.generate("Expiring"))
        await asyncio.sleep(0.4)
        again = await finished(vault, await vault.generate("Expiring"))
        assert provider.call_count == 2
        assert again.cached_from is None

    async def test_a_per_request_ttl_refuses_an_older_answer(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        await finished(vault, await vault.generate("Fresh only"))
        await asyncio.sleep(0.2)
        again = await finished(vault, await vault.generate("Fresh only", cache_ttl=0.1))
        assert provider.call_count == 2
        assert again.cached_from is None

    async def test_cache_false_always_calls_the_provider(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        for _ in range(3):
            record = await finished(vault, await vault.generate("No cache", cache=False))
            assert record.cached_from is None
        assert provider.call_count == 3

    async def test_only_complete_results_are_cached(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("partial"), tm.error("overloaded", status=529))
        vault = await make_vault(provider)
        failed = await finished(vault, await vault.generate("Flaky"))
        assert failed.status == "error"
        retried = await finished(vault, await vault.generate("Flaky"))
        assert retried.status == "complete"
        assert retried.cached_from is None
        assert provider.call_count == 2

    async def test_a_different_parameter_is_a_different_request(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        await finished(vault, await vault.generate("Params", params={"temperature": 0.1}))
        other = await finished(vault, await vault.generate("Params", params={"temperature": 0.2}))
        assert provider.call_count == 2
        assert other.cached_from is None

    async def test_a_bad_ttl_is_refused_before_anything_is_written(self, make_vault: Any) -> None:
        vault = await make_vault(tm.TestProvider(tokens_per_second=0))
        with pytest.raises(InvalidRequest, match="cache_ttl"):
            await vault.generate("x", cache_ttl=-1)
        assert (await vault.list_generations()).items == []


class TestScope:
    async def test_by_default_users_never_share_cached_results(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        await vault.ensure_user("alice")
        await vault.ensure_user("bob")
        await finished(vault, await vault.generate("Same words", user_id="alice"), "alice")
        bobs = await finished(vault, await vault.generate("Same words", user_id="bob"), "bob")
        assert provider.call_count == 2
        assert bobs.cached_from is None

    async def test_global_scope_shares_identical_requests_across_users(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider, cache_scope="global")
        await vault.ensure_user("alice")
        await vault.ensure_user("bob")
        alices = await finished(vault, await vault.generate("Same words", user_id="alice"), "alice")
        bobs = await finished(vault, await vault.generate("Same words", user_id="bob"), "bob")
        assert provider.call_count == 1
        assert bobs.cached_from == alices.id
        assert bobs.user_id == "bob"

    async def test_forget_user_deletes_that_users_entries_only(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        await vault.ensure_user("alice")
        await vault.ensure_user("bob")
        for prompt in ("one", "two"):
            await finished(vault, await vault.generate(prompt, user_id="alice"), "alice")
        await finished(vault, await vault.generate("one", user_id="bob"), "bob")
        assert await vault.cache.forget_user("alice") == 2
        assert await vault.cache.forget_user("alice") == 0
        again = await finished(vault, await vault.generate("one", user_id="alice"), "alice")
        bobs = await finished(vault, await vault.generate("one", user_id="bob"), "bob")
        assert again.cached_from is None
        assert bobs.cached_from is not None
        assert provider.call_count == 4


class TestSingleFlight:
    async def test_twenty_concurrent_identical_requests_make_one_provider_call(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=200)
        vault = await make_vault(provider)
        records = await asyncio.gather(*(vault.generate("All at once, please") for _ in range(20)))
        finals = [await finished(vault, r) for r in records]
        assert provider.call_count == 1
        assert len({r.id for r in finals}) == 20
        assert {r.status for r in finals} == {"complete"}
        assert len({r.result_text for r in finals}) == 1
        leaders = [r for r in finals if r.cached_from is None]
        assert len(leaders) == 1
        assert {r.cached_from for r in finals if r.cached_from} == {leaders[0].id}

    async def test_a_joined_request_streams_the_whole_reply_from_the_start(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=100)
        vault = await make_vault(provider)
        leader = await vault.generate("Join me mid-way")
        async for chunk in vault.stream(leader.id):
            if chunk["type"] == "text-delta":
                break  # the leader is streaming now
        joined = await vault.generate("Join me mid-way")
        chunks = [c async for c in vault.stream(joined.id)]
        final = await finished(vault, joined)
        assert provider.call_count == 1
        assert final.cached_from == leader.id
        assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == final.result_text
        assert final.result_text == (await finished(vault, leader)).result_text

    async def test_a_joined_request_fails_when_the_leader_is_cancelled(self, make_vault: Any) -> None:
        # Slow enough that the leader is still running when it is cancelled, even on a loaded
        # machine (at 20 tokens/s it once finished first under a load average of 16).
        provider = tm.TestProvider(tokens_per_second=4)
        vault = await make_vault(provider)
        leader = await vault.generate("Cancel the leader")
        # The leader's run has called the model (with a Redis hub its first chunks take round
        # trips, and the joined request's one-step opening can be quicker than those).
        for _ in range(3000):
            if provider.call_count:
                break
            await asyncio.sleep(0.01)
        joined = await vault.generate("Cancel the leader")
        await vault.cancel(leader.id)
        final = await finished(vault, joined)
        assert final.status == "error"
        assert leader.id in (final.error or "")
        assert provider.call_count == 1


class TestChatsAndUsage:
    async def test_an_identical_first_message_in_another_chat_is_answered_from_the_cache(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hello chat"}]}
        one = await vault.chat("chat-1", message=message)
        first = await finished(vault, one.generation)
        two = await vault.chat("chat-2", message={**message, "id": "u2"})
        second = await finished(vault, two.generation)
        assert provider.call_count == 1
        assert second.cached_from == first.id
        stored = (await vault.chat_messages("chat-2")).messages
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[1]["id"] == two.message_id != one.message_id
        assert stored[1]["parts"][-1]["text"] == first.result_text

    async def test_regenerate_always_calls_the_provider(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Again"}]}
        await finished(vault, (await vault.chat("c", message=message)).generation)
        again = await finished(vault, (await vault.chat("c", trigger="regenerate-message")).generation)
        assert provider.call_count == 2
        assert again.cached_from is None

    async def test_usage_counts_hits_and_what_they_saved(self, make_vault: Any) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await make_vault(provider)
        first = await finished(vault, await vault.generate("Count me"))
        for _ in range(2):
            await finished(vault, await vault.generate("Count me"))
        [row] = await vault.usage()
        assert (row.generations, row.cache_hits) == (3, 2)
        assert row.saved_nano_usd == 2 * first.cost_nano_usd
        assert row.cost_nano_usd == first.cost_nano_usd


@pytest.mark.redis
async def test_single_flight_spans_processes_sharing_redis(vault_factory: Any, redis_settings: dict[str, str]) -> None:
    """Two Vaults on one database and one Redis stand for two server processes."""
    providers = [tm.TestProvider(tokens_per_second=100), tm.TestProvider(tokens_per_second=100)]
    vaults = [
        await vault_factory(providers={"offline": p}, settings_overrides={"price_overrides": PRICES, **redis_settings})
        for p in providers
    ]
    records = await asyncio.gather(*(vaults[i % 2].generate("Across processes") for i in range(20)))
    finals = [await finished(vaults[0], r) for r in records]
    assert sum(p.call_count for p in providers) == 1
    assert {r.status for r in finals} == {"complete"}
    assert len({r.result_text for r in finals}) == 1
    [leader] = [r for r in finals if r.cached_from is None]
    copies = [r for r in finals if r.cached_from is not None]
    # Requests that joined a local request which itself joined the other process's leader still
    # point at the original and count what it cost.
    assert {r.cached_from for r in copies} == {leader.id}
    assert {r.saved_nano_usd for r in copies} == {leader.cost_nano_usd}


async def test_an_erased_original_is_never_served_from_the_cache(make_vault: Any) -> None:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await make_vault(provider)
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Forget me"}]}
    first = await finished(vault, (await vault.chat("doomed", message=message)).generation)
    await vault.delete_chat("doomed")  # its generations go with it, and the SQL rows with them
    if isinstance(vault.cache, SqlCache):
        async with vault.store.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(cache_entries))).scalar_one() == 0
    again = await finished(vault, (await vault.chat("fresh", message=message)).generation)
    assert again.cached_from is None
    assert again.result_text == first.result_text
    assert provider.call_count == 2


async def test_a_failing_cache_lookup_still_runs_the_generation(
    make_vault: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await make_vault(provider)

    async def broken(key: str) -> str | None:
        raise RuntimeError("cache table is gone")

    monkeypatch.setattr(vault.dedup.backend, "get", broken)
    # Looked up by `decide` through the backend (as Redis is), not inside the one-step opening.
    monkeypatch.setattr(vault.dedup, "probe", lambda *args: None)
    record = await finished(vault, await vault.generate("Still runs"))
    assert record.status == "complete"
    assert provider.call_count == 1
    assert "dedup lookup" in caplog.text


async def test_two_leaders_of_one_key_finishing_at_once_both_store_their_result(make_vault: Any) -> None:
    """Without Redis, two processes may lead the same key; the later entry wins and neither
    write fails (it runs inside the generation's finalize transaction)."""
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await make_vault(provider)
    if not isinstance(vault.cache, SqlCache):
        pytest.skip("the SQL cache only")
    first = await finished(vault, await vault.generate("One"))
    second = await finished(vault, await vault.generate("Two"))

    async def put_in(generation_id: str) -> None:
        async with vault.store.write() as conn:
            await vault.cache.put_in(conn, "shared-key", generation_id, "local", 60)

    async with vault.store.write() as conn:
        await vault.cache.put_in(conn, "shared-key", first.id, "local", 60)
        other = asyncio.create_task(put_in(second.id))  # waits for this transaction's row
        await asyncio.sleep(0.2)
    await asyncio.wait_for(other, 30)
    assert await vault.cache.get("shared-key") == second.id


class TestTheSecondLook:
    """`decide` looks the key up again after a one-step opening's probe only when a result for
    that key was remembered here in between (the SQL cache: single-flight per process)."""

    async def _decided(self, vault: Any, finished_key: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        dedup = vault.dedup
        policy = CachePolicy()
        looked: list[str] = []
        real_get = dedup.backend.get

        async def counting_get(key: str) -> str | None:
            looked.append(key)
            return await real_get(key)

        monkeypatch.setattr(dedup.backend, "get", counting_get)
        probe = dedup.probe("the-key", "local", policy)
        probe.ran = True  # as the opening's statement does: found nothing
        # Another turn leads `finished_key` and remembers its result while this one opens.
        dedup._leading[finished_key] = "gen_other"
        await dedup.finished(finished_key, "gen_other", "local", complete=True, policy=policy, stored=True)
        assert await dedup.decide("the-key", "gen_this", "local", policy, probe=probe) is None
        return looked

    async def test_another_key_finishing_meanwhile_needs_no_second_look(
        self, make_vault: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        vault = await make_vault(tm.TestProvider(tokens_per_second=0))
        if not isinstance(vault.cache, SqlCache):
            pytest.skip("the SQL cache only (Redis looks up in `decide` always)")
        assert await self._decided(vault, "another-key", monkeypatch) == []

    async def test_the_same_key_finishing_meanwhile_is_looked_up_again(
        self, make_vault: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        vault = await make_vault(tm.TestProvider(tokens_per_second=0))
        if not isinstance(vault.cache, SqlCache):
            pytest.skip("the SQL cache only (Redis looks up in `decide` always)")
        assert await self._decided(vault, "the-key", monkeypatch) == ["the-key"]

    async def test_a_key_sharing_its_slot_with_one_that_finished_meanwhile_is_looked_up_again(
        self, make_vault: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from genvault.cache import dedup as dedup_module

        monkeypatch.setattr(dedup_module, "_REMEMBERED_SLOTS", 1)  # every key shares the one slot
        vault = await make_vault(tm.TestProvider(tokens_per_second=0))
        if not isinstance(vault.cache, SqlCache):
            pytest.skip("the SQL cache only (Redis looks up in `decide` always)")
        assert await self._decided(vault, "another-key", monkeypatch) == ["the-key"]


async def test_a_leads_release_needs_no_await_on_the_sql_cache_when_its_result_is_stored(vault_factory: Any) -> None:
    vault = await vault_factory()
    dedup = vault.dedup
    assert isinstance(dedup.backend, SqlCache)
    dedup._leading["k"] = "gen_1"
    assert dedup.finished_at_once("k", "gen_2", complete=True, stored=False)  # a follower: nothing
    assert dedup._leading["k"] == "gen_1"
    assert not dedup.finished_at_once("k", "gen_1", complete=True, stored=False)  # a `put` to await
    assert dedup._leading["k"] == "gen_1"
    remembered = dedup._remembered
    assert dedup.finished_at_once("k", "gen_1", complete=True, stored=True)
    assert "k" not in dedup._leading
    assert dedup._remembered == remembered + 1  # counted as `finished` counts it
    dedup._leading["k"] = "gen_3"
    assert dedup.finished_at_once("k", "gen_3", complete=False, stored=False)
    assert "k" not in dedup._leading
    assert dedup._remembered == remembered + 1


_materials = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(),  # not JSON: written by `default=str`
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16,
)


@given(st.dictionaries(st.text(max_size=8), _materials, max_size=6))
def test_the_canonical_json_is_the_encoders(material: dict[str, Any]) -> None:
    """The C encoder made once writes what `JSONEncoder.encode` writes (it makes the same one)."""
    from genvault.cache import key

    assert key._canonical(material) == key._CANONICAL.encode(material)
