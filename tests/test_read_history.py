"""A chat turn's history read (`store.openings.read_history`): every message before the turn's,
oldest first, then the turn's own. On SQLite a history of one page is one statement on one of
the store's reader connections (no SQLAlchemy checkout); a longer one is read a page at a time
in one read transaction, as before."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genvault.store import openings


def user(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def filled(vault: Any, count: int) -> tuple[str, list[str]]:
    chat = await vault.create_chat(title="history")
    ids = [f"m{n:03d}" for n in range(count)]
    await vault.append_messages(chat.id, [user(i, f"text {i}") for i in ids])
    return chat.id, ids


@contextlib.asynccontextmanager
async def no_sqlalchemy_read(store: Any) -> AsyncIterator[None]:
    def refused() -> Any:
        raise AssertionError("a SQLAlchemy read connection was checked out")

    read = store.read
    store.read = refused
    try:
        yield
    finally:
        store.read = read


async def test_a_one_page_history_is_read_without_a_sqlalchemy_connection(vault_factory: Any) -> None:
    vault = await vault_factory()
    chat_id, ids = await filled(vault, 5)
    new = user("new", "the turn's own")
    if vault.store.dialect == "sqlite":
        async with no_sqlalchemy_read(vault.store):
            history = await openings.read_history(vault.store, chat_id, new | {"id": ids[3]})
    else:
        history = await openings.read_history(vault.store, chat_id, new | {"id": ids[3]})
    assert [m["id"] for m in history] == [*ids[:3], ids[3]]
    assert history[0]["parts"] == [{"type": "text", "text": "text m000"}]


@pytest.mark.parametrize("page", [2, 3, 10])
async def test_a_history_longer_than_a_page_is_read_whole_in_order(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    vault = await vault_factory()
    chat_id, ids = await filled(vault, 7)
    monkeypatch.setattr(openings, "MAX_PAGE", page)
    history = await openings.read_history(vault.store, chat_id, user(ids[6], "last"))
    assert [m["id"] for m in history] == ids
    assert history[-1]["parts"] == [{"type": "text", "text": "last"}]  # the turn's own copy
