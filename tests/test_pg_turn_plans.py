"""The chat turn's PostgreSQL statements: how they are planned and committed.

The plans PostgreSQL keeps for them find their rows by primary key, even with no planner
statistics (a new database, a server with autovacuum off) and under the generic plan a pooled
connection keeps for a prepared statement for as long as it lives.

Without statistics the planner costs an equality on `chats.user_id` like the one on the primary
key, and the generic plans it made when the tables were small looked the chat up through
`(user_id, updated_at)` and filtered every chat of the user on every turn (twice: the opening
and the finalize), so each turn cost the database more than the last. Checked by the plan's
text, not by timing.

The first-token mark, no durability promise, commits without waiting for its WAL flush; the
opening and the finalize, which the client is told about, keep the server's synchronous commit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from genvault.store import finishes, openings, processes
from genvault.store.chats import _append_statement

pytestmark = pytest.mark.postgres


@pytest.fixture
async def conn(pg_schema: tuple[str, str], pg_template: str) -> AsyncIterator[Any]:
    """A connection to a migrated schema holding a user with many chats, never analyzed."""
    import asyncpg

    url, schema = pg_schema
    connection = await asyncpg.connect(url)
    try:
        if pg_template:
            await connection.execute(pg_template.format(schema=schema))
        else:  # no pg_dump: migrate it here
            from genvault.store import Store

            store = Store(url, schema=schema)
            try:
                await store.upgrade()
            finally:
                await store.aclose()
        await connection.execute(f'SET search_path TO "{schema}"')
        await connection.execute(
            "INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now())"
        )
        await connection.execute(
            "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
            "SELECT 'c' || i, 'alice', 'private', 0, now(), now() FROM generate_series(1, 200) AS i"
        )
        # The plan a pooled connection settles on after its first executions.
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        yield connection
    finally:
        await connection.close()


async def generic_plan(conn: Any, sql: str) -> str:
    await conn.execute(f"PREPARE probe AS {sql}")
    count = await conn.fetchval("SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'probe'")
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE probe({', '.join(['NULL'] * count)})")
    await conn.execute("DEALLOCATE probe")
    return json.dumps(plan)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(openings._postgresql_sql, id="opening"),
        pytest.param(finishes._postgresql_sql, id="finalize"),
        pytest.param(lambda: _append_statement(check_ids=False), id="append alone"),
        pytest.param(lambda: _append_statement(check_ids=True), id="append in a transaction"),
    ],
)
async def test_the_chat_row_is_found_by_its_key_not_among_the_users_chats(conn: Any, statement: Any) -> None:
    plan = await generic_plan(conn, statement())
    assert "pk_chats" in plan
    assert "ix_chats_user_id_updated_at" not in plan


async def test_the_first_token_mark_commits_without_waiting_for_its_flush(conn: Any) -> None:
    # What the mark's own transaction runs with, as a trigger on the row sees it.
    await conn.execute("CREATE TABLE seen (setting text)")
    await conn.execute(
        "CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO seen VALUES (current_setting('synchronous_commit')); RETURN NEW; END $$"
    )
    await conn.execute(
        "CREATE TRIGGER note BEFORE UPDATE ON generations FOR EACH ROW EXECUTE FUNCTION note_commit_mode()"
    )
    await conn.execute(
        "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at) "
        "VALUES ('g1', 'chat', 'alice', 'pending', 'm', 'p', '{}', now())"
    )
    now = datetime.now(UTC)
    await conn.execute(processes._MARK_STREAMING_PG, ["g1"], [now], [now], "me", now)
    assert await conn.fetchval("SELECT status FROM generations WHERE id = 'g1'") == "streaming"
    assert [r["setting"] for r in await conn.fetch("SELECT setting FROM seen")] == ["off"]
    # Only that transaction: the connection's next statements commit as the server says.
    assert await conn.fetchval("SHOW synchronous_commit") == "on"
