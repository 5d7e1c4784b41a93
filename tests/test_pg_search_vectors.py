"""PostgreSQL's search vectors (revisions 0009, 0027): the triggers that set them run only for a
row that gets a vector or must lose one, and the GIN indexes hold only rows that have one. A
chat turn writes its generation three times and its parts once, and none of those rows has a
vector but the text parts: they no longer call a PL/pgSQL function that sets NULL, nor add a
NULL item to an index no search reads. Checked by the triggers' calls as `EXPLAIN ANALYZE`
counts them and by the indexes' definitions and plans, not by timing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genvault.store import Store
from genvault.store.db import upgrade

pytestmark = pytest.mark.postgres

_ALICE_OWNS = "array_to_tsvector(ARRAY['#' || md5('alice')])"


@pytest.fixture
async def conn(pg_connection: Any) -> Any:
    """A connection to a migrated schema holding a user and a chat with one message."""
    await _chat(pg_connection)
    return pg_connection


async def _chat(conn: Any) -> None:
    await conn.execute(
        "INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now());"
        "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
        "VALUES ('c1', 'alice', 'private', 1, now(), now());"
        "INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) "
        "VALUES ('c1', 'm1', 1, 'alice', 'user', now())"
    )


async def _vector_calls(conn: Any, sql: str) -> dict[str, int]:
    """Run `sql` under EXPLAIN ANALYZE: how many times each search-vector trigger was called."""
    plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))[0]
    return {t["Trigger Name"]: t["Calls"] for t in plan.get("Triggers", []) if "_search_vector" in t["Trigger Name"]}


async def _generation(conn: Any, generation_id: str, kind: str) -> dict[str, int]:
    """A generation's three writes as a chat turn makes them: pending, streaming, complete."""
    chat = "'c1'" if kind == "chat" else "NULL"
    writes = [
        "INSERT INTO generations (id, kind, user_id, chat_id, status, model, provider, request, created_at) "
        f"VALUES ('{generation_id}', '{kind}', 'alice', {chat}, 'pending', 'm', 'p', "
        """'{"prompt": "tell me about fjords"}', now())""",
        f"UPDATE generations SET status = 'streaming', first_token_at = now() WHERE id = '{generation_id}'",
        f"UPDATE generations SET status = 'complete', result_text = 'glacier harbor', finished_at = now() "
        f"WHERE id = '{generation_id}'",
    ]
    calls: dict[str, int] = {}
    for sql in writes:
        for name, n in (await _vector_calls(conn, sql)).items():
            calls[name] = calls.get(name, 0) + n
    return calls


async def test_a_chat_generation_never_calls_the_vector_trigger(conn: Any) -> None:
    assert await _generation(conn, "gen_chat", "chat") == {}
    assert await conn.fetchval("SELECT search_vector FROM generations WHERE id = 'gen_chat'") is None


async def test_a_text_generation_calls_it_once_it_ends_and_gets_its_vector(conn: Any) -> None:
    assert await _generation(conn, "gen_text", "text") == {"generations_search_vector": 1}
    vector = await conn.fetchval(
        f"SELECT search_vector = to_tsvector('simple', 'tell me about fjords') "
        f"|| to_tsvector('simple', 'glacier harbor') || {_ALICE_OWNS} FROM generations WHERE id = 'gen_text'"
    )
    assert vector is True
    # A vector to keep up to date: a later change of a watched column calls the trigger again.
    calls = await _vector_calls(conn, "UPDATE generations SET result_text = 'island' WHERE id = 'gen_text'")
    assert calls == {"generations_search_vector": 1}
    assert await conn.fetchval(
        f"SELECT search_vector = to_tsvector('simple', 'tell me about fjords') "
        f"|| to_tsvector('simple', 'island') || {_ALICE_OWNS} FROM generations WHERE id = 'gen_text'"
    )


async def test_only_text_parts_call_the_vector_trigger_and_a_part_that_stops_being_text_loses_its_vector(
    conn: Any,
) -> None:
    insert = "INSERT INTO parts (chat_id, message_id, position, user_id, type, text_text) VALUES "
    assert await _vector_calls(conn, insert + "('c1', 'm1', 0, 'alice', 'step-start', NULL)") == {}
    # An insert that does not write the vector (revision 0034: genvault's own inserts write it).
    assert await _vector_calls(conn, insert + "('c1', 'm1', 1, 'alice', 'text', 'amber birch')") == {
        "parts_insert_search_vector": 1
    }
    vectors = await conn.fetch("SELECT position, search_vector IS NOT NULL AS has FROM parts ORDER BY position")
    assert [(r["position"], r["has"]) for r in vectors] == [(0, False), (1, True)]

    calls = await _vector_calls(
        conn, "UPDATE parts SET type = 'reasoning', reasoning_text = 'hm', text_text = NULL WHERE position = 1"
    )
    assert calls == {"parts_search_vector": 1}  # it had a vector: cleared
    assert await conn.fetchval("SELECT search_vector FROM parts WHERE position = 1") is None
    # Now without one, its next change does not call it.
    assert await _vector_calls(conn, "UPDATE parts SET reasoning_text = 'hmm' WHERE position = 1") == {}


async def test_the_search_indexes_hold_only_rows_with_a_vector_and_a_match_uses_them(conn: Any) -> None:
    definitions = dict(
        await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname IN ('ix_parts_search', 'ix_generations_search')"
        )
    )
    assert set(definitions) == {"ix_parts_search", "ix_generations_search"}
    for definition in definitions.values():
        assert definition.endswith("WHERE (search_vector IS NOT NULL)")
    await conn.execute("SET enable_seqscan = off")
    for table, index in (("parts", "ix_parts_search"), ("generations", "ix_generations_search")):
        # Prepared with a parameter, as the search sends it: the match implies the index's predicate.
        await conn.execute(
            f"PREPARE probe(text) AS SELECT 1 FROM {table} WHERE search_vector @@ plainto_tsquery('simple', $1)"
        )
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) EXECUTE probe('fjord')")
        await conn.execute("DEALLOCATE probe")
        await conn.execute("RESET plan_cache_mode")
        assert index in plan


async def test_0027_rebuilds_the_indexes_of_a_filled_database_and_keeps_every_vector(
    pg_schema: tuple[str, str],
) -> None:
    import asyncpg

    url, schema = pg_schema
    store = Store(url, schema=schema)
    try:
        await upgrade(store.engine, "0024")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            await _chat(conn)
            await _generation(conn, "gen_chat", "chat")
            await _generation(conn, "gen_text", "text")
            await conn.execute(
                "INSERT INTO parts (chat_id, message_id, position, user_id, type, text_text) VALUES "
                "('c1', 'm1', 0, 'alice', 'step-start', NULL), ('c1', 'm1', 1, 'alice', 'text', 'amber birch')"
            )
            vectors = (
                "SELECT id, search_vector::text FROM generations "
                "UNION ALL SELECT position::text, search_vector::text FROM parts"
            )
            before = set(await conn.fetch(vectors))

            await store.upgrade()  # rows in the tables: the indexes are built CONCURRENTLY

            assert set(await conn.fetch(vectors)) == before
            indexes = await conn.fetch(
                "SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) AS definition "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE '%search%'"
            )
            by_name = {r["relname"]: r for r in indexes}
            assert set(by_name) == {"ix_parts_search", "ix_generations_search", "ix_chats_search"}
            for name in ("ix_parts_search", "ix_generations_search"):
                assert by_name[name]["indisvalid"]
                assert by_name[name]["definition"].endswith("WHERE (search_vector IS NOT NULL)")
            assert "ix_generations_cache_key" not in {
                r["relname"]
                for r in await conn.fetch(
                    "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
                )
            }
            assert await _generation(conn, "gen_chat_2", "chat") == {}
        finally:
            await conn.close()
    finally:
        await store.aclose()
