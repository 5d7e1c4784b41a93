"""How many SQL statements a chat turn runs, at most: a redundant read or round trip put back into
the turn's path (reading the chat twice, probing a new chat for the message, reading the history
or the final record back, the finalize's transaction) makes this fail. Counted by SQLite's trace
callback and at asyncpg's entry points (each is one round trip), not timed. The counts are
deterministic; the assertions are upper bounds so a further saving does not fail them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from genvault.providers import testmodel as tm
from genvault.store.driver import ConnectionLost, PooledDriver

# SQLite, every statement sent: BEGIN, COMMIT and ROLLBACK included, an `executemany` once per
# distinct statement text (its rows and what the search index's triggers run not counted:
# `_top_level`); no checkpoints (see below). The opening (a new chat with its message and pending
# generation, and the dedup cache's lookup) is 7 of them: BEGIN IMMEDIATE, the chat, the message,
# its part, the generation, the lookup, COMMIT, in one hop; the move to `streaming` 1 (one hop,
# no BEGIN and COMMIT around it); the finalize (`store/finishes.py`) 8 in one hop. (31 before
# the one-step opening of a new chat, 28 before the finalize stopped purging expired cache
# entries every time, 27 before the lookup went into the opening, 25 before the finalize's and
# the streaming mark's one hop.) A turn alone, as here; turns that write at the same time share
# the BEGIN IMMEDIATE and COMMIT (and the hop) of one transaction (`store/sqlite_groups.py`).
SQLITE_NEW_CHAT_FIRST_TURN = 22

# PostgreSQL, round trips of `Vault.chat` and the reply: the opening is 1 statement (chat,
# message, parts, pending generation and the dedup cache's lookup; `store/openings.py`); then
# the move to `streaming` at the first token (1), and the finalize, 1 statement (generation,
# reply, chat freed, cache entry; `store/finishes.py`). 19 before the one-step opening (8 → 1),
# 12 before the finalize stopped purging expired cache entries every time (now at most once a
# minute) and, in the server, reading the final record back for its metrics listener, 11 before
# the cache lookup (and its checkout ping) went into the opening, 9 before the one-statement
# finalize (7 → 1).
POSTGRES_NEW_CHAT_FIRST_TURN = 3

MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}


@pytest.fixture
def asyncpg_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement asyncpg sends, by its entry points: a prepared statement's execution
    (SQLAlchemy's path), a statement by text with or without arguments (the driver's path), and
    a prepare (`PREPARE …`: the connection's first use of a statement)."""
    import asyncpg.connection as connection
    import asyncpg.prepared_stmt as prepared

    sent: list[str] = []
    do_execute, execute, prepare = (
        connection.Connection._do_execute,
        connection.Connection.execute,
        connection.Connection._prepare,
    )
    statement_execute = prepared.PreparedStatement._PreparedStatement__do_execute  # type: ignore[attr-defined]

    async def logged_do_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await do_execute(self, query, *args, **kwargs)

    async def logged_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments it goes through _do_execute
            sent.append(query)
        return await execute(self, query, *args, **kwargs)

    async def logged_prepare(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"PREPARE {query}")
        return await prepare(self, query, *args, **kwargs)

    async def logged_statement(self: Any, executor: Any) -> Any:
        sent.append(self._query)
        return await statement_execute(self, executor)

    monkeypatch.setattr(connection.Connection, "_do_execute", logged_do_execute)
    monkeypatch.setattr(connection.Connection, "execute", logged_execute)
    monkeypatch.setattr(connection.Connection, "_prepare", logged_prepare)
    monkeypatch.setattr(prepared.PreparedStatement, "_PreparedStatement__do_execute", logged_statement)
    return sent


def _per_turn(sent: list[str]) -> list[str]:
    """Without what a pooled connection does once: prepare a statement (asyncpg's cache) and look
    up the types of its results."""
    once = ("PREPARE ", "SELECT current_setting('jit')", "WITH RECURSIVE typeinfo_tree", "SELECT set_config('jit'")
    # Whitespace normalised: asyncpg's type introspection sends `SELECT` on a line of its own.
    return [s for s in sent if not " ".join(s.split()).startswith(once)]


async def _vault(vault_factory: Any) -> Any:
    # Checkpoints come on a timer; a minute apart, none falls inside this short reply.
    # Nor does the periodic sweep for dead processes' records: an hour apart, not in between.
    # The heartbeat (a third of the lease) neither: ten minutes apart. Nor the webhook worker's
    # read of the subscriptions (with none, a finalize writes no outbox row: counted here).
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)},
        settings_overrides={"checkpoint_ms": 60_000, "lease_seconds": 1800, "webhook_poll_seconds": 3600},
        sweep_interval=3600,
    )
    await vault.ensure_user("local")  # the user exists before a turn in the server too
    # A turn before the one counted: what a process does once (the first purge of expired cache
    # entries; on PostgreSQL, preparing statements) is done. Another question: the same one
    # would be answered by the dedup cache.
    warm = await vault.chat("c0", message={**MESSAGE, "parts": [{"type": "text", "text": "hello"}]})
    await vault.engine.wait(warm.generation.id)
    # On SQLite the search index takes the queued part changes every second, in a transaction of
    # its own: on a loaded machine one could fall inside the counted turn. Stop it, empty the queue.
    if vault._search_catch_up is not None:
        vault._search_catch_up.cancel()
    await vault.searcher.catch_up()
    # A stream's move to `streaming` is queued and written by the liveness writer a few
    # milliseconds later, in one statement for every stream that started meanwhile (like a
    # checkpoint): whether it lands inside a counted turn is timing. Not counted: stopped here.
    for task in vault.engine.liveness._tasks:
        if task.get_name() == "genvault:first-tokens":
            task.cancel()
    return vault


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_new_chats_first_turn_runs_a_fixed_number_of_statements_on_sqlite(vault_factory: Any) -> None:
    vault = await _vault(vault_factory)
    statements: list[str] = []

    # Counted by SQLite itself (its trace callback on every pooled connection): statements that
    # bypass SQLAlchemy (the append and the opening run on the aiosqlite connection) count too.
    def trace(conn: Any, record: Any, proxy: Any) -> None:
        await_only(conn.driver_connection.set_trace_callback(statements.append))

    event.listen(vault.store.engine.sync_engine, "checkout", trace)
    try:
        turn = await vault.chat("c1", message=MESSAGE)
        await _ended_here(vault, turn.generation.id)
    finally:
        event.remove(vault.store.engine.sync_engine, "checkout", trace)
    # The trace stays on the connections: what follows (the record read below) is not the turn's.
    counted = _top_level(list(statements))
    final = await vault.wait(turn.generation.id)
    assert final.status == "complete"
    assert len(counted) <= SQLITE_NEW_CHAT_FIRST_TURN, "\n".join(s.split("\n")[0][:100] for s in counted)


async def _ended_here(vault: Any, generation_id: str) -> None:
    """Until the turn's run in this process has ended, without a statement of its own: a run
    that ended already is gone from the engine, where `wait` would ask the database."""
    run = vault.engine._runs.get(generation_id)
    if run is not None:
        await run.done.wait()


def _top_level(statements: list[str]) -> list[str]:
    """The statements the turn sent: without what SQLite's triggers run (the search index's,
    traced as `-- …` and as repeats of the statement that fired them) and an `executemany`'s
    rows after its first."""
    sent: list[str] = []
    for statement in statements:
        text = statement.lstrip()
        if text.startswith(("--", "PRAGMA", "SELECT k, v FROM")) or (sent and text == sent[-1]):
            continue
        sent.append(text)
    return sent


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_new_chats_first_turn_runs_a_fixed_number_of_round_trips_on_postgresql(
    vault_factory: Any, asyncpg_round_trips: list[str]
) -> None:
    vault = await _vault(vault_factory)
    asyncpg_round_trips.clear()
    turn = await vault.chat("c1", message=MESSAGE)
    opening = _per_turn(asyncpg_round_trips)
    await _ended_here(vault, turn.generation.id)
    sent = _per_turn(asyncpg_round_trips)
    asyncpg_round_trips.clear()
    assert (await vault.get_generation(turn.generation.id)).status == "complete"
    assert len(opening) == 1, "\n".join(" ".join(s.split())[:100] for s in opening)
    assert len(sent) <= POSTGRES_NEW_CHAT_FIRST_TURN, "\n".join(" ".join(s.split())[:100] for s in sent)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_an_opening_whose_connection_died_after_sending_is_not_run_twice(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-step opening runs in autocommit: if the connection dies after the statement went
    out, it may have committed. The retry looks for the turn's generation before running it again,
    so the turn neither fails with 409 against itself nor runs twice."""
    vault = await _vault(vault_factory)
    run = PooledDriver.run
    failed: list[str] = []

    async def dies_after_the_first_opening(self: PooledDriver, call: Any, *, what: str) -> Any:
        result = await run(self, call, what=what)
        if what == "write" and not failed:
            failed.append("once")
            raise ConnectionLost("database write failed: the connection went", sent=True)
        return result

    monkeypatch.setattr(PooledDriver, "run", dies_after_the_first_opening)
    turn = await vault.chat("c1", message=MESSAGE)
    final = await vault.wait(turn.generation.id)
    assert failed == ["once"]
    assert final.status == "complete"
    page = await vault.chat_messages("c1")
    assert [m["role"] for m in page.messages] == ["user", "assistant"]
    assert [g.id for g in (await vault.list_generations()).items if g.chat_id == "c1"] == [turn.generation.id]


async def test_the_listeners_get_the_final_record_as_stored_without_reading_it(vault_factory: Any) -> None:
    vault = await _vault(vault_factory)
    heard: list[Any] = []
    vault.engine.listeners.append(heard.append)
    turn = await vault.chat("c1", message=MESSAGE)
    await vault.engine.wait(turn.generation.id)
    stored = await vault.get_generation(turn.generation.id)
    assert [r.id for r in heard] == [stored.id]
    assert heard[0].status == "complete"
    assert heard[0].model_dump(exclude={"checkpoint_at"}) == stored.model_dump(exclude={"checkpoint_at"})


async def test_a_new_chat_asking_an_answered_question_gets_the_cached_reply_from_its_opening(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dedup cache's lookup runs inside the one-step opening (SQL cache): a new chat asking
    what another chat was answered copies that answer, without a lookup of its own."""
    from genvault.cache.sql import SqlCache

    vault = await _vault(vault_factory)
    first = await vault.chat("c1", message=MESSAGE)
    await vault.engine.wait(first.generation.id)

    async def no_lookup(self: SqlCache, key: str) -> str | None:
        raise AssertionError("the opening looked the key up already")

    monkeypatch.setattr(SqlCache, "get", no_lookup)
    second = await vault.chat("c2", message={**MESSAGE, "id": "u2"})
    await vault.engine.wait(second.generation.id)
    copied = await vault.get_generation(second.generation.id)
    assert copied.status == "complete"
    assert copied.cached_from == first.generation.id
    page = await vault.chat_messages("c2")
    assert [m["role"] for m in page.messages] == ["user", "assistant"]


# An existing chat's next turn (the user's second message), same counting. SQLite: the opening
# in one hop (BEGIN IMMEDIATE, the chat insert that finds the id taken, the claim, the count of
# the history, the message, its part, the generation, the lookup, COMMIT: 9), the history's page
# read (1), the move to `streaming` (1, one hop) and the finalize in one hop (8). 30 before the
# one-step opening of an existing chat and the one-hop finalize.
SQLITE_EXISTING_CHAT_TURN = 19

# PostgreSQL: the opening (1), the history's page read on the same connection (1), streaming (1),
# the finalize (1). 22 before: the general path's opening (the failed new-chat try, ping, BEGIN,
# chat read FOR UPDATE, message probe, append, active generation set, history ids, messages,
# parts, generation insert, COMMIT, and the cache lookup's ping and SELECT: 14), streaming, and
# the finalize's transaction (7).
POSTGRES_EXISTING_CHAT_TURN = 4

SECOND = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "and then?"}]}


async def _first_turn_done(vault: Any) -> None:
    first = await vault.chat("c1", message=MESSAGE)
    await vault.engine.wait(first.generation.id)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_an_existing_chats_next_turn_runs_a_bounded_number_of_statements_on_sqlite(vault_factory: Any) -> None:
    vault = await _vault(vault_factory)
    await _first_turn_done(vault)
    statements: list[str] = []

    def trace(conn: Any, record: Any, proxy: Any) -> None:
        await_only(conn.driver_connection.set_trace_callback(statements.append))

    event.listen(vault.store.engine.sync_engine, "checkout", trace)
    try:
        turn = await vault.chat("c1", message=SECOND)
        await _ended_here(vault, turn.generation.id)
    finally:
        event.remove(vault.store.engine.sync_engine, "checkout", trace)
    counted = _top_level(statements)
    assert len(counted) <= SQLITE_EXISTING_CHAT_TURN, "\n".join(s.split("\n")[0][:100] for s in counted)
    await _assert_second_turn_stored(vault, turn)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_an_existing_chats_next_turn_runs_a_bounded_number_of_round_trips_on_postgresql(
    vault_factory: Any, asyncpg_round_trips: list[str]
) -> None:
    vault = await _vault(vault_factory)
    await _first_turn_done(vault)
    asyncpg_round_trips.clear()
    turn = await vault.chat("c1", message=SECOND)
    opening = _per_turn(asyncpg_round_trips)
    await _ended_here(vault, turn.generation.id)
    sent = _per_turn(asyncpg_round_trips)
    asyncpg_round_trips.clear()
    assert len(opening) <= 2, "\n".join(" ".join(s.split())[:100] for s in opening)
    assert len(sent) <= POSTGRES_EXISTING_CHAT_TURN, "\n".join(" ".join(s.split())[:100] for s in sent)
    await _assert_second_turn_stored(vault, turn)


async def _assert_second_turn_stored(vault: Any, turn: Any) -> None:
    """The second turn as the general path stores it: the model saw the whole chat, the record
    counts it, the chat holds both turns in order and runs nothing."""
    final = await vault.get_generation(turn.generation.id)
    assert final.status == "complete"
    assert final.request["messages_before"] == 3
    provider, _ = vault.registry.resolve(vault.settings.default_model)
    assert [m["role"] for m in provider.calls[-1].messages] == ["user", "assistant", "user"]
    page = await vault.chat_messages("c1")
    assert [m["id"] for m in page.messages][::2] == ["u1", "u2"]
    assert [m["role"] for m in page.messages] == ["user", "assistant", "user", "assistant"]
    assert (await vault.get_chat("c1")).active_generation_id is None


async def test_a_finalize_whose_connection_died_after_sending_is_kept_once(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-step finalize runs in autocommit (PostgreSQL): if its connection dies after the
    statement went out, it may have committed. The general path then finds the record final and
    keeps it: one reply in the chat, the chat free for the next turn."""
    from genvault.store import finishes

    vault = await _vault(vault_factory)
    finish = finishes.finish_chat_turn
    lost: list[str] = []

    async def committed_then_lost(*args: Any, **kwargs: Any) -> bool:
        assert await finish(*args, **kwargs)
        lost.append("once")
        return False  # what a lost connection's answer looks like to the engine

    monkeypatch.setattr("genvault.turn_hooks.finish_chat_turn", committed_then_lost)
    turn = await vault.chat("c1", message=MESSAGE)
    final = await vault.wait(turn.generation.id)
    assert lost == ["once"]
    assert final.status == "complete"
    page = await vault.chat_messages("c1")
    assert [m["role"] for m in page.messages] == ["user", "assistant"]
    assert (await vault.get_chat("c1")).active_generation_id is None


async def test_a_final_value_the_one_step_finalize_does_not_know_leaves_it_to_the_transaction(
    vault_factory: Any,
) -> None:
    """A column added to the engine's final values later must not be dropped by the one-step
    statement: it declines, writing nothing, and the finalize's transaction writes it."""
    from genvault.store.finishes import finish_chat_turn

    vault = await _vault(vault_factory)
    turn = await vault.chat("c1", message=MESSAGE)
    stored = await vault.wait(turn.generation.id)
    reply = (await vault.chat_messages("c1")).messages[-1]
    declined = await finish_chat_turn(
        vault.store,
        generation_id=turn.generation.id,
        values={"status": "error", "a_new_column": 1},
        chat_id="c1",
        user_id="local",
        message={**reply, "id": "another"},
        entry=None,
    )
    assert declined is False
    assert (await vault.get_generation(turn.generation.id)).status == stored.status == "complete"
    assert [m["id"] for m in (await vault.chat_messages("c1")).messages][-1] == reply["id"]


# A generation of no chat (`Vault.generate`, `Vault.complete`: a `/v1` gateway call) opens with
# its pending row and the dedup cache's lookup in one step (`open_generation`) and ends with its
# final row and cache entry in another (`finish_generation`). PostgreSQL: 1 + 1 round trips (the
# opening was 6 before: ping, BEGIN, INSERT, COMMIT, ping, the lookup; the finalize's ping, BEGIN,
# UPDATE, cache entry, COMMIT 5). SQLite: the insert and the lookup in one hop, then BEGIN, the
# update, the cache entry, COMMIT in another (a purge of expired entries at most once a minute):
# 6, where it was 10 (the lookup in a transaction of its own, each statement its own hop).
POSTGRES_GENERATION = 2
SQLITE_GENERATION = 7


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_generation_of_no_chat_runs_one_round_trip_to_open_and_one_to_finish_on_postgresql(
    vault_factory: Any, asyncpg_round_trips: list[str]
) -> None:
    vault = await _vault(vault_factory)
    await vault.engine.wait((await vault.generate("warm up", model="offline/test-model")).id)
    asyncpg_round_trips.clear()
    record = await vault.generate("hello there", model="offline/test-model")
    opening = _per_turn(asyncpg_round_trips)
    await _ended_here(vault, record.id)
    sent = _per_turn(asyncpg_round_trips)
    asyncpg_round_trips.clear()
    final = await vault.get_generation(record.id)
    assert final.status == "complete"
    assert final.result_text
    assert len(opening) == 1, "\n".join(" ".join(s.split())[:100] for s in opening)
    assert len(sent) <= POSTGRES_GENERATION, "\n".join(" ".join(s.split())[:100] for s in sent)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_generation_of_no_chat_runs_a_bounded_number_of_statements_on_sqlite(vault_factory: Any) -> None:
    vault = await _vault(vault_factory)
    await vault.engine.wait((await vault.generate("warm up", model="offline/test-model")).id)
    statements: list[str] = []

    def trace(conn: Any, record: Any, proxy: Any) -> None:
        await_only(conn.driver_connection.set_trace_callback(statements.append))

    event.listen(vault.store.engine.sync_engine, "checkout", trace)
    try:
        record = await vault.generate("hello there", model="offline/test-model")
        await _ended_here(vault, record.id)
    finally:
        event.remove(vault.store.engine.sync_engine, "checkout", trace)
    counted = _top_level(list(statements))
    final = await vault.wait(record.id)
    assert final.status == "complete"
    assert final.cache_key is not None  # the lookup ran and the entry was written with the result
    assert len(counted) <= SQLITE_GENERATION, "\n".join(s.split("\n")[0][:100] for s in counted)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_generation_whose_opening_connection_died_after_sending_is_not_run_twice(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = await _vault(vault_factory)
    run = PooledDriver.run
    failed: list[str] = []

    async def dies_after_the_first_write(self: PooledDriver, call: Any, *, what: str) -> Any:
        result = await run(self, call, what=what)
        if what == "write" and not failed:
            failed.append("once")
            raise ConnectionLost("database write failed: the connection went", sent=True)
        return result

    monkeypatch.setattr(PooledDriver, "run", dies_after_the_first_write)
    record = await vault.generate("once only", model="offline/test-model")
    final = await vault.wait(record.id)
    assert failed == ["once"]
    assert final.status == "complete"
    page = await vault.list_generations()
    assert [g.id for g in page.items if g.request.get("prompt") == "once only"] == [record.id]


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_a_finalize_purges_the_expired_cache_entries_only_when_a_purge_is_due(vault_factory: Any) -> None:
    """The one-step finalize writes the turn's cache entry every time and deletes the expired
    ones at most once a minute: on PostgreSQL the statement without the purge step otherwise."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from genvault.store.schema import cache_entries

    vault = await _vault(vault_factory)  # its warm-up turn ran the process's first purge
    warm = (await vault.list_generations(user_id="local")).items[0]
    async with vault.store.write() as conn:
        await conn.execute(
            insert(cache_entries).values(
                key="expired", generation_id=warm.id, user_id="local", expires_at=datetime.now(UTC) - timedelta(hours=1)
            )
        )

    async def keys_after_a_turn(chat_id: str, text: str) -> set[str]:
        message = {**MESSAGE, "id": f"m-{chat_id}", "parts": [{"type": "text", "text": text}]}
        turn = await vault.chat(chat_id, message=message)
        await vault.engine.wait(turn.generation.id)
        async with vault.store.read() as conn:
            return set((await conn.execute(select(cache_entries.c.key))).scalars().all())

    kept = await keys_after_a_turn("c1", "no purge is due")
    assert "expired" in kept
    vault.cache._next_purge = None  # a minute has passed
    purged = await keys_after_a_turn("c2", "a purge is due")
    assert "expired" not in purged
    assert len(purged) == len(kept)  # the turn's own entry came, the expired one went


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_the_periodic_reads_of_limits_and_webhooks_send_no_checkout_ping_on_postgresql(
    vault_factory: Any, asyncpg_round_trips: list[str]
) -> None:
    """The census of a chat load's statements (docs/benchmarks.md, pgburst round 2): besides the
    turns' own, the limits' reload (every 2 s, awaited by a turn) and the webhook worker's read
    of the subscriptions (every second) each cost a ping and the read. They read without the
    ping now (`Store.read_retrying`: a dead connection is retried on a pinged one)."""
    vault = await _vault(vault_factory)
    await vault.limits.load()
    await vault.webhooks.refresh()
    asyncpg_round_trips.clear()
    await vault.limits.load()
    await vault.webhooks.refresh()
    sent = _per_turn(asyncpg_round_trips)
    assert len(sent) == 2, "\n".join(" ".join(s.split())[:100] for s in sent)
