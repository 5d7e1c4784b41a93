"""The chat turn's PostgreSQL statements: how they are planned and committed.

The plans PostgreSQL keeps for them find their rows by primary key, even with no planner
statistics (a new database, a server with autovacuum off) or with those of a grown database,
and under the generic plan a pooled connection keeps for a prepared statement for as long as it
lives.

Without statistics the planner costs an equality on `chats.user_id` like the one on the primary
key, and the generic plans it made when the tables were small looked the chat up through
`(user_id, updated_at)` and filtered every chat of the user on every turn (twice: the opening
and the finalize), so each turn cost the database more than the last. Checked by the plan's
text, not by timing.

The first-token mark, no durability promise, commits without waiting for its WAL flush; the
opening and the finalize, which the client is told about, keep the server's synchronous commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from genvault.store import Store, finishes, openings, processes
from genvault.store.chats import _append_statement

pytestmark = pytest.mark.postgres


@pytest.fixture
async def conn(pg_connection: Any) -> Any:
    """A connection to a migrated schema holding a user with many chats, never analyzed."""
    await pg_connection.execute(
        "INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now())"
    )
    await pg_connection.execute(
        "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
        "SELECT 'c' || i, 'alice', 'private', 0, now(), now() FROM generate_series(1, 200) AS i"
    )
    # The plan a pooled connection settles on after its first executions.
    await pg_connection.execute("SET plan_cache_mode = force_generic_plan")
    return pg_connection


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
        pytest.param(lambda: finishes._postgresql_sql(purging=False), id="finalize without a purge"),
        pytest.param(lambda: _append_statement(check_ids=False), id="append alone"),
        pytest.param(lambda: _append_statement(check_ids=True), id="append in a transaction"),
        pytest.param(lambda: _append_statement(touch=False), id="a reply's save in a transaction"),
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


async def add_generations(conn: Any, count: int, *, active_every: int = 10) -> None:
    """`count` generations, finished and (one in `active_every`) active, never analyzed."""
    await conn.execute(
        "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at) "
        "SELECT 'g' || i, 'chat', 'alice', CASE WHEN i % $2 = 0 THEN 'streaming' ELSE 'complete' END, "
        "'m', 'p', '{}', now() FROM generate_series(1, $1) AS i",
        count,
        active_every,
    )


def scans(plan: str) -> list[tuple[str, str | None]]:
    """Each node of a JSON plan reading `generations` or an index: (node type, index name)."""
    found: list[tuple[str, str | None]] = []

    def walk(node: dict[str, Any]) -> None:
        reads_table = node.get("Relation Name") == "generations" and node["Node Type"] != "ModifyTable"
        if reads_table or "Index Name" in node:
            found.append((node["Node Type"], node.get("Index Name")))
        for child in node.get("Plans", []):
            walk(child)

    document = json.loads(plan)
    if isinstance(document, str):  # `generic_plan` quotes asyncpg's JSON text again
        document = json.loads(document)
    walk(document[0]["Plan"])
    return found


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(lambda: processes._MARK_STREAMING_PG, id="first-token mark"),
        pytest.param(
            lambda: (
                processes._CHECKPOINT_PG.replace(":payload", "$1")
                .replace(":at", "$2::timestamptz")
                .replace(":ids", "$3")
            ),
            id="checkpoint",
        ),
    ],
)
@pytest.mark.parametrize(
    ("count", "analyzed"),
    [
        pytest.param(0, False, id="empty"),
        pytest.param(2000, False, id="never analyzed"),
        # A grown database as autovacuum's ANALYZE sees it: nearly every generation finished.
        # The statistics then put the active ones at a row or so, and a sequential scan of
        # the table for them (then matched against the batch) looked cheapest.
        pytest.param(2000, True, id="analyzed"),
    ],
)
async def test_each_generation_is_found_by_its_key_not_among_the_active_ones(
    conn: Any, statement: Any, count: int, analyzed: bool
) -> None:
    await add_generations(conn, count, active_every=500 if analyzed else 10)
    if analyzed:
        await conn.execute("ANALYZE generations")
    plan = await generic_plan(conn, statement())
    # Only by primary key, in the plan made on an empty table as on a bigger one: not through the
    # status index (its entries include every version of a row ever active not yet vacuumed
    # away), not a sequential scan (every row of the table).
    assert scans(plan) == [("Index Scan", "pk_generations")], scans(plan)


async def test_the_batch_statements_write_each_active_generation_and_only_those(conn: Any) -> None:
    await conn.execute(
        "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, result_text) "
        "VALUES ('a', 'chat', 'alice', 'pending', 'm', 'p', '{}', now(), 'x'), "
        "('b', 'chat', 'alice', 'complete', 'm', 'p', '{}', now(), 'x'), "
        "('c', 'chat', 'alice', 'pending', 'm', 'p', '{}', now(), 'x')"
    )
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    await conn.execute(processes._MARK_STREAMING_PG, ["a", "b", "c"], [t1, t1, t2], [t1, t2, t2], "me", t2)
    rows = await conn.fetch("SELECT id, status, started_at, first_token_at FROM generations ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("a", "streaming", t1, t1),
        ("b", "complete", None, None),
        ("c", "streaming", t2, t2),
    ]
    checkpoint = processes._CHECKPOINT_PG.replace(":payload", "$1").replace(":at", "$2").replace(":ids", "$3")
    payload = [{"i": "c", "o": 1, "t": "yz"}, {"i": "b", "o": 1, "t": "!"}, {"i": "a", "o": 0, "t": "new"}]
    written = await conn.fetch(checkpoint, json.dumps(payload), t2, [r["i"] for r in payload])
    assert {r["id"] for r in written} == {"a", "c"}
    texts = await conn.fetch("SELECT id, result_text FROM generations ORDER BY id")
    assert [tuple(r) for r in texts] == [("a", "new"), ("b", "x"), ("c", "xyz")]


async def test_a_new_chats_opening_reads_no_message_of_any_chat(pg_schema: tuple[str, str], conn: Any) -> None:
    """The history count runs for a claimed chat only: a new chat has no message, and its count,
    whose generic plan under statistics of a one-chat `messages` is a scan of the whole table,
    is not run at all. Two probes of `messages` by primary key remain: the claim's test that the
    chat does not hold the message id (uncorrelated, so run before the chat is looked up) and the
    foreign-key check of the message's part."""
    url, schema = pg_schema
    # Statistics in which every message is one chat's (`chat_id = $1` costed as the whole table).
    await conn.execute(
        "INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) "
        "SELECT 'c1', 'm' || i, i, 'alice', 'user', now() FROM generate_series(1, 300) AS i"
    )
    await conn.execute("ANALYZE messages")
    scans_sql = "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'messages'::regclass"
    store = Store(url, schema=schema)
    try:
        before = await conn.fetchval(scans_sql)
        now = datetime.now(UTC)
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
        generation = {
            "id": "gen_1",
            "kind": "chat",
            "user_id": "alice",
            "chat_id": "c-new",
            "message_id": "a1",
            "model": "offline/test-model",
            "provider": "offline",
            "request": {"model": "test-model"},
            "created_at": now,
        }
        opening = await openings.open_chat_turn(
            store, chat_id="c-new", user_id="alice", title=None, message=message, generation=generation
        )
        assert opening.how == "new"
        async with store.driver() as driver:  # the opening's connection reports its counts now
            await driver.run(lambda c: c.execute("SELECT pg_stat_force_next_flush()"), what="read")
            await driver.run(lambda c: c.execute("SELECT 1"), what="read")
        assert await conn.fetchval(scans_sql) - before == 2
        request = json.loads(await conn.fetchval("SELECT request FROM generations WHERE id = 'gen_1'"))
        assert request["messages_before"] == 1
    finally:
        await store.aclose()


async def test_the_first_token_mark_writes_no_index_entry(conn: Any) -> None:
    """No index of `generations` holds the status or the lease (revision 0029), so the move to
    `streaming` is a HOT update: the row's new version on its page, no entry in any index. The
    finalize's version leaves the index of running records (its predicate no longer holds)."""
    await conn.execute(
        "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, "
        "lease_owner, lease_expires_at) VALUES ('g1', 'chat', 'alice', 'pending', 'm', 'p', '{}', now(), 'me', now())"
    )
    now = datetime.now(UTC)
    async with conn.transaction():  # this transaction's own counts (`pg_stat_xact_user_tables`)
        await conn.execute(processes._MARK_STREAMING_PG, ["g1"], [now], [now], "me", now)
        updated, hot = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'generations'::regclass"
        )
    assert (updated, hot) == (1, 1)
    running = "SELECT count(*) FROM generations WHERE finished_at IS NULL AND status IN ('pending', 'streaming')"
    assert await conn.fetchval(running) == 1
    await conn.execute("UPDATE generations SET status = 'complete', finished_at = now() WHERE id = 'g1'")
    assert await conn.fetchval(running) == 0


async def test_the_sweepers_search_for_running_records_reads_only_their_index(conn: Any) -> None:
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from genvault.store.generations import ACTIVE_ROWS
    from genvault.store.schema import generations

    await conn.execute(
        "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, finished_at) "
        "SELECT 'g' || i, 'chat', 'alice', CASE WHEN i % 500 = 0 THEN 'streaming' ELSE 'complete' END, "
        "'m', 'p', '{}', now(), CASE WHEN i % 500 = 0 THEN NULL ELSE now() END FROM generate_series(1, 5000) AS i"
    )
    await conn.execute("ANALYZE generations")
    query = select(generations.c.id).where(ACTIVE_ROWS)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}")
    assert scans(plan) == [("Index Scan", "ix_generations_active")], scans(plan)
    assert len(await conn.fetch(sql)) == 10


async def test_the_finalizes_update_of_a_chat_writes_no_index_entry_even_on_a_filled_page(conn: Any) -> None:
    """The one-step finalize leaves the chat's `updated_at` as the turn's opening set it, so its
    update of the chat row (`last_seq`, `active_generation_id`) changes no column of any index
    of `chats` (the list's, the primary key, the title's search expression): with the room
    revision 0031 keeps on every page, even a page that inserts filled, it is a HOT update."""
    # Rows of ~500 bytes: inserts fill a page but for less than one row's room (to 100 %), or
    # leave two rows' room (to 90 %); the first row is on such a page.
    await conn.execute(
        "INSERT INTO chats (id, user_id, title, visibility, last_seq, active_generation_id, created_at, updated_at) "
        "SELECT 'full' || i, 'alice', rpad('title ' || i, 440, '.'), 'private', 1, 'g' || i, now(), now() "
        "FROM generate_series(1, 100) AS i"
    )
    await conn.execute(
        "INSERT INTO generations (id, kind, user_id, chat_id, status, model, provider, request, created_at) "
        "VALUES ('g1', 'chat', 'alice', 'full1', 'pending', 'm', 'p', '{}', now())"
    )
    opened = await conn.fetchval("SELECT updated_at FROM chats WHERE id = 'full1'")
    page = "SELECT (ctid::text::point)[0] FROM chats WHERE id = 'full1'"
    assert await conn.fetchval(page) < await conn.fetchval("SELECT max((ctid::text::point)[0]) FROM chats")
    reply = {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "hello"}]}
    final = {"status": "complete", "result_text": "hello", "finished_at": datetime.now(UTC)}
    params = finishes.postgresql_params("g1", final, "full1", "alice", reply, None)
    async with conn.transaction():  # this transaction's own counts (`pg_stat_xact_user_tables`)
        assert await conn.fetchval(finishes._postgresql_sql(purging=False), *params) is True
        updated, hot = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'chats'::regclass"
        )
    assert (updated, hot) == (1, 1)
    chat = await conn.fetchrow("SELECT last_seq, active_generation_id, updated_at FROM chats WHERE id = 'full1'")
    assert tuple(chat) == (2, None, opened)
    assert await conn.fetchval("SELECT seq FROM messages WHERE chat_id = 'full1' AND id = 'a1'") == 2
