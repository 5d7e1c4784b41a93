"""Budgets cost a chat turn no statement (issue 19: "no more than one extra statement per turn"):
the reservation rides on the pending record's insert and the settlement on the finalize's update
(revision 0015's triggers), so a budgeted user's turn sends exactly the statements a free user's
does, on both databases, for a new chat's first turn (the one-step opening) and for the next turn
of an existing chat. Counted by SQLite's trace callback and at asyncpg's entry points (as in
test_turn_statements.py), not timed; and the budget is shown to be in force in the same vault."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.util import await_only

from genvault.errors import LimitExceeded, NotFound
from genvault.providers import testmodel as tm
from genvault.store.schema import limit_usage
from test_turn_statements import _per_turn, _top_level, asyncpg_round_trips  # noqa: F401 (a fixture)

PRICED = {"offline/test-model": {"input_mtok": "0", "output_mtok": "1"}}
WORST_NANO = 20_000  # 20 output tokens at $1/MTok, input free

EVERY_LIMIT = {"daily_usd": "1", "monthly_usd": "2", "total_usd": "3", "rpm": 1000, "tpm": 10**9, "concurrent": 50}


def message(text: str, message_id: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def _vault(vault_factory: Any) -> Any:
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)},
        # No checkpoint, sweep or re-read of the limits inside the counted turns.
        settings_overrides={
            "checkpoint_ms": 60_000,
            "price_overrides": PRICED,
            "limits_max_output_tokens": 20,
            "limits_refresh_seconds": 3600,
        },
        sweep_interval=3600,
    )
    for user in ("free", "limited"):
        await vault.ensure_user(user)
    await vault.set_limits(EVERY_LIMIT, user_id="limited")
    # What a process does once (preparing statements, the first cache purge), for both users.
    for user in ("free", "limited"):
        warm = await vault.chat(f"warm-{user}", message=message(f"warm {user}", "w1"), user_id=user, cache=False)
        await vault.engine.wait(warm.generation.id)
    # Background writers whose timing alone decides whether they land in a counted turn: the
    # heartbeat, SQLite's search catch-up, and the batched first-token write (test_turn_statements).
    if vault._search_catch_up is not None:
        vault._search_catch_up.cancel()
    await vault.searcher.catch_up()
    for task in vault.engine.liveness._tasks:
        if task.get_name() in ("genvault:first-tokens", "genvault:heartbeat"):
            task.cancel()
    return vault


async def _turns(vault: Any, count: Callable[[Callable[[], Awaitable[None]]], Awaitable[list[str]]]) -> dict[str, Any]:
    """Per user: the statements of a new chat's first turn and of that chat's second turn, the
    fewest of three tries (a try that lands on a connection the pool has just opened also sends
    what a connection does once; the turn's own statements are the same every time)."""
    sent: dict[str, Any] = {}
    for attempt in range(3):
        for user in ("free", "limited"):
            for step, message_id in (("first", "m1"), ("second", "m2")):

                async def turn(
                    user: str = user, message_id: str = message_id, chat_id: str = f"chat-{user}-{attempt}"
                ) -> None:
                    started = await vault.chat(
                        chat_id,
                        message=message(f"{user} says {message_id}", message_id),
                        user_id=user,
                        cache=False,
                    )
                    # Its run's end, then one read of the record: `wait` would also poll the
                    # status when the run had ended before it asked, one statement more or less.
                    run = vault.engine._runs.get(started.generation.id)
                    if run is not None:
                        await run.done.wait()
                    final = await vault.get_generation(started.generation.id, user_id=user)
                    assert final.status == "complete"

                statements = await count(turn)
                name = f"{user} {step}"
                if name not in sent or len(statements) < len(sent[name]):
                    sent[name] = statements
    return sent


def _report(sent: dict[str, list[str]]) -> str:
    lines = [f"{name}: {len(s)}\n  " + "\n  ".join(" ".join(x.split())[:90] for x in s) for name, s in sent.items()]
    return "\n".join(lines)


async def _budget_in_force(vault: Any) -> None:
    async with vault.store.read() as conn:
        row = (await conn.execute(select(limit_usage).where(limit_usage.c.subject == "user:limited"))).one()
    # Warm-up and six turns, each settled at its true cost; nothing held.
    assert (row.running, row.reserved_nano_usd) == (0, 0)
    assert 0 < row.total_nano_usd <= 7 * WORST_NANO
    await vault.set_limits({**EVERY_LIMIT, "total_usd": "0.00001"}, user_id="limited")
    before = len((await vault.chat_messages("chat-limited-0", user_id="limited")).messages)
    with pytest.raises(LimitExceeded, match="total_usd"):  # an existing chat's turn
        await vault.chat("chat-limited-0", message=message("over", "m3"), user_id="limited", cache=False)
    with pytest.raises(LimitExceeded, match="total_usd"):  # a new chat's (the one-step opening)
        await vault.chat("chat-limited-new", message=message("over", "m1"), user_id="limited", cache=False)
    assert len((await vault.chat_messages("chat-limited-0", user_id="limited")).messages) == before == 4
    with pytest.raises(NotFound):
        await vault.get_chat("chat-limited-new", user_id="limited")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_budgeted_turn_sends_the_statements_a_free_turn_sends_on_sqlite(vault_factory: Any) -> None:
    vault = await _vault(vault_factory)

    async def count(turn: Callable[[], Awaitable[None]]) -> list[str]:
        statements: list[str] = []

        def trace(conn: Any, record: Any, proxy: Any) -> None:
            await_only(conn.driver_connection.set_trace_callback(statements.append))

        event.listen(vault.store.engine.sync_engine, "checkout", trace)
        try:
            await turn()
        finally:
            event.remove(vault.store.engine.sync_engine, "checkout", trace)
        return _top_level(statements)

    sent = await _turns(vault, count)
    assert len(sent["limited first"]) == len(sent["free first"]), _report(sent)
    assert len(sent["limited second"]) == len(sent["free second"]), _report(sent)
    await _budget_in_force(vault)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_budgeted_turn_sends_the_round_trips_a_free_turn_sends_on_postgresql(
    vault_factory: Any,
    asyncpg_round_trips: list[str],  # noqa: F811 (the fixture)
) -> None:
    vault = await _vault(vault_factory)

    async def count(turn: Callable[[], Awaitable[None]]) -> list[str]:
        asyncpg_round_trips.clear()
        await turn()
        sent = _per_turn(asyncpg_round_trips)
        asyncpg_round_trips.clear()
        return sent

    sent = await _turns(vault, count)
    assert len(sent["limited first"]) == len(sent["free first"]), _report(sent)
    assert len(sent["limited second"]) == len(sent["free second"]), _report(sent)
    await _budget_in_force(vault)
