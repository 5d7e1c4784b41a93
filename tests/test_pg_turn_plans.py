"""The plans PostgreSQL keeps for the chat turn's statements find their rows by primary key, even
with no planner statistics (a new database, a server with autovacuum off) and under the generic
plan a pooled connection keeps for a prepared statement for as long as it lives.

Without statistics the planner costs an equality on `chats.user_id` like the one on the primary
key, and the generic plans it made when the tables were small looked the chat up through
`(user_id, updated_at)` and filtered every chat of the user on every turn (twice: the opening
and the finalize), so each turn cost the database more than the last. Checked by the plan's
text, not by timing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genvault.store import finishes, openings
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
