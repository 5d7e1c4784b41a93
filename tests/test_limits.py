"""Budgets, quotas and rate limits (issue 19), in process on both databases: admission before the
pending record, reservations that concurrency cannot overshoot, release on every way a
generation ends, keys' expiry and models, and every surface (library, HTTP, CLI, page)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from genvault.errors import LimitExceeded
from genvault.limits import LimitSet, acting_key
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.settings import Settings
from genvault.store.keys import create_key
from genvault.store.schema import generations, limit_usage, processes
from genvault.vault import Vault

# The test model priced so a request's worst case is exact: input free, output $1 per million
# tokens, and at most 20 output tokens (the reservation's cap, which the provider is told).
PRICED = {
    "price_overrides": {"offline/test-model": {"input_mtok": "0", "output_mtok": "1"}},
    "limits_max_output_tokens": 20,
}
WORST_NANO = 20 * 1_000  # 20 tokens at $1/MTok = $0.00002
WORST_USD = Decimal(WORST_NANO) / 10**9


def user_message(text: str = "hello", message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def generation_count(vault: Any, user_id: str) -> int:
    async with vault.store.read() as conn:
        return int((await conn.execute(select(func.count()).where(generations.c.user_id == user_id))).scalar_one())


async def spent(vault: Any, user_id: str) -> int:
    async with vault.store.read() as conn:
        total = (
            await conn.execute(select(func.sum(generations.c.cost_nano_usd)).where(generations.c.user_id == user_id))
        ).scalar()
    return int(total or 0)


async def ledger(vault: Any, subject: str) -> Any:
    async with vault.store.read() as conn:
        return (await conn.execute(select(limit_usage).where(limit_usage.c.subject == subject))).first()


class Gate:
    """Holds every model call until released, so admitted generations stay running."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def __call__(self, _request: Any) -> None:
        await self.open.wait()


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"auth": "api_key", **PRICED})
    keys: dict[str, tuple[str, str]] = {}
    await vault.create_user("admin", is_admin=True)
    for name in ("alice", "admin"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = await create_key(conn, name, "test")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"vault": vault, "http": http, "keys": keys, "provider": provider}
    acting_key.set(None)


def auth(world: dict[str, Any], who: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {world['keys'][who][1]}"}


# -- concurrency cannot overshoot a budget ---------------------------------------------------------


@pytest.mark.long
async def test_fifty_concurrent_chat_turns_admit_exactly_the_ten_the_budget_covers(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    await vault.set_limits({"monthly_usd": WORST_USD * 10}, user_id="alice")

    async def turn(i: int) -> httpx.Response:
        body = {"id": f"chat-{i}", "messages": [user_message(f"question {i}")], "trigger": "submit-message"}
        return await http.post("/api/chat", json=body, headers=auth(world))

    responses = await asyncio.gather(*(turn(i) for i in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 40
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["content-type"].startswith("text/plain")  # what useChat shows
    assert "monthly_usd" in refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["RateLimit-Remaining"] == "0"
    for generation in (await vault.list_generations(user_id="alice", limit=100)).items:
        await vault.wait(generation.id, user_id="alice")
    assert await generation_count(vault, "alice") == 10
    assert await spent(vault, "alice") <= WORST_NANO * 10
    row = await ledger(vault, "user:alice")
    assert (row.month_nano_usd, row.running, row.reserved_nano_usd) == (await spent(vault, "alice"), 0, 0)
    # Refused turns left no chat, no message, no record.
    assert len((await vault.list_chats(user_id="alice", limit=100)).items) == 10


@pytest.mark.long
async def test_fifty_concurrent_generate_requests_admit_exactly_ten(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    await vault.set_limits({"daily_usd": WORST_USD * 10}, user_id="alice")
    responses = await asyncio.gather(
        *(http.post("/api/generate", json={"prompt": f"p{i}"}, headers=auth(world)) for i in range(50))
    )
    assert sorted(r.status_code for r in responses) == [201] * 10 + [429] * 40
    refused = next(r for r in responses if r.status_code == 429).json()["error"]
    assert refused["code"] == "limit_exceeded"
    assert refused["limit"] == "daily_usd"
    assert Decimal(refused["limit_value"]) == WORST_USD * 10
    assert Decimal(refused["used"]) == WORST_USD * 10
    assert datetime.fromisoformat(refused["resets_at"]) > datetime.now(UTC)
    for r in responses:
        if r.status_code == 201:
            await vault.wait(r.json()["id"], user_id="alice")
    assert await generation_count(vault, "alice") == 10
    assert await spent(vault, "alice") == WORST_NANO * 10


async def test_finalize_replaces_the_reservation_with_the_true_cost(vault_factory: Any) -> None:
    priced = {**PRICED, "price_overrides": {"offline/test-model": {"input_mtok": "1", "output_mtok": "1"}}}
    gate = Gate()
    provider = tm.TestProvider(tokens_per_second=0, on_request=gate)
    vault = await vault_factory(providers={"offline": provider}, settings_overrides=priced)
    await vault.set_limits({"total_usd": "1"}, user_id="local")
    record = await vault.generate("hello there", params={"max_tokens": 5})
    row = await ledger(vault, "user:local")
    held = row.reserved_nano_usd
    # Input counted one token per byte (at least the prompt's 11), output at its cap (5).
    assert row.running == 1
    assert held == row.total_nano_usd >= 16_000
    gate.open.set()
    final = await vault.wait(record.id)
    assert final.cost_nano_usd is not None
    assert final.cost_nano_usd < held
    row = await ledger(vault, "user:local")
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, final.cost_nano_usd)


async def test_a_model_without_a_price_is_admitted_against_the_other_limits_only(vault_factory: Any) -> None:
    gate = Gate()
    provider = tm.TestProvider(tokens_per_second=0, on_request=gate)
    vault = await vault_factory(providers={"offline": provider})
    await vault.set_limits({"total_usd": "0", "concurrent": 1}, user_id="local")
    first = await vault.generate("one")  # unpriced: the $0 budget does not apply, the slot does
    with pytest.raises(LimitExceeded) as refused:
        await vault.generate("two")
    assert refused.value.limit == "concurrent"
    async with vault.store.read() as conn:
        held = (await conn.execute(select(generations.c.reservation).where(generations.c.id == first.id))).scalar()
    assert held["unpriced"] is True
    gate.open.set()
    await vault.wait(first.id)
    await vault.wait((await vault.generate("three")).id)


# -- release on every way a generation ends ----------------------------------------------------------


async def test_a_provider_error_releases_the_reservation(vault_factory: Any) -> None:
    provider = tm.TestProvider(tokens_per_second=0)
    provider.enqueue(tm.error("overloaded", status=529))
    vault = await vault_factory(providers={"offline": provider}, settings_overrides=PRICED)
    await vault.set_limits({"total_usd": WORST_USD, "concurrent": 1}, user_id="local")
    record = await vault.wait((await vault.generate("fails")).id)
    assert record.status == "error"
    row = await ledger(vault, "user:local")
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, 0)
    assert (await vault.wait((await vault.generate("works")).id)).status == "complete"


async def test_cancel_releases_the_reservation(vault_factory: Any) -> None:
    gate = Gate()
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0, on_request=gate)}, settings_overrides=PRICED
    )
    await vault.set_limits({"total_usd": WORST_USD}, user_id="local")
    record = await vault.generate("long")
    with pytest.raises(LimitExceeded):
        await vault.generate("no room while the first holds its worst case")
    assert (await vault.cancel(record.id)).status == "cancelled"
    row = await ledger(vault, "user:local")
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, 0)
    gate.open.set()
    assert (await vault.wait((await vault.generate("now it fits")).id)).status == "complete"


async def test_a_cancel_from_another_process_releases_from_the_record(
    vault_factory: Any, database: tuple[str, str | None]
) -> None:
    gate = Gate()
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0, on_request=gate)}, settings_overrides=PRICED
    )
    await vault.set_limits({"total_usd": WORST_USD}, user_id="local")
    record = await vault.generate("long")
    # Another process (not started: its start-up sweep would take this pid's record for a
    # dead one's): the generation does not run there, so it ends the record and releases.
    other = Vault(vault.settings, database_schema=database[1], migrate=False)
    try:
        await other.cancel(record.id)
    finally:
        await other.aclose()
    row = await ledger(vault, "user:local")
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, 0)
    gate.open.set()
    final = await vault.wait(record.id)
    assert final.status == "cancelled"
    # The owner learns of the cancel at its next checkpoint flush or heartbeat, which may come
    # while the reply streams: then it stops and writes the partial reply's cost, which counts
    # once; if the reply ended first, it writes nothing. Either way nothing is released twice.
    row = await ledger(vault, "user:local")
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, final.cost_nano_usd or 0)


async def test_a_client_disconnect_keeps_the_reservation_until_the_generation_ends(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    await vault.set_limits({"total_usd": WORST_USD * 2}, user_id="alice")
    body = {"id": "gone", "messages": [user_message()], "trigger": "submit-message"}
    async with http.stream("POST", "/api/chat", json=body, headers=auth(world)) as response:
        assert response.status_code == 200
        # The client reads one line and goes away.
        async for _line in response.aiter_lines():
            break
    active = await vault.active_generation("gone", user_id="alice")
    final = await vault.wait(
        active.id if active else (await vault.list_generations(user_id="alice")).items[0].id, user_id="alice"
    )
    assert final.status == "complete"
    row = await ledger(vault, "user:alice")
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, final.cost_nano_usd)


async def test_the_sweeper_releases_what_an_interrupted_generation_held(vault_factory: Any) -> None:
    gate = Gate()
    a = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0, on_request=gate)}, settings_overrides=PRICED
    )
    b = await vault_factory(settings_overrides=PRICED)  # another process on the same database
    await a.set_limits({"total_usd": WORST_USD}, user_id="local")
    record = await a.generate("the process dies under this one")
    row = await ledger(a, "user:local")
    assert (row.running, row.reserved_nano_usd) == (1, WORST_NANO)
    # A stalls, as if dead: its heartbeat row expires, and B's sweeper interrupts its record.
    async with a.store.write() as conn:
        await conn.execute(
            processes.update()
            .where(processes.c.id == a.engine.owner_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    swept = await b.engine.sweep()
    assert [r.id for r in swept] == [record.id]
    row = await ledger(a, "user:local")
    final = await a.get_generation(record.id)
    assert final.status == "interrupted"
    # The reservation became the record's (estimated) cost; nothing is held any more.
    assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, final.cost_nano_usd or 0)
    gate.open.set()
    assert await a.engine.liveness.beat() is False  # A learns it was declared dead: stops its run
    assert (await a.get_generation(record.id)).status == "interrupted"
    row = await ledger(a, "user:local")
    assert (row.running, row.reserved_nano_usd) == (0, 0)  # and releases nothing twice


async def test_an_archive_taken_while_a_generation_held_a_reservation_imports_it_once(
    vault_factory: Any, tmp_path: Path
) -> None:
    gate = Gate()
    source = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0, on_request=gate)}, settings_overrides=PRICED
    )
    await source.set_limits({"total_usd": WORST_USD, "concurrent": 1}, user_id="local")
    record = await source.generate("running while the archive is taken")
    lines = [line async for line in source.export(user_id=None)]
    gate.open.set()
    await source.wait(record.id)
    # Into an empty database: the running record's hold is the archive's ledger row, not taken
    # again by the insert (which, at `concurrent: 1` and a full budget, would refuse it).
    target_settings = Settings(
        data_dir=tmp_path / "target", database_url=f"sqlite:///{tmp_path / 'target.db'}", **PRICED
    )
    async with Vault(target_settings) as target:
        await target.import_archive(lines)
        row = await ledger(target, "user:local")
        assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (1, WORST_NANO, WORST_NANO)
        assert (await target.get_generation(record.id)).status in ("pending", "streaming")
        # Nothing runs it here: ended, it gives back what it held, once.
        await target.cancel(record.id)
        row = await ledger(target, "user:local")
        assert (row.running, row.reserved_nano_usd, row.total_nano_usd) == (0, 0, 0)


# -- rates, keys, windows -----------------------------------------------------------------------------


async def test_the_request_over_the_per_minute_limit_is_refused_with_retry_after(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    # A few requests, not sixty: on a loaded machine sixty took over a minute, and the window moved.
    await vault.set_limits({"rpm": 5}, user_id="alice")
    responses = [await http.post("/api/generate", json={"prompt": f"p{i}"}, headers=auth(world)) for i in range(6)]
    assert [r.status_code for r in responses] == [201] * 5 + [429]
    last = responses[-1]
    assert last.json()["error"]["limit"] == "rpm"
    assert 0 < int(last.headers["Retry-After"]) <= 60
    assert last.headers["RateLimit-Limit"] == "5"
    assert await generation_count(vault, "alice") == 5


async def test_an_expired_key_gets_401_and_writes_nothing(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    async with vault.store.write() as conn:
        _, secret = await create_key(conn, "alice", "old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await http.post("/api/generate", json={"prompt": "hi"}, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]
    assert await generation_count(vault, "alice") == 0


async def test_a_model_outside_the_keys_list_gets_403_and_writes_nothing(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    async with vault.store.write() as conn:
        _key_id, secret = await create_key(conn, "alice", "narrow", models=["openai/gpt-4o-mini"])
    headers = {"Authorization": f"Bearer {secret}"}
    response = await http.post("/api/generate", json={"prompt": "hi", "model": "offline/test-model"}, headers=headers)
    assert response.status_code == 403
    assert "openai/gpt-4o-mini" in response.json()["error"]["message"]
    chat = {"id": "c", "messages": [user_message()], "trigger": "submit-message"}
    response = await http.post("/api/chat", json=chat, headers=headers)
    assert response.status_code == 403
    assert await generation_count(vault, "alice") == 0
    assert (await vault.list_chats(user_id="alice")).items == []


async def test_a_keys_limits_and_its_owners_both_apply_and_usage_groups_by_key(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    key_id = world["keys"]["alice"][0]
    await vault.set_limits({"total_usd": WORST_USD * 5}, user_id="alice")
    await vault.set_limits({"total_usd": WORST_USD * 2}, key_id=key_id)  # tighter: wins
    codes = []
    for i in range(3):
        response = await http.post("/api/generate", json={"prompt": f"k{i}"}, headers=auth(world))
        codes.append(response.status_code)
        if response.status_code == 201:
            await vault.wait(response.json()["id"], user_id="alice")
    assert codes == [201, 201, 429]
    body = (await http.post("/api/generate", json={"prompt": "x"}, headers=auth(world))).json()["error"]
    assert body["subject"] == f"key:{key_id}"
    # The refusals by the key took nothing from the owner's row either (one statement took the
    # user's room and then failed on the key's: all of it rolled back).
    row = await ledger(vault, "user:alice")
    assert (row.total_nano_usd, row.running, row.reserved_nano_usd) == (await spent(vault, "alice"), 0, 0)
    # Without the key (the library), the owner's own budget still has room.
    await vault.wait((await vault.generate("library", user_id="alice")).id, user_id="alice")
    usage = (await http.get("/api/usage", params={"group_by": "key"}, headers=auth(world))).json()
    assert {row["key"]: row["generations"] for row in usage} == {key_id: 2, "none": 1}


async def test_a_monthly_budget_starts_again_when_the_month_rolls_over(vault_factory: Any) -> None:
    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides=PRICED)
    now = [datetime(2026, 11, 30, 23, 59, tzinfo=UTC)]
    vault.limits.clock = lambda: now[0]
    await vault.set_limits({"monthly_usd": WORST_USD}, user_id="local")
    await vault.wait((await vault.generate("november")).id)
    with pytest.raises(LimitExceeded) as refused:
        await vault.generate("still november")
    assert refused.value.limit == "monthly_usd"
    assert refused.value.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    now[0] = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    assert (await vault.wait((await vault.generate("december")).id)).status == "complete"
    status = await vault.limits_status()
    [monthly] = [u for u in status.usage if u.limit == "monthly_usd"]
    assert Decimal(monthly.used) == WORST_USD
    assert monthly.resets_at == datetime(2027, 1, 1, tzinfo=UTC)


async def test_limits_set_later_count_the_spend_already_made(vault_factory: Any) -> None:
    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides=PRICED)
    await vault.wait((await vault.generate("before any limit", params={"max_tokens": 20})).id)
    await vault.set_limits({"daily_usd": WORST_USD}, default=True)
    with pytest.raises(LimitExceeded):
        await vault.generate("after")


# -- surfaces ---------------------------------------------------------------------------------------


@pytest.mark.long
async def test_admins_set_limits_over_http_and_users_read_their_own(world: dict[str, Any]) -> None:
    http = world["http"]
    denied = await http.put("/api/limits/users/alice", json={"monthly_usd": "20"}, headers=auth(world))
    assert denied.status_code == 403
    ok = await http.put("/api/limits/users/alice", json={"monthly_usd": "20", "rpm": 60}, headers=auth(world, "admin"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["monthly_usd"] == "20"
    bad = await http.put("/api/limits/users/alice", json={"rpm": -1}, headers=auth(world, "admin"))
    assert bad.status_code == 422
    missing = await http.put("/api/limits/users/nobody", json={"rpm": 1}, headers=auth(world, "admin"))
    assert missing.status_code == 404
    assert (
        await http.put("/api/limits/default", json={"daily_usd": "5"}, headers=auth(world, "admin"))
    ).status_code == 200
    key_id = world["keys"]["alice"][0]
    assert (
        await http.put(f"/api/limits/keys/{key_id}", json={"concurrent": 2}, headers=auth(world, "admin"))
    ).status_code == 200
    status = (await http.get("/api/limits", headers=auth(world))).json()
    assert status["own"]["monthly_usd"] == "20"
    assert status["default"]["daily_usd"] == "5"
    assert status["keys"][key_id]["concurrent"] == 2
    limits = {(u["subject"], u["limit"]) for u in status["usage"]}
    assert {
        ("user:alice", "monthly_usd"),
        ("user:alice", "daily_usd"),
        ("user:alice", "rpm"),
        (f"key:{key_id}", "concurrent"),
    } <= limits
    assert (await http.get("/api/limits/users/admin", headers=auth(world))).status_code == 404
    assert (await http.get("/api/limits/users/alice", headers=auth(world, "admin"))).status_code == 200


async def test_refusals_are_counted_by_limit_in_the_metrics(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    await vault.set_limits({"rpm": 1}, user_id="alice")
    for _ in range(2):
        await http.post("/api/generate", json={"prompt": "m"}, headers=auth(world))
    metrics = (await http.get("/metrics")).text
    assert 'genvault_limit_refusals_total{limit="rpm"} 1.0' in metrics


async def test_limits_are_validated_and_need_one_subject(vault_factory: Any) -> None:
    vault = await vault_factory()
    from genvault.errors import InvalidRequest, NotFound

    with pytest.raises(InvalidRequest):
        await vault.set_limits({"monthly_usd": "-1"}, user_id="local")
    with pytest.raises(InvalidRequest):
        await vault.set_limits(LimitSet(rpm=1), user_id="local", default=True)
    with pytest.raises(NotFound):
        await vault.set_limits(LimitSet(rpm=1), key_id="key_nope")
    assert await vault.set_limits(LimitSet(), user_id="local") == LimitSet()


async def test_the_usage_page_shows_spend_against_each_budget(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    await vault.set_limits({"monthly_usd": WORST_USD * 4, "rpm": 30}, user_id="alice")
    created = await http.post("/api/generate", json={"prompt": "spend"}, headers=auth(world))
    await vault.wait(created.json()["id"], user_id="alice")
    html = (await http.get("/usage", headers=auth(world))).text
    assert 'id="budgets"' in html
    assert 'data-limit="monthly_usd"' in html
    assert f"${WORST_USD}" in html  # used
    assert f"${WORST_USD * 4}" in html  # of the limit
    assert 'data-limit="rpm"' in html


async def test_image_generations_are_admitted_too(vault_factory: Any) -> None:
    vault = await vault_factory()
    await vault.set_limits({"concurrent": 1, "rpm": 2}, user_id="local")
    first = await vault.wait((await vault.generate_image("a fox")).id)
    assert first.status == "complete"
    await vault.wait((await vault.generate_image("a heron")).id)
    with pytest.raises(LimitExceeded) as refused:
        await vault.generate_image("a third, over the rate")
    assert refused.value.limit == "rpm"
    assert await generation_count(vault, "local") == 2


async def test_the_v1_gateway_is_admitted_through_the_engine(world: dict[str, Any]) -> None:
    vault, http = world["vault"], world["http"]
    key_id = world["keys"]["alice"][0]
    await vault.set_limits({"rpm": 1}, key_id=key_id)
    body = {"model": "offline/test-model", "messages": [{"role": "user", "content": "hi"}]}
    first = await http.post("/v1/chat/completions", json=body, headers=auth(world))
    assert first.status_code == 200, first.text
    second = await http.post("/v1/chat/completions", json=body, headers=auth(world))
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 0
    assert "rpm" in second.text
    assert await generation_count(vault, "alice") == 1


async def test_the_in_process_rate_windows_expire_old_entries_on_the_event_loop() -> None:
    from limits.aio.storage import MemoryStorage

    from genvault.limits._rates import RateWindows

    # The override stands in for the parent's private expiry (a thread hop per hit in `limits`);
    # if a release renames it, this says so.
    assert hasattr(MemoryStorage, "_MemoryStorage__expire_events")
    windows = RateWindows()
    storage: Any = windows.storage
    assert await storage.acquire_entry("gone", 10, -1)  # an entry that expired a second ago
    assert await storage.acquire_entry("kept", 10, 60)
    await storage._MemoryStorage__expire_events()
    assert "gone" not in storage.events
    assert len(storage.events["kept"]) == 1
    await windows.clear()


async def test_turns_that_find_the_limits_stale_together_read_them_once(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides=PRICED)
    await vault.set_limits({"monthly_usd": WORST_USD}, user_id="local")
    limits = vault.limits
    real_load = limits.load
    loads: list[int] = []

    async def counted_load() -> None:
        loads.append(1)
        await asyncio.sleep(0.05)  # a read that takes a while: the others arrive meanwhile
        await real_load()

    monkeypatch.setattr(limits, "load", counted_load)
    limits._loaded_at = float("-inf")  # stale, as after the refresh interval
    admitted = await asyncio.gather(*(limits.admit(user_id="local", model="offline/test-model") for _ in range(8)))
    assert loads == [1]
    assert all(a is not None for a in admitted)  # each saw the user's limit
