"""`Vault.append_messages`, the library's standalone append, on SQLite and PostgreSQL: ordered,
atomic (a taken id or a missing chat appends nothing), gapless under concurrent writers, and on
PostgreSQL safe to retry on a dead connection without appending twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from genvault import Conflict, InvalidRequest, NotFound, Settings, StorageError
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store.driver import ConnectionLost
from genvault.vault import Vault

ASSISTANT: dict[str, Any] = {
    "id": "a1",
    "role": "assistant",
    "metadata": {"model": "x", "n": [1, 2]},
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "text": "think", "state": "done"},
        {
            "type": "tool-weather",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"t": 2},
        },
        {"type": "text", "text": "Sunny ✓", "state": "done"},
    ],
}


def user(message_id: str, text: str = "hi") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


@pytest.fixture
async def vault(vault_factory: Any) -> Vault:
    v: Vault = await vault_factory()
    await v.ensure_user("alice")
    await v.ensure_user("bob")
    await v.create_chat("c1", user_id="alice")
    return v


async def everything(vault: Vault, chat_id: str = "c1") -> list[dict[str, Any]]:
    return (await vault.chat_messages(chat_id, user_id=None, limit=1000)).messages


async def test_messages_go_in_order_and_load_back_as_sent(vault: Vault) -> None:
    assert await vault.append_messages("c1", [user("u1"), ASSISTANT], user_id="alice") == [1, 2]
    assert await vault.append_messages("c1", [user("u2", "again")], user_id="alice", validate=False) == [3]
    assert await everything(vault) == [user("u1"), ASSISTANT, user("u2", "again")]
    assert (await vault.get_chat("c1", user_id="alice")).last_seq == 3
    assert await vault.append_messages("c1", [], user_id="alice") == []


async def test_an_id_already_in_the_chat_appends_nothing(vault: Vault) -> None:
    await vault.append_messages("c1", [user("u1")], user_id="alice")
    with pytest.raises(Conflict, match="message 'u1' is already in chat 'c1'"):
        await vault.append_messages("c1", [user("u2"), user("u1", "changed")], user_id="alice")
    assert await everything(vault) == [user("u1")]
    # The failed append reserved no seqs: the next one follows on.
    assert await vault.append_messages("c1", [user("u2")], user_id="alice") == [2]


@pytest.mark.parametrize(("chat_id", "user_id"), [("nope", "alice"), ("c1", "bob")])
async def test_a_missing_or_strangers_chat_is_not_found_and_appends_nothing(
    vault: Vault, chat_id: str, user_id: str
) -> None:
    with pytest.raises(NotFound, match=f"no chat '{chat_id}'"):
        await vault.append_messages(chat_id, [user("u1")], user_id=user_id)
    assert await everything(vault) == []


async def test_invalid_messages_are_refused_before_anything_is_written(vault: Vault) -> None:
    with pytest.raises(InvalidRequest):
        await vault.append_messages("c1", [user("u1"), {"id": "x", "role": "robot", "parts": []}], user_id="alice")
    with pytest.raises(InvalidRequest, match="twice"):
        await vault.append_messages("c1", [user("u1"), user("u1")], user_id="alice", validate=False)
    with pytest.raises(InvalidRequest, match="unknown part type"):
        await vault.append_messages(
            "c1", [{"id": "u1", "role": "user", "parts": [{"type": "nope"}]}], user_id="alice", validate=False
        )
    assert await everything(vault) == []


async def test_concurrent_appenders_get_gapless_seqs_in_each_ones_order(vault: Vault) -> None:
    async def writer(w: int) -> list[int]:
        seqs: list[int] = []
        for i in range(3):
            seqs += await vault.append_messages(
                "c1", [user(f"w{w:02}-{i}-u"), {**user(f"w{w:02}-{i}-a"), "role": "assistant"}], user_id="alice"
            )
        return seqs

    results = await asyncio.gather(*(writer(w) for w in range(12)))
    assert sorted(s for seqs in results for s in seqs) == list(range(1, 73))
    ids = [m["id"] for m in await everything(vault)]
    assert len(ids) == 72
    for w, seqs in enumerate(results):
        assert seqs == sorted(seqs)
        assert [i for i in ids if i.startswith(f"w{w:02}-")] == [f"w{w:02}-{i}-{r}" for i in range(3) for r in "ua"]


# -- PostgreSQL: one autocommit statement on an unpinged connection ------------------------------


@pytest.fixture
async def pg_vault(pg_schema: tuple[str, str], tmp_path: Path) -> AsyncIterator[Vault]:
    url, schema = pg_schema
    v = Vault(Settings(database_url=url, data_dir=tmp_path / "data"), database_schema=schema)
    await v.start()
    await v.ensure_user("alice")
    await v.create_chat("c1", user_id="alice")
    yield v
    await v.aclose(grace_seconds=0)


async def _backend_pids(vault: Vault, count: int) -> set[int]:
    """The backends of `count` connections of each of the store's pools: SQLAlchemy's and the
    hot paths' (`Store.driver`, where the append runs)."""
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(vault.store.read()) for _ in range(count)]
        drivers = [await stack.enter_async_context(vault.store.driver()) for _ in range(count)]
        return {(await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one() for conn in held} | {
            await driver.connection.fetchval("SELECT pg_backend_pid()") for driver in drivers
        }


@pytest.mark.postgres
async def test_appends_survive_connections_the_server_killed(
    pg_vault: Vault, pg_schema: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg_vault.append_messages("c1", [user("u0")], user_id="alice")
    pids = await _backend_pids(pg_vault, 4)  # every pooled connection by now
    drivers = pg_vault.store._drivers
    assert drivers is not None
    dropped = drivers.discarded
    killer = Store(*pg_schema[:1], schema=pg_schema[1])
    try:
        async with killer.read() as conn:
            for pid in pids:
                assert (await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")).scalar_one()
    finally:
        await killer.aclose()
    real = chat_store.append_alone
    lost: list[bool] = []

    async def watched(conn: Any, *args: Any, **kwargs: Any) -> list[int]:
        try:
            return await real(conn, *args, **kwargs)
        except ConnectionLost as exc:
            lost.append(exc.sent)
            raise

    monkeypatch.setattr(chat_store, "append_alone", watched)
    for i in range(1, 4):
        assert await pg_vault.append_messages("c1", [user(f"u{i}")], user_id="alice") == [i + 1]
    # The unpinged connection was a dead one and the append went again, or the pool saw it
    # closed at the checkout and dropped it (which of the two depends on when the event loop
    # reads the socket's end).
    assert lost or drivers.discarded > dropped
    assert [m["id"] for m in await everything(pg_vault)] == ["u0", "u1", "u2", "u3"]


def _lose_the_connection_after(monkeypatch: pytest.MonkeyPatch, *, run_first: bool, sent: bool) -> list[int]:
    """The first `append_alone` (optionally after really appending) raises `ConnectionLost`."""
    real = chat_store.append_alone
    calls: list[int] = []

    async def flaky(conn: Any, *args: Any, **kwargs: Any) -> list[int]:
        calls.append(1)
        if len(calls) == 1:
            if run_first:
                await real(conn, *args, **kwargs)
            raise ConnectionLost("database write failed: connection reset", sent=sent)
        return await real(conn, *args, **kwargs)

    monkeypatch.setattr(chat_store, "append_alone", flaky)
    return calls


@pytest.mark.postgres
async def test_a_retry_after_a_lost_reply_finds_the_append_done_and_does_not_repeat_it(
    pg_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg_vault.append_messages("c1", [user("u0")], user_id="alice")
    calls = _lose_the_connection_after(monkeypatch, run_first=True, sent=True)
    assert await pg_vault.append_messages("c1", [user("u1"), ASSISTANT], user_id="alice") == [2, 3]
    assert len(calls) == 2
    assert await everything(pg_vault) == [user("u0"), user("u1"), ASSISTANT]


@pytest.mark.postgres
async def test_a_retry_that_finds_other_content_under_the_ids_is_still_a_conflict(
    pg_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg_vault.append_messages("c1", [user("u1", "first")], user_id="alice")
    _lose_the_connection_after(monkeypatch, run_first=False, sent=True)
    with pytest.raises(Conflict, match="message 'u1'"):
        await pg_vault.append_messages("c1", [user("u1", "second")], user_id="alice")
    assert await everything(pg_vault) == [user("u1", "first")]


@pytest.mark.postgres
async def test_a_statement_never_sent_is_retried_as_a_plain_append(
    pg_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg_vault.append_messages("c1", [user("u1")], user_id="alice")
    _lose_the_connection_after(monkeypatch, run_first=False, sent=False)
    with pytest.raises(Conflict):  # the same message again: nothing was sent, so not ours
        await pg_vault.append_messages("c1", [user("u1")], user_id="alice")
    _lose_the_connection_after(monkeypatch, run_first=False, sent=False)
    assert await pg_vault.append_messages("c1", [user("u2")], user_id="alice") == [2]


@pytest.mark.postgres
async def test_a_second_lost_connection_is_a_storage_error(pg_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    async def dead(conn: Any, *args: Any, **kwargs: Any) -> list[int]:
        raise ConnectionLost("database write failed: connection reset", sent=True)

    monkeypatch.setattr(chat_store, "append_alone", dead)
    with pytest.raises(StorageError):
        await pg_vault.append_messages("c1", [user("u1")], user_id="alice")
