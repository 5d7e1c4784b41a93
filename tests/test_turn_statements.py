"""How many SQL statements a chat turn runs on SQLite, exactly: a redundant read put back into the
turn's path (reading the chat twice, probing a new chat for the message, reading the history
back) makes this fail. Counted by SQLite's trace callback, not timed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from genvault.providers import testmodel as tm

# Everything SQLite runs: BEGIN, COMMIT and ROLLBACK included, an `executemany` once per row (the
# reply's two parts are two); no checkpoints (see below). (24 by SQLAlchemy's cursor listener
# before the append ran on the driver: the same statements without COMMIT/ROLLBACK and a row.)
NEW_CHAT_FIRST_TURN = 31


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_new_chats_first_turn_runs_a_fixed_number_of_statements(vault_factory: Any) -> None:
    # Checkpoints come on a timer; a minute apart, none falls inside this short reply.
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides={"checkpoint_ms": 60_000}
    )
    await vault.ensure_user("local")  # the user exists before a turn in the server too
    statements: list[str] = []

    # Counted by SQLite itself (its trace callback on every pooled connection): statements that
    # bypass SQLAlchemy (the append runs on the aiosqlite connection) count too.
    def trace(conn: Any, record: Any, proxy: Any) -> None:
        await_only(conn.driver_connection.set_trace_callback(statements.append))

    event.listen(vault.store.engine.sync_engine, "checkout", trace)
    try:
        turn = await vault.chat("c1", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]})
        final = await vault.wait(turn.generation.id)
    finally:
        event.remove(vault.store.engine.sync_engine, "checkout", trace)
    assert final.status == "complete"
    assert len(statements) == NEW_CHAT_FIRST_TURN, "\n".join(s.split("\n")[0][:100] for s in statements)
