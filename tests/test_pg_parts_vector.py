"""PostgreSQL's parts inserts (`store.parts.pg_parts_insert_sql`, revision 0034): the turn's
opening and finalize and both appends write each part's search vector in the statement, and a
batch of text, reasoning and step-start parts only is read from `json_to_recordset` over those
columns (`narrow`) instead of `json_populate_recordset` over the whole row type. Every write path
stores the same rows and the vector `parts_search_vector()` would have set, for every part type,
and none of them calls the trigger's PL/pgSQL function."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genvault.store import chats, finishes, openings
from genvault.store.parts import PAGE_PART_COLUMNS, pg_parts_narrow

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 7, 1, 0, 0, 123456, tzinfo=UTC)
# A part row's search vector as revision 0009's `parts_search_vector()` sets it.
VECTOR = (
    "CASE WHEN type = 'text' THEN to_tsvector('simple', text_text) || array_to_tsvector(ARRAY['#' || md5(user_id)]) END"
)
NARROW_PARTS: list[dict[str, Any]] = [
    {"type": "step-start"},
    {"type": "reasoning", "text": "think it over", "state": "done", "providerMetadata": {"o": {"i": 1}}},
    {"type": "text", "text": "Hello, fjord-world! 3.5 café 🎉", "state": "done", "providerMetadata": {"a": None}},
    {"type": "text", "text": ""},
    {"type": "text", "text": "Ünïcödé ✓ the the THE"},
]
EVERY_PART: list[dict[str, Any]] = [
    *NARROW_PARTS,
    {"type": "tool-weather", "toolCallId": "c1", "state": "output-available", "input": {"c": 1}, "output": {"t": 2}},
    {"type": "tool-bad", "toolCallId": "c2", "state": "output-error", "rawInput": "{oops", "errorText": "invalid"},
    {
        "type": "dynamic-tool",
        "toolName": "mcp",
        "toolCallId": "c5",
        "state": "output-available",
        "input": [1],
        "output": "done",
        "preliminary": True,
        "providerExecuted": False,
    },
    {"type": "data-w", "id": "d1", "data": {"c": 3}},
    {"type": "file", "mediaType": "text/plain", "filename": "a.txt", "url": "https://x/a.txt"},
    {"type": "source-url", "sourceId": "s1", "url": "https://x", "title": "X"},
    {"type": "source-document", "sourceId": "s2", "mediaType": "application/pdf", "title": "Doc"},
    {"type": "text", "text": "after the tools"},
]


def _message(message_id: str, parts: list[dict[str, Any]], role: str = "user") -> dict[str, Any]:
    return {"id": message_id, "role": role, "parts": parts}


def _generation(chat_id: str, generation_id: str, reply_id: str) -> dict[str, Any]:
    return {
        "id": generation_id,
        "kind": "chat",
        "user_id": "alice",
        "chat_id": chat_id,
        "message_id": reply_id,
        "model": "m",
        "provider": "p",
        "request": {},
        "created_at": NOW,
        "lease_owner": "me",
        "lease_expires_at": NOW + timedelta(seconds=30),
    }


async def _explained_vector_calls(conn: Any, sql: str, params: tuple[Any, ...]) -> dict[str, int]:
    """Run the statement under EXPLAIN ANALYZE: each parts vector trigger's calls."""
    plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *params))[0]
    return {t["Trigger Name"]: t["Calls"] for t in plan.get("Triggers", []) if "search_vector" in t["Trigger Name"]}


async def _turn(conn: Any, chat_id: str, asked: list[dict[str, Any]], reply: list[dict[str, Any]]) -> dict[str, int]:
    """A new chat's turn by the tree's statements (as `_open_postgresql` and `_finish_postgresql`
    choose them): the vector trigger's calls."""
    generation = _generation(chat_id, f"g-{chat_id}", f"a-{chat_id}")
    message = _message(f"u-{chat_id}", asked)
    params = openings.postgresql_params(chat_id, "alice", "t", message, generation, None)
    calls = await _explained_vector_calls(conn, openings._postgresql_sql(pg_parts_narrow(asked)), params)
    answer = _message(f"a-{chat_id}", reply, "assistant")
    values = {"status": "complete", "result_text": "x", "result_message": answer}
    values |= {"started_at": NOW, "first_token_at": NOW, "finished_at": NOW}
    params = finishes.postgresql_params(f"g-{chat_id}", values, chat_id, "alice", answer, None)
    sql = finishes._postgresql_sql(False, pg_parts_narrow(reply))
    for name, n in (await _explained_vector_calls(conn, sql, params)).items():
        calls[name] = calls.get(name, 0) + n
    return calls


async def _rows(conn: Any, chat_id: str) -> list[tuple[Any, ...]]:
    columns = ", ".join(("message_id", "position", "user_id", *PAGE_PART_COLUMNS, "search_vector::text"))
    rows = await conn.fetch(f"SELECT {columns} FROM parts WHERE chat_id = $1 ORDER BY message_id, position", chat_id)
    return [tuple(r) for r in rows]


async def _wrong_vectors(conn: Any) -> list[tuple[str, str, int]]:
    rows = await conn.fetch(
        f"SELECT chat_id, message_id, position FROM parts WHERE search_vector IS DISTINCT FROM {VECTOR} "
        "ORDER BY 1, 2, 3"
    )
    return [tuple(r) for r in rows]


async def test_every_write_path_stores_the_triggers_vector_for_every_part_type_without_calling_it(
    pg_connection: Any,
) -> None:
    conn = pg_connection
    await conn.execute("INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now())")
    assert pg_parts_narrow(NARROW_PARTS)
    assert not pg_parts_narrow(EVERY_PART)
    # The turn, narrow and whole: the trigger is never called.
    assert await _turn(conn, "narrow", NARROW_PARTS, NARROW_PARTS) == {}
    assert await _turn(conn, "whole", EVERY_PART, EVERY_PART) == {}
    # The appends (inside a turn's transaction, and alone in autocommit), narrow and whole.
    for name in ("append", "alone"):
        await conn.execute(
            "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
            f"VALUES ('{name}', 'alice', 'private', 0, now(), now())"
        )
    for parts, suffix in ((NARROW_PARTS, "n"), (EVERY_PART, "w")):
        batch = [_message(f"m1{suffix}", parts), _message(f"m2{suffix}", parts[::-1], "assistant")]
        narrow = pg_parts_narrow(part for m in batch for part in m["parts"])
        params = chats._append_params_pg("append", "alice", batch, None)
        sql = chats._append_statement(narrow=narrow)
        assert await _explained_vector_calls(conn, sql, params) == {}
        sql = chats._ALONE_SQL[narrow]
        assert await _explained_vector_calls(conn, sql, chats._alone_params("alone", "alice", batch)) == {}
    counts = dict(await conn.fetch("SELECT chat_id, count(*) FROM parts GROUP BY chat_id"))
    assert counts == {"narrow": 10, "whole": 26, "append": 36, "alone": 36}
    assert await conn.fetchval("SELECT count(*) FROM parts WHERE search_vector IS NOT NULL") == 42
    assert await _wrong_vectors(conn) == []


async def test_the_narrow_statements_store_the_same_rows_as_the_whole_ones(pg_connection: Any) -> None:
    """The same text, reasoning and step-start parts inserted by the narrow statement and by the
    whole row type's: the same rows, column for column, vectors included."""
    conn = pg_connection
    await conn.execute("INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now())")
    for chat_id, narrow in (("n", True), ("w", False)):
        message = _message("u1", NARROW_PARTS)
        generation = _generation(chat_id, f"g-{chat_id}", "a1")
        params = openings.postgresql_params(chat_id, "alice", "t", message, generation, None)
        assert tuple(await conn.fetchrow(openings._postgresql_sql(narrow), *params))[:2] == (True, False)
        answer = _message("a1", NARROW_PARTS[::-1], "assistant")
        values = {"status": "complete", "result_text": "x", "result_message": answer}
        values |= {"started_at": NOW, "first_token_at": NOW, "finished_at": NOW}
        params = finishes.postgresql_params(f"g-{chat_id}", values, chat_id, "alice", answer, None)
        assert await conn.fetchval(finishes._postgresql_sql(False, narrow), *params) is True
    narrow_rows = await _rows(conn, "n")
    assert len(narrow_rows) == 10
    assert narrow_rows == await _rows(conn, "w")
    assert await _wrong_vectors(conn) == []


async def test_a_value_too_long_for_its_column_fails_the_narrow_statement_as_the_whole_one(pg_connection: Any) -> None:
    import asyncpg

    conn = pg_connection
    await conn.execute("INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now())")
    parts = [{"type": "reasoning", "id": "r" * 201, "text": "x"}]
    for chat_id, narrow in (("n", True), ("w", False)):
        params = openings.postgresql_params(
            chat_id, "alice", "t", _message("u1", parts), _generation(chat_id, f"g-{chat_id}", "a1"), None
        )
        with pytest.raises(asyncpg.StringDataRightTruncationError):
            await conn.fetchrow(openings._postgresql_sql(narrow), *params)
