"""`alembic upgrade head` on an empty database gives exactly the schema in `store/schema.py`, and
revisions that move data move it right."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import String, column, inspect, table
from sqlalchemy import text as sa_text

from genvault.search.ddl import (
    PG_INDEXES,
    PG_VECTOR_COLUMN,
    SQLITE_FTS_TABLES,
    SQLITE_QUEUE,
    is_search_object,
    missing_objects,
)
from genvault.store import Store
from genvault.store.audit import list_events, user_hash
from genvault.store.db import upgrade
from genvault.store.schema import JSONValue, UTCDateTime, in_dialect, metadata, users
from traces import rows_mentioning


@pytest.mark.empty_database
async def test_upgrade_head_on_an_empty_database_matches_the_metadata_exactly(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    store = Store(url, schema=schema)
    try:
        await store.upgrade()
        await store.upgrade()  # a second run is a no-op

        async with store.engine.connect() as conn:
            left_out: set[str] = set()

            def not_search(name: str | None, type_: str, parent_names: Any) -> bool:
                if is_search_object(name):
                    left_out.add(f"{type_} {name}")
                    return False
                return True

            def diff(sync_conn: Any) -> list[Any]:
                # Search's FTS5 tables (SQLite) and GIN expression indexes (PostgreSQL) are not in
                # the metadata, which cannot express them; they are left out of the comparison
                # here, by name, and checked below instead.
                # An index or constraint of the other database only (`ddl_if`) is not looked for;
                # what this database holds beyond the metadata is still reported.
                def here(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
                    return reflected or in_dialect(item, sync_conn.dialect.name)

                opts = {"compare_type": True, "include_name": not_search, "include_object": here}
                context = MigrationContext.configure(sync_conn, opts=opts)
                return list(compare_metadata(context, metadata))

            differences = await conn.run_sync(diff)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            missing = await missing_objects(conn)
        assert differences == []
        assert set(metadata.tables) <= tables
        assert missing == []
        # What was left out is search's and nothing else: the FTS5 tables and their shadow tables,
        # or the three GIN indexes.
        if store.dialect == "sqlite":
            shadows = {f"table {t}{s}" for t in SQLITE_FTS_TABLES for s in ("_data", "_idx", "_docsize", "_config")}
            assert left_out == {f"table {t}" for t in (*SQLITE_FTS_TABLES, SQLITE_QUEUE)} | shadows
        else:
            columns = {f"column {PG_VECTOR_COLUMN}"}  # on parts and on generations
            assert left_out == {f"index {name}" for name in PG_INDEXES} | columns
    finally:
        await store.aclose()


@pytest.mark.empty_database
async def test_the_partial_indexes_are_the_metadatas_partial_indexes(database: tuple[str, str | None]) -> None:
    """Alembic's comparison does not look at an index's WHERE: the indexes that have one after
    `alembic upgrade head` are exactly those the metadata gives one for this database (search's
    GIN indexes apart, which the metadata cannot express)."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        await store.upgrade()
        dialect = store.dialect
        expected = {
            str(index.name)
            for table in metadata.tables.values()
            for index in table.indexes
            if in_dialect(index, dialect) and index.dialect_options[dialect]["where"] is not None
        }
        async with store.read() as conn:
            if dialect == "sqlite":
                query = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"
            else:
                query = (
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexdef LIKE '% WHERE %'"
                )
            found = {str(name) for name in (await conn.execute(sa_text(query))).scalars().all()}
        assert found - set(PG_INDEXES) == expected
        assert expected >= {"ix_generations_active", "ix_parts_user_id"}
    finally:
        await store.aclose()


async def test_generations_keep_no_index_on_the_cache_key(database: tuple[str, str | None]) -> None:
    """Revision 0027: nothing looks a generation up by its cache key (the dedup cache keeps
    `cache_entries`), so no index takes an entry for each row (each row version on PostgreSQL)."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        await store.upgrade()
        async with store.engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("generations"))
        assert [i["name"] for i in indexes if "cache_key" in i["column_names"]] == []
        assert {i["name"] for i in indexes} >= {
            "ix_generations_user_id_created_at",
            "ix_generations_chat_id_created_at",
        }
    finally:
        await store.aclose()


@pytest.mark.empty_database
async def test_0005_replaces_the_ids_in_existing_audit_events_by_their_pseudonyms(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    store = Store(url, schema=schema)
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    try:
        await upgrade(store.engine, "0004")
        # audit_events as revision 0004 made it.
        audit_0004 = table(
            "audit_events",
            column("id", String),
            column("at", UTCDateTime),
            column("actor_user_id", String),
            column("action", String),
            column("subject_user_id", String),
            column("counts", JSONValue),
        )
        async with store.engine.begin() as conn:
            await conn.execute(users.insert().values(id="root", name="root", is_admin=True, created_at=at))
            # (id, actor, action, subject)
            events = [
                ("aud_1", "root", "erase_user", "alice"),
                ("aud_2", "carol", "erase_user", "carol"),
                ("aud_3", "eve", "erase_user", "dave"),
                ("aud_4", None, "retention", None),
                ("aud_5", None, "erase_user", "eve"),
            ]
            await conn.execute(
                audit_0004.insert(),
                [
                    {"id": i, "at": at, "actor_user_id": a, "action": act, "subject_user_id": s, "counts": {}}
                    for i, a, act, s in events
                ],
            )
        await store.upgrade()

        async with store.read() as conn:
            events = {e["id"]: e for e in await list_events(conn)}
            about_alice = await list_events(conn, subject_user_id="alice")
        assert [e["id"] for e in about_alice] == ["aud_1"]
        pseudonyms = {k: (e["actor_user_id"], e["actor_user_hash"], e["subject_user_hash"]) for k, e in events.items()}
        assert pseudonyms == {
            "aud_1": ("root", None, user_hash("alice")),  # a living admin keeps their id
            "aud_2": (None, user_hash("carol"), user_hash("carol")),  # erased themself
            "aud_3": (None, user_hash("eve"), user_hash("dave")),  # the actor was erased later
            "aud_4": (None, None, None),
            "aud_5": (None, None, user_hash("eve")),
        }
        for user in ("alice", "carol", "dave", "eve"):
            assert await rows_mentioning(store, user) == {}
    finally:
        await store.aclose()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_0028_queues_chat_titles_and_its_downgrade_indexes_them_again(database: tuple[str, str | None]) -> None:
    """SQLite: from revision 0028 the chat triggers queue a title (`c+`/`c-` in the search queue)
    instead of writing the index; going back to 0027 drops the queued chat changes, rebuilds the
    titles' index from the table and writes it directly again."""
    url, _ = database
    store = Store(url)
    chat = (
        "INSERT INTO chats (id, user_id, title, visibility, last_seq, created_at, updated_at) "
        "VALUES (:id, 'local', :title, 'private', 0, '2026-12-06 13:00:00', '2026-12-06 13:00:00')"
    )
    matching = "SELECT count(*) FROM search_chats WHERE search_chats MATCH :q"
    queued = "SELECT op FROM search_parts_pending WHERE op LIKE 'c%' ORDER BY seq"

    try:
        await store.upgrade()
        async with store.write() as conn:
            await conn.execute(
                sa_text(
                    "INSERT OR IGNORE INTO users (id, name, is_admin, created_at) "
                    "VALUES ('local', 'local', 0, '2026-12-06 13:00:00')"
                )
            )
            await conn.execute(sa_text(chat), {"id": "a", "title": "walrus"})
            await conn.execute(sa_text(chat), {"id": "b", "title": "narwhal"})
            await conn.execute(sa_text("UPDATE chats SET title = 'orca' WHERE id = 'b'"))
            assert (await conn.execute(sa_text(queued))).scalars().all() == ["c+", "c+", "c-", "c+"]
            assert (await conn.execute(sa_text(matching), {"q": "walrus"})).scalar() == 0
        await _downgrade(store, "0027")
        async with store.write() as conn:
            assert (await conn.execute(sa_text(queued))).scalars().all() == []
            for q, n in (("walrus", 1), ("orca", 1), ("narwhal", 0)):
                assert (await conn.execute(sa_text(matching), {"q": q})).scalar() == n, q
            await conn.execute(sa_text(chat), {"id": "c", "title": "beluga"})
            assert (await conn.execute(sa_text(matching), {"q": "beluga"})).scalar() == 1  # direct again
            assert (await conn.execute(sa_text(queued))).scalars().all() == []
            await conn.execute(sa_text("INSERT INTO search_chats (search_chats, rank) VALUES ('integrity-check', 1)"))
        await upgrade(store.engine)
        async with store.write() as conn:
            await conn.execute(sa_text(chat), {"id": "d", "title": "dolphin"})
            assert (await conn.execute(sa_text(queued))).scalars().all() == ["c+"]
    finally:
        await store.aclose()


@pytest.mark.empty_database
async def test_0028_writes_the_turns_checks_as_comparisons_and_its_downgrade_restores_them(
    database: tuple[str, str | None],
) -> None:
    """SQLite: from revision 0028 the CHECKs a turn's rows meet are comparisons, not IN lists
    (an IN list of more than two constants builds an ephemeral table per statement run), they
    still refuse what they refused, and going back to 0027 restores the stored schema text exactly."""
    url, _ = database
    if not url.startswith("sqlite"):
        pytest.skip("SQLite's stored schema text")
    store = Store(url)
    tables = ("chats", "messages", "generations", "parts")
    stored = (
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
        "AND name IN ('chats', 'messages', 'generations', 'parts')"
    )

    async def texts() -> dict[str, str]:
        return await _by_name(store, stored)

    try:
        await upgrade(store.engine, "0027")
        before = await texts()
        assert all(" IN (" in before[t] for t in tables)
        await upgrade(store.engine)
        after = await texts()
        for t in tables:
            assert " IN (" not in after[t], t
        assert "CHECK (visibility = 'private' OR visibility = 'link' OR visibility = 'public')" in after["chats"]
        async with store.write() as conn:
            program = (
                await conn.execute(
                    sa_text(
                        "EXPLAIN INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) "
                        "VALUES ('c', 'm', 1, 'local', 'user', '2026-12-06 13:00:00')"
                    )
                )
            ).all()
            assert [row for row in program if row[1] == "OpenEphemeral"] == []
            await conn.execute(
                sa_text(
                    "INSERT OR IGNORE INTO users (id, name, is_admin, created_at) "
                    "VALUES ('local', 'local', 0, '2026-12-06 13:00:00')"
                )
            )
        refused = (
            "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
            "VALUES ('x', 'local', 'secret', 0, '2026-12-06 13:00:00', '2026-12-06 13:00:00')",
            "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at) "
            "VALUES ('g', 'chat', 'local', 'done', 'm', 'p', '{}', '2026-12-06 13:00:00')",
            "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at) "
            "VALUES ('g', 'audio', 'local', 'pending', 'm', 'p', '{}', '2026-12-06 13:00:00')",
        )
        for statement in refused:
            with pytest.raises(Exception, match="CHECK constraint failed"):
                async with store.write() as conn:
                    await conn.execute(sa_text(statement))
        await _downgrade(store, "0027")
        assert await texts() == before
        await upgrade(store.engine)
        assert await texts() == after
    finally:
        await store.aclose()


# The CHECK constraints of a chat turn's tables on PostgreSQL, by name.
_TURN_CHECKS = (
    "FROM pg_constraint WHERE contype = 'c' AND conrelid IN "
    "('parts'::regclass, 'generations'::regclass, 'chats'::regclass, 'messages'::regclass) ORDER BY 1"
)


async def _by_name(store: Store, sql: str) -> dict[str, Any]:
    """A two-column query's rows as {first column: second column}."""
    async with store.read() as conn:
        return {name: value for name, value in (await conn.execute(sa_text(sql))).all()}


async def _downgrade(store: Store, revision: str) -> None:
    """Alembic's downgrade to `revision` on the store's engine (the tests' counterpart of
    `genvault.store.db.upgrade`)."""
    from alembic import command

    from genvault.store.db import _config

    async with store.engine.connect() as conn:

        def _run(sync_conn: Any) -> None:
            config = _config()
            config.attributes["connection"] = sync_conn
            command.downgrade(config, revision)

        await conn.run_sync(_run)
        await conn.commit()


async def _down_and_up(store: Store, revision: str) -> None:
    """Upgrade to head, downgrade to `revision`, upgrade again: a PostgreSQL-only revision's
    round trip on SQLite, where it must run clean (the revision is a no-op there)."""
    await store.upgrade()
    await _downgrade(store, revision)
    await store.upgrade()


_USER = "INSERT INTO users (id, name, is_admin, created_at) VALUES ('u', 'u', false, '2026-12-06 17:00:00+00')"
_CHAT = (
    "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
    "VALUES ('c', 'u', {visibility}, 0, '2026-12-06 17:00:00+00', '2026-12-06 17:00:00+00')"
)
_MESSAGE = (
    "INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) "
    "VALUES ('c', {id}, {seq}, 'u', {role}, '2026-12-06 17:00:00+00')"
)
_PART = (
    "INSERT INTO parts (chat_id, message_id, position, user_id, type{names}) "
    "VALUES ('c', 'm', {position}, 'u', {values})"
)
_GENERATION = (
    "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, cost_nano_usd) "
    "VALUES ({id}, {kind}, 'u', {status}, 'm', 'p', '{{}}', '2026-12-06 17:00:00+00', {cost})"
)
_TOOL = {"tool_name": "'t'", "tool_call_id": "'call'", "state": "'output-available'"}
# (type, the columns given): each part a family's required columns would refuse, one left out
_PARTS_REFUSED = [
    ("text", {}),
    ("reasoning", {}),
    ("tool-search", {"tool_name": "'t'", "tool_call_id": "'call'"}),
    ("tool-search", {**_TOOL, "state": "'done'"}),
    ("dynamic-tool", {"tool_call_id": "'call'", "state": "'input-available'"}),
    ("tool-search", {"tool_name": "'t'", "state": "'input-available'"}),
    ("source-url", {"source_id": "'s'"}),
    ("source-document", {"source_id": "'s'", "source_media_type": "'text/plain'"}),
    ("file", {"file_media_type": "'image/png'"}),
]
_PARTS_ACCEPTED = [
    ("text", {"text_text": "'hi'"}),
    ("reasoning", {"reasoning_text": "'hm'"}),
    ("tool-search", _TOOL),
    ("dynamic-tool", {**_TOOL, "state": "'input-streaming'"}),
    ("source-url", {"source_id": "'s'", "source_url": "'https://example.com'"}),
    ("source-document", {"source_id": "'s'", "source_media_type": "'text/plain'", "source_title": "'t'"}),
    ("file", {"file_media_type": "'image/png'", "file_url": "'https://example.com/a.png'"}),
    ("step-start", {}),
    ("data-weather", {}),
]
# The serialized CHECK expressions of a chat turn's tables, and the WHEN conditions of the
# triggers of `generations`, on PostgreSQL (re-read at every statement that writes the table).
_PG_EXPRESSIONS = (
    "SELECT coalesce(sum(length(conbin::text)), 0) FROM pg_constraint WHERE contype = 'c' "
    "AND conrelid IN ('parts'::regclass, 'generations'::regclass, 'chats'::regclass, 'messages'::regclass)",
    "SELECT coalesce(sum(length(tgqual::text)), 0) FROM pg_trigger WHERE tgrelid = 'generations'::regclass",
)


def _part(position: int, type_: str, columns: dict[str, str]) -> str:
    names = "".join(f", {name}" for name in columns)
    values = ", ".join([f"'{type_}'", *columns.values()])
    return _PART.format(names=names, position=position, values=values)


async def _a_turns_rows(store: Store, generation: str) -> None:
    """A user's chat, a message with a part of every kind the checks accept, and the generation
    the statement `generation` inserts."""
    async with store.write() as conn:
        await conn.execute(sa_text(_USER))
        await conn.execute(sa_text(_CHAT.format(visibility="'link'")))
        await conn.execute(sa_text(_MESSAGE.format(id="'m'", seq=1, role="'assistant'")))
        for i, (type_, columns) in enumerate(_PARTS_ACCEPTED):
            await conn.execute(sa_text(_part(i, type_, columns)))
        await conn.execute(sa_text(generation))


async def _refuses_what_the_checks_refuse(store: Store) -> None:
    """Every row a chat turn's tables' CHECKs must refuse is refused, and every good one kept."""
    refused = [_part(100 + i, type_, columns) for i, (type_, columns) in enumerate(_PARTS_REFUSED)]
    refused += [
        _CHAT.format(visibility="'secret'").replace("'c'", "'c2'"),
        _MESSAGE.format(id="'m2'", seq=2, role="'tool'"),
        _GENERATION.format(id="'g1'", kind="'audio'", status="'pending'", cost="NULL"),
        _GENERATION.format(id="'g2'", kind="'chat'", status="'done'", cost="NULL"),
        _GENERATION.format(id="'g3'", kind="'chat'", status="'complete'", cost="-1"),
    ]
    await _a_turns_rows(store, _GENERATION.format(id="'g0'", kind="'embedding'", status="'streaming'", cost="0"))
    for statement in refused:
        with pytest.raises(Exception, match=r"(?i)check constraint"):
            async with store.write() as conn:
                await conn.execute(sa_text(statement))
    async with store.write() as conn:
        await conn.execute(sa_text("DELETE FROM users"))  # the chat, its rows and the generation with it


@pytest.mark.empty_database
async def test_0030_checks_a_turns_rows_in_short_expressions_and_refuses_what_it_refused(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL re-reads a table's CHECK expressions and its triggers' WHEN conditions at every
    statement that writes it: from revision 0030 those of a chat turn's tables are a fraction of
    what they were (one function call for `parts`, one expression for `generations`, array
    constants for the lists), and they refuse exactly what the separate checks refused; going back
    to 0029 restores them, and upgrading again is the same. SQLite keeps its own (revision 0028)
    and refuses the same."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        if store.dialect == "sqlite":
            await store.upgrade()
            await _refuses_what_the_checks_refuse(store)
            return

        names = f"SELECT conname {_TURN_CHECKS}"

        async def sizes() -> tuple[int, int]:
            async with store.read() as conn:
                checks, whens = [(await conn.execute(sa_text(q))).scalar_one() for q in _PG_EXPRESSIONS]
            return int(checks), int(whens)

        async def constraints() -> list[str]:
            async with store.read() as conn:
                return list((await conn.execute(sa_text(names))).scalars().all())

        await upgrade(store.engine, "0029")
        before, named = await sizes(), await constraints()
        await _refuses_what_the_checks_refuse(store)
        await upgrade(store.engine, "0030")  # later revisions change these (0037)
        after = await sizes()
        assert await constraints() == [
            "ck_chats_visibility",
            "ck_generations_fields",
            "ck_messages_role",
            "ck_parts_fields",
        ]
        assert after[0] < before[0] / 4, (before, after)
        assert after[1] < before[1] * 3 / 4, (before, after)
        await _refuses_what_the_checks_refuse(store)
        await _downgrade(store, "0029")
        # The same constraints and conditions (their serialized text differs by a cast's place).
        assert await constraints() == named
        restored = await sizes()
        assert restored[0] > before[0] * 0.9, (before, restored)
        assert restored[1] > before[1] * 0.9, (before, restored)
        await _refuses_what_the_checks_refuse(store)
        await upgrade(store.engine, "0030")  # later revisions change these (0037)
        assert await sizes() == after
    finally:
        await store.aclose()


@pytest.mark.empty_database
async def test_0030_on_a_database_with_rows_validates_its_checks_and_its_downgrade_too(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL: on tables that hold rows, 0030's constraints are added NOT VALID and validated
    in a transaction of their own (no writer waits for the scan); they end validated, both ways."""
    url, schema = database
    if url.startswith("sqlite"):
        pytest.skip("PostgreSQL's revision")
    store = Store(url, schema=schema)

    async def constraints() -> dict[str, bool]:
        return await _by_name(store, f"SELECT conname, convalidated {_TURN_CHECKS}")

    try:
        await upgrade(store.engine, "0029")
        await _a_turns_rows(store, _GENERATION.format(id="'g'", kind="'chat'", status="'complete'", cost="5"))
        before = await constraints()
        await upgrade(store.engine, "0030")  # later revisions change these (0037)
        after = await constraints()
        assert set(after) == {"ck_chats_visibility", "ck_generations_fields", "ck_messages_role", "ck_parts_fields"}
        assert all(after.values())
        await _downgrade(store, "0029")
        assert await constraints() == before
        assert all(before.values())
        await upgrade(store.engine, "0030")  # later revisions change these (0037)
        assert await constraints() == after
        async with store.read() as conn:
            assert (await conn.execute(sa_text("SELECT count(*) FROM parts"))).scalar_one() == len(_PARTS_ACCEPTED)
    finally:
        await store.aclose()


_KEYED_GENERATION = (
    "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, idempotency_key) "
    "VALUES ({id}, 'text', 'u', 'complete', 'm', 'p', '{{}}', '2026-12-06 17:00:00+00', {key})"
)


async def _turn_indexes(store: Store) -> dict[str, str]:
    """The unique indexes and constraints on `generations` that hold `idempotency_key`, and the
    indexes by user of `messages`, `parts` and `cache_entries` if there are: name → definition
    (PostgreSQL; SQLite: the parts index's, the others' kind)."""
    by_user = ("ix_messages_user_id", "ix_cache_entries_user_id", "ix_parts_user_id")
    async with store.read() as conn:
        if store.dialect == "sqlite":
            listed = (await conn.execute(sa_text("PRAGMA index_list(generations)"))).mappings().all()
            found = {str(i["name"]): str(i["origin"]) for i in listed if i["unique"] and i["origin"] != "pk"}
            for table in ("messages", "cache_entries"):
                others = (await conn.execute(sa_text(f"PRAGMA index_list({table})"))).mappings().all()
                found |= {str(i["name"]): str(i["origin"]) for i in others if i["name"] in by_user}
            parts_sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_parts_user_id'"
            return found | {"ix_parts_user_id": str((await conn.execute(sa_text(parts_sql))).scalar_one())}
        rows = await conn.execute(
            sa_text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND ((tablename = 'generations' AND indexdef LIKE '%idempotency_key%') "
                f"OR indexname IN {by_user})"
            )
        )
        found = {str(name): str(definition) for name, definition in rows.all()}
        constraints = await conn.execute(
            sa_text("SELECT conname FROM pg_constraint WHERE conrelid = 'generations'::regclass AND contype = 'u'")
        )
        return found | {f"constraint {name}": "unique" for name in constraints.scalars().all()}


async def _refuses_a_second_use_of_a_key_only(store: Store, n: int) -> None:
    """Rows without a key never conflict; a user's key is refused a second time."""
    async with store.write() as conn:
        for i in range(2):
            await conn.execute(sa_text(_KEYED_GENERATION.format(id=f"'free{n}-{i}'", key="NULL")))
    with pytest.raises(Exception, match=r"(?i)unique"):
        async with store.write() as conn:
            await conn.execute(sa_text(_KEYED_GENERATION.format(id=f"'again{n}'", key="'k'")))


@pytest.mark.empty_database
async def test_0032_indexes_keyed_generations_text_parts_and_no_message_or_cache_entry_by_user_both_ways(
    database: tuple[str, str | None],
) -> None:
    """Revision 0032 on a database with rows: PostgreSQL's idempotency index holds only the
    generations that have a key (a partial unique index in place of the table constraint, whose
    index took an entry for every row version), and refuses what the constraint refused; SQLite
    keeps its constraint. Neither keeps an index on `user_id` for messages or dedup cache
    entries, and parts' holds the text parts only. The downgrade restores them all, with the
    rows."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        await upgrade(store.engine, "0031")
        await _a_turns_rows(store, _KEYED_GENERATION.format(id="'g'", key="'k'"))
        async with store.write() as conn:
            await conn.execute(
                sa_text(
                    "INSERT INTO cache_entries (key, generation_id, user_id, expires_at) "
                    "VALUES ('c', 'g', 'u', '2026-12-07 17:00:00+00')"
                )
            )
        before = await _turn_indexes(store)
        await _refuses_a_second_use_of_a_key_only(store, 0)
        await upgrade(store.engine)
        after = await _turn_indexes(store)
        if store.dialect == "sqlite":
            assert before == {
                "sqlite_autoindex_generations_2": "u",
                "ix_messages_user_id": "c",
                "ix_cache_entries_user_id": "c",
                "ix_parts_user_id": "CREATE INDEX ix_parts_user_id ON parts (user_id)",
            }
            assert after == {
                "sqlite_autoindex_generations_2": "u",
                "ix_parts_user_id": "CREATE INDEX ix_parts_user_id ON parts (user_id) WHERE type = 'text'",
            }
        else:
            assert set(before) == {
                "uq_generations_user_id_idempotency_key",
                "constraint uq_generations_user_id_idempotency_key",
                "ix_messages_user_id",
                "ix_cache_entries_user_id",
                "ix_parts_user_id",
            }
            here = f"{schema or 'public'}."
            assert after == {
                "uq_generations_idempotency_key": (
                    f"CREATE UNIQUE INDEX uq_generations_idempotency_key ON {here}generations USING btree "
                    "(user_id, idempotency_key) WHERE (idempotency_key IS NOT NULL)"
                ),
                "ix_parts_user_id": (
                    f"CREATE INDEX ix_parts_user_id ON {here}parts USING btree (user_id) "
                    "WHERE ((type)::text = 'text'::text)"
                ),
            }
            # The look-up by key (`store.generations.find_by_idempotency_key`) can use it: its
            # condition implies the predicate.
            async with store.read() as conn:
                await conn.execute(sa_text("SET enable_seqscan = off"))  # a few rows: else a scan
                plan = await conn.execute(
                    sa_text("EXPLAIN SELECT id FROM generations WHERE user_id = 'u' AND idempotency_key = 'k'")
                )
                await conn.execute(sa_text("RESET enable_seqscan"))
                assert "uq_generations_idempotency_key" in "\n".join(plan.scalars().all())
        await _refuses_a_second_use_of_a_key_only(store, 1)
        await _downgrade(store, "0031")
        assert await _turn_indexes(store) == before
        await _refuses_a_second_use_of_a_key_only(store, 2)
        await upgrade(store.engine)
        assert await _turn_indexes(store) == after
        async with store.read() as conn:
            assert (await conn.execute(sa_text("SELECT count(*) FROM generations"))).scalar_one() == 7
            assert (await conn.execute(sa_text("SELECT count(*) FROM cache_entries"))).scalar_one() == 1
            assert (await conn.execute(sa_text("SELECT count(*) FROM messages"))).scalar_one() == 1
            assert (await conn.execute(sa_text("SELECT count(*) FROM parts"))).scalar_one() == len(_PARTS_ACCEPTED)
    finally:
        await store.aclose()


async def test_0031_keeps_room_on_the_chats_pages_as_the_metadata_says_and_its_downgrade_gives_it_back(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL: from 0031 `chats` fills its pages to the fillfactor the metadata declares (the
    rest for the finalize's HOT update of a chat row); Alembic's comparison does not look at table
    options, so this does. Going back to 0030 resets it. SQLite: both ways change nothing."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from genvault.store.schema import chats

    url, schema = database
    store = Store(url, schema=schema)
    options = "SELECT relname, reloptions FROM pg_class WHERE relname = 'chats' AND relnamespace = to_regnamespace({})"
    try:
        await store.upgrade()
        if store.dialect == "sqlite":
            await _downgrade(store, "0030")
            await store.upgrade()
            return
        where = "current_schema()" if schema is None else f"'{schema}'"
        declared = chats.dialect_options["postgresql"]["with"]
        assert "WITH (fillfactor = 90)" in str(CreateTable(chats).compile(dialect=postgresql.dialect()))
        assert await _by_name(store, options.format(where)) == {"chats": [f"fillfactor={declared['fillfactor']}"]}
        await _downgrade(store, "0030")
        assert await _by_name(store, options.format(where)) == {"chats": None}
        await store.upgrade()
        assert await _by_name(store, options.format(where)) == {"chats": ["fillfactor=90"]}
    finally:
        await store.aclose()


_RESERVED = (
    "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, reservation) "
    "VALUES ({id}, 'chat', 'u', {status}, 'm', 'p', '{{}}', '2026-12-06 17:00:00+00', "
    """'{{"nano": 100, "day": "2026-12-06", "month": "2026-12", "subjects": ["s"], """
    """"caps": [[null, null, null, null]]}}')"""
)
# A budgeted generation's life and the edges of the limits' triggers: (statement, what it must do).
_BUDGETED_STEPS = [
    (_RESERVED.format(id="'g1'", status="'pending'"), "reserves"),
    ("UPDATE generations SET status = 'streaming' WHERE id = 'g1'", "nothing"),
    ("UPDATE generations SET result_text = 'x' WHERE id = 'g1'", "nothing"),
    ("UPDATE generations SET status = 'complete', cost_nano_usd = 40 WHERE id = 'g1'", "settles at 40"),
    ("UPDATE generations SET cost_nano_usd = 50 WHERE id = 'g1'", "nothing: the cost was set"),
    (_RESERVED.format(id="'g2'", status="'complete'"), "nothing: not running"),
    (_RESERVED.format(id="'g3'", status="'pending'"), "reserves"),
    ("UPDATE generations SET status = 'complete' WHERE id = 'g3'", "settles at the reservation"),
    ("UPDATE generations SET cost_nano_usd = 30 WHERE id = 'g3'", "settles again: the cost came late"),
    ("UPDATE generations SET status = 'error' WHERE id = 'g3'", "nothing: it had ended"),
]


async def _budgeted_usage(store: Store) -> list[tuple[Any, ...]]:
    """`limit_usage`'s row after each of `_BUDGETED_STEPS`, from empty tables."""
    seen = []
    async with store.write() as conn:
        await conn.execute(sa_text(_USER))
    for statement, _ in _BUDGETED_STEPS:
        async with store.write() as conn:
            await conn.execute(sa_text(statement))
            usage = "SELECT day_nano_usd, month_nano_usd, total_nano_usd, running, reserved_nano_usd FROM limit_usage"
            seen.append(tuple((await conn.execute(sa_text(usage))).one()))
    async with store.write() as conn:
        await conn.execute(sa_text("DELETE FROM users"))  # its generations and usage with it
    return seen


@pytest.mark.empty_database
async def test_0033_fires_the_limits_triggers_for_reserved_rows_only_and_settles_as_0032_did(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL: from 0033 the limits' triggers carry only `reservation IS NOT NULL` as their
    condition (read back at every statement that writes `generations`) and their functions test the
    rest. A budgeted generation's reservation and
    settlement, through every edge of the former conditions (a move to streaming, an update that is
    not the status's, a late cost, a cost set twice, a row inserted final, a second end), leave
    `limit_usage` exactly as on 0032, and back on 0032 again after the downgrade."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        if store.dialect == "sqlite":
            await _down_and_up(store, "0032")
            return
        whens = (
            "SELECT tgname, length(tgqual::text) FROM pg_trigger "
            "WHERE tgrelid = 'generations'::regclass AND tgname IN ('limit_usage_reserve', 'limit_usage_settle')"
        )
        await upgrade(store.engine, "0032")
        before = await _budgeted_usage(store)
        sizes = await _by_name(store, whens)
        assert before == [
            (100, 100, 100, 1, 100),
            (100, 100, 100, 1, 100),
            (100, 100, 100, 1, 100),
            (40, 40, 40, 0, 0),
            (40, 40, 40, 0, 0),
            (40, 40, 40, 0, 0),
            (140, 140, 140, 1, 100),
            (140, 140, 140, 0, 0),
            (70, 70, 70, 0, 0),
            (70, 70, 70, 0, 0),
        ]
        await upgrade(store.engine)
        assert await _budgeted_usage(store) == before
        smaller = await _by_name(store, whens)
        assert all(smaller[name] < sizes[name] / 4 for name in sizes), (sizes, smaller)
        await _downgrade(store, "0032")
        assert await _by_name(store, whens) == sizes
        assert await _budgeted_usage(store) == before
        await store.upgrade()
        assert await _by_name(store, whens) == smaller
    finally:
        await store.aclose()


_PROBE_KINDS = ("text", "chat", "image", "embedding", "Chat", "other", "")
_PROBE_STATUSES = ("pending", "streaming", "complete", "error", "cancelled", "interrupted", "done", "")
# Every kind, status, cost and given search vector of `_PROBE_*` inserted as a generation, and
# each once more inserted pending then updated to the status, each in its own subtransaction:
# stored or refused by a CHECK, and the search vector it was stored with (the trigger, when its
# condition holds, overwrites the one given: computed, or NULL).
_PROBE_GENERATIONS = f"""
DO $probe$
DECLARE k text; s text; c bigint; v text; n int := 0;
BEGIN
    FOREACH k IN ARRAY ARRAY[{", ".join(f"'{k}'" for k in _PROBE_KINDS)}] LOOP
    FOREACH s IN ARRAY ARRAY[{", ".join(f"'{s}'" for s in _PROBE_STATUSES)}] LOOP
    FOREACH c IN ARRAY ARRAY[NULL, -1, 0, 5]::bigint[] LOOP
    FOREACH v IN ARRAY ARRAY[NULL, 'zz'] LOOP
        FOR updated IN 0..1 LOOP
            n := n + 1;
            BEGIN
                INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at,
                    cost_nano_usd, search_vector)
                VALUES ('probe' || n, k, 'u', CASE WHEN updated = 1 THEN 'pending' ELSE s END, 'm', 'p',
                    '{{"prompt": "a question"}}', now(), c, v::tsvector);
                IF updated = 1 THEN
                    UPDATE generations SET status = s WHERE id = 'probe' || n;
                END IF;
                INSERT INTO probe_outcomes
                    SELECT n, true, search_vector::text FROM generations WHERE id = 'probe' || n;
            EXCEPTION WHEN check_violation THEN
                INSERT INTO probe_outcomes VALUES (n, false, NULL);
            END;
        END LOOP;
    END LOOP;
    END LOOP;
    END LOOP;
    END LOOP;
END $probe$
"""


async def _probed_generations(store: Store) -> list[tuple[int, bool, str | None]]:
    """What `_PROBE_GENERATIONS` stored and refused, twice: with the trigger's function (what is
    stored), then with a function that marks the row `'fired'` (which rows the trigger's condition
    fires for); the rows removed and the function restored afterwards."""
    async with store.write() as conn:
        await conn.execute(sa_text(_USER))
        await conn.execute(sa_text("CREATE TEMPORARY TABLE probe_outcomes (n int, stored boolean, vector text)"))
        await conn.execute(sa_text(_PROBE_GENERATIONS))
        definition = sa_text("SELECT pg_get_functiondef('generations_search_vector'::regproc)")
        function = (await conn.execute(definition)).scalar_one()
        await conn.execute(sa_text("DELETE FROM generations"))
        await conn.execute(
            sa_text(
                "CREATE OR REPLACE FUNCTION generations_search_vector() RETURNS trigger LANGUAGE plpgsql "
                "AS $f$ BEGIN NEW.search_vector := 'fired'::tsvector; RETURN NEW; END $f$"
            )
        )
        await conn.execute(sa_text("UPDATE probe_outcomes SET n = -n"))  # the first run's rows: n < 0
        await conn.execute(sa_text(_PROBE_GENERATIONS))
        await conn.exec_driver_sql(function)
        rows = (await conn.execute(sa_text("SELECT n, stored, vector FROM probe_outcomes ORDER BY n"))).all()
        await conn.execute(sa_text("DROP TABLE probe_outcomes"))
        await conn.execute(sa_text("DELETE FROM users"))
    return [(n, stored, vector) for n, stored, vector in rows]


@pytest.mark.empty_database
async def test_0035_generations_expressions_are_shorter_and_store_refuse_and_index_as_0033(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL: from 0035 `ck_generations_fields` and the search vector trigger's WHEN, read
    back at every statement that writes `generations`, are shorter (the CHECK without the
    `cost_nano_usd IS NULL OR` a CHECK does not need, the WHEN's terminal statuses as "not pending
    nor streaming"), and every generation of a product of kinds, statuses (valid and not), costs
    and given search vectors, inserted or updated to its status, is stored or refused, and stored
    with the search vector, exactly as on 0033; the downgrade restores 0033's serialized text."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        if store.dialect == "sqlite":
            await _down_and_up(store, "0033")
            return
        texts = (
            "SELECT conname, conbin::text FROM pg_constraint "
            "WHERE conrelid = 'generations'::regclass AND conname = 'ck_generations_fields' "
            "UNION ALL SELECT tgname, tgqual::text FROM pg_trigger "
            "WHERE tgrelid = 'generations'::regclass AND tgname = 'generations_search_vector'"
        )
        await upgrade(store.engine, "0033")
        before, probed = await _by_name(store, texts), await _probed_generations(store)
        assert len(probed) == 2 * 2 * len(_PROBE_KINDS) * len(_PROBE_STATUSES) * 4 * 2
        # Not a trivial product: some refused; stored with a vector or without; the trigger fired
        # for some stored rows and not for others.
        assert {stored for _, stored, _ in probed} == {True, False}
        stored = [(n, vector) for n, ok, vector in probed if ok]
        assert any(n < 0 and vector is not None for n, vector in stored)  # the trigger's function
        assert any(n < 0 and vector is None for n, vector in stored)
        assert {vector for n, vector in stored if n > 0} == {None, "'fired'"}  # the marking function
        await upgrade(store.engine, "0035")
        after = await _by_name(store, texts)
        assert len(after["ck_generations_fields"]) < len(before["ck_generations_fields"]) * 0.92, (before, after)
        assert len(after["generations_search_vector"]) < len(before["generations_search_vector"]), (before, after)
        assert await _probed_generations(store) == probed
        await _refuses_what_the_checks_refuse(store)
        await _downgrade(store, "0033")
        assert await _by_name(store, texts) == before
        assert await _probed_generations(store) == probed
        await upgrade(store.engine, "0035")
        assert await _by_name(store, texts) == after
    finally:
        await store.aclose()


_PROBE_VALUES = ("private", "link", "public", "system", "user", "assistant", "Public", "tool", "", None)
# Every value of `_PROBE_VALUES` as a chat's visibility and as a message's role, inserted, and
# inserted with a good value then updated to it, each in its own subtransaction: stored or refused.
_PROBE_LABELS = f"""
DO $probe$
DECLARE v text; n int := 0;
BEGIN
    INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at)
    VALUES ('pc', 'u', 'private', 0, now(), now());
    FOREACH v IN ARRAY ARRAY[{", ".join("NULL" if v is None else f"'{v}'" for v in _PROBE_VALUES)}] LOOP
        FOR updated IN 0..1 LOOP
            n := n + 1;
            BEGIN
                INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at)
                VALUES ('pc' || n, 'u', CASE WHEN updated = 1 THEN 'link' ELSE v END, 0, now(), now());
                IF updated = 1 THEN
                    UPDATE chats SET visibility = v WHERE id = 'pc' || n;
                END IF;
                INSERT INTO probe_labels VALUES ('visibility', n, true);
            EXCEPTION WHEN check_violation OR not_null_violation THEN
                INSERT INTO probe_labels VALUES ('visibility', n, false);
            END;
            BEGIN
                INSERT INTO messages (chat_id, id, seq, user_id, role, created_at)
                VALUES ('pc', 'pm' || n, n, 'u', CASE WHEN updated = 1 THEN 'user' ELSE v END, now());
                IF updated = 1 THEN
                    UPDATE messages SET role = v WHERE chat_id = 'pc' AND id = 'pm' || n;
                END IF;
                INSERT INTO probe_labels VALUES ('role', n, true);
            EXCEPTION WHEN check_violation OR not_null_violation THEN
                INSERT INTO probe_labels VALUES ('role', n, false);
            END;
        END LOOP;
    END LOOP;
END $probe$
"""


async def _probed_labels(store: Store) -> list[tuple[str, int, bool]]:
    """What `_PROBE_LABELS` stored and refused (the rows removed afterwards)."""
    async with store.write() as conn:
        await conn.execute(sa_text(_USER))
        await conn.execute(sa_text("CREATE TEMPORARY TABLE probe_labels (field text, n int, stored boolean)"))
        await conn.execute(sa_text(_PROBE_LABELS))
        rows = (await conn.execute(sa_text("SELECT field, n, stored FROM probe_labels ORDER BY field, n"))).all()
        await conn.execute(sa_text("DROP TABLE probe_labels"))
        await conn.execute(sa_text("DELETE FROM users"))
    return [(field, n, stored) for field, n, stored in rows]


# The files of the three tables and of their indexes: a rewrite or an index rebuild gives a new one.
_FILES = (
    "SELECT c.relname, c.relfilenode FROM pg_class c WHERE c.oid IN ('generations'::regclass, 'chats'::regclass, "
    "'messages'::regclass) OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ('generations'::regclass, "
    "'chats'::regclass, 'messages'::regclass))"
)
# The expressions the downgrade must restore as 0035 had them, and the columns' types.
_LABEL_TEXTS = (
    "SELECT conname, conbin::text FROM pg_constraint WHERE contype = 'c' AND conrelid IN ('generations'::regclass, "
    "'chats'::regclass, 'messages'::regclass) "
    "UNION ALL SELECT tgname, tgqual::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger "
    "WHERE tgrelid = 'generations'::regclass AND NOT tgisinternal "
    "UNION ALL SELECT table_name || '.' || column_name, coalesce(domain_name, '') || ' ' || data_type || "
    "coalesce(character_maximum_length::text, '') FROM information_schema.columns "
    "WHERE table_schema = current_schema() "
    "AND (table_name, column_name) IN (('generations', 'kind'), ('generations', 'status'), ('chats', 'visibility'), "
    "('messages', 'role'))"
)
_DOMAIN_CONSTRAINTS = (
    "SELECT t.typname || '.' || c.conname, c.convalidated FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid "
    "WHERE t.typnamespace = current_schema()::regnamespace"
)


@pytest.mark.empty_database
async def test_0037_value_domains_store_and_refuse_as_0035_rewrite_nothing_and_downgrade_to_0035s_text(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL: from 0037 `generations.kind`/`status`, `chats.visibility` and `messages.role` are
    typed by domains holding their lists (a domain's CHECK is parsed once per backend, a table's
    at every statement), `ck_generations_fields` keeps the cost only, and the chats' and messages'
    CHECKs are gone. The same generations, visibilities and roles are stored and refused as on
    0035, inserted or updated to the value; on tables holding rows the upgrade gives no table nor
    index a new file (no rewrite, no index rebuilt); the downgrade restores 0035's serialized
    expressions and column types."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        if store.dialect == "sqlite":
            await _down_and_up(store, "0035")
            await _refuses_what_the_checks_refuse(store)
            return
        await upgrade(store.engine, "0035")
        before = await _by_name(store, _LABEL_TEXTS)
        generations, labels = await _probed_generations(store), await _probed_labels(store)
        assert {stored for _, _, stored in labels} == {True, False}
        await _a_turns_rows(store, _GENERATION.format(id="'g'", kind="'chat'", status="'complete'", cost="5"))
        files = await _by_name(store, _FILES)
        assert len(files) >= 10, files  # the tables and their indexes
        await upgrade(store.engine, "0037")
        assert await _by_name(store, _FILES) == files
        after = await _by_name(store, _LABEL_TEXTS)
        assert after["generations.kind"] == "generation_kind character varying16"
        assert after["chats.visibility"] == "chat_visibility character varying16"
        assert "ck_chats_visibility" not in after
        assert "ck_messages_role" not in after
        assert len(after["ck_generations_fields"]) < len(before["ck_generations_fields"]) / 3
        assert await _by_name(store, _DOMAIN_CONSTRAINTS) == {
            "generation_kind.ck_generations_kind": True,
            "generation_status.ck_generations_status": True,
            "chat_visibility.ck_chats_visibility": True,
            "message_role.ck_messages_role": True,
        }
        async with store.write() as conn:
            await conn.execute(sa_text("DELETE FROM users"))
        assert await _probed_generations(store) == generations
        assert await _probed_labels(store) == labels
        await _refuses_what_the_checks_refuse(store)
        await _a_turns_rows(store, _GENERATION.format(id="'g'", kind="'chat'", status="'complete'", cost="5"))
        # The downgrade rewrites the three tables (a domain column's values carry no length, so
        # `varchar(16)` checks each value's again): not compared.
        await _downgrade(store, "0035")
        assert await _by_name(store, _LABEL_TEXTS) == before
        assert await _by_name(store, _DOMAIN_CONSTRAINTS) == {}
        async with store.write() as conn:
            await conn.execute(sa_text("DELETE FROM users"))
        assert await _probed_generations(store) == generations
        assert await _probed_labels(store) == labels
        await upgrade(store.engine, "0037")
        # The same, but for the new domains' type ids in the trigger's serialized condition.
        again = await _by_name(store, _LABEL_TEXTS)
        assert {k: re.sub(r":(vartype|resulttype|opresulttype) \d+", "", v) for k, v in again.items()} == {
            k: re.sub(r":(vartype|resulttype|opresulttype) \d+", "", v) for k, v in after.items()
        }
    finally:
        await store.aclose()


_PARTS_TRIGGERS = (
    "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'parts'::regclass AND NOT tgisinternal"
)
# A part row's search vector as revision 0009's `parts_search_vector()` sets it.
_PART_VECTOR = (
    "CASE WHEN type = 'text' THEN to_tsvector('simple', text_text) || array_to_tsvector(ARRAY['#' || md5(user_id)]) END"
)


async def _raw_parts_vectors(store: Store, position: int) -> list[tuple[str, bool, bool]]:
    """Parts written by SQL of one's own (no vector, or a vector on a part that cannot have one),
    then a text part's text changed: (type, has a vector, the vector is the text's) per row."""
    statements = [
        "INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'a', false, now()) ON CONFLICT DO NOTHING",
        "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
        "VALUES ('c1', 'alice', 'private', 1, now(), now()) ON CONFLICT DO NOTHING",
        "INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) "
        "VALUES ('c1', 'm1', 1, 'alice', 'user', now()) ON CONFLICT DO NOTHING",
        "DELETE FROM parts",
        "INSERT INTO parts (chat_id, message_id, position, user_id, type, text_text) "
        f"VALUES ('c1', 'm1', {position}, 'alice', 'text', 'amber birch')",
        "INSERT INTO parts (chat_id, message_id, position, user_id, type, search_vector) "
        f"VALUES ('c1', 'm1', {position + 1}, 'alice', 'step-start', to_tsvector('simple', 'stray'))",
        "INSERT INTO parts (chat_id, message_id, position, user_id, type, text_text) "
        f"VALUES ('c1', 'm1', {position + 2}, 'alice', 'text', 'canyon')",
        f"UPDATE parts SET text_text = 'delta ember' WHERE position = {position + 2}",
    ]
    async with store.write() as conn:
        for statement in statements:
            await conn.execute(sa_text(statement))
        rows = await conn.execute(
            sa_text(
                f"SELECT type, search_vector IS NOT NULL, search_vector IS NOT DISTINCT FROM {_PART_VECTOR} "
                "FROM parts ORDER BY position"
            )
        )
        return [tuple(r) for r in rows.all()]


@pytest.mark.empty_database
async def test_0034_splits_the_parts_vector_trigger_and_every_other_writer_still_gets_the_vectors(
    database: tuple[str, str | None],
) -> None:
    """PostgreSQL: from 0034 a part's insert fires `parts_insert_search_vector` only when the row's
    vector is not what its type calls for (genvault's own inserts write it in the statement), and
    its update `parts_search_vector` as before. An insert that does not write the column, one that
    writes a vector on a part that cannot have one, and an update of a text part's text leave the
    same vectors on 0033, on 0034 and after the downgrade, which restores 0033's trigger."""
    url, schema = database
    store = Store(url, schema=schema)
    try:
        if store.dialect == "sqlite":
            await _down_and_up(store, "0033")
            return
        expected = [("text", True, True), ("step-start", False, True), ("text", True, True)]
        await upgrade(store.engine, "0033")
        before = await _by_name(store, _PARTS_TRIGGERS)
        assert list(before) == ["parts_search_vector"]
        assert "BEFORE INSERT OR UPDATE OF" in before["parts_search_vector"]
        assert await _raw_parts_vectors(store, 0) == expected
        await upgrade(store.engine)
        after = await _by_name(store, _PARTS_TRIGGERS)
        assert set(after) == {"parts_search_vector", "parts_insert_search_vector"}
        assert "BEFORE UPDATE OF type, text_text, user_id ON" in after["parts_search_vector"]
        assert "BEFORE INSERT ON" in after["parts_insert_search_vector"]
        assert await _raw_parts_vectors(store, 10) == expected
        await _downgrade(store, "0033")
        assert await _by_name(store, _PARTS_TRIGGERS) == before
        assert await _raw_parts_vectors(store, 20) == expected
        await store.upgrade()
        assert await _by_name(store, _PARTS_TRIGGERS) == after
    finally:
        await store.aclose()


@pytest.mark.empty_database
async def test_0036_fits_the_search_indexes_leaves_to_2_kib_pages_and_its_downgrade_restores_fts5s_default(
    database: tuple[str, str | None],
) -> None:
    """SQLite: a database genvault creates has 2 KiB pages, and from revision 0036 its FTS5
    indexes write blocks of `page_size - 48` bytes (no overflow page a block); going back to 0035
    sets FTS5's default again. PostgreSQL: nothing to see."""
    url, _ = database
    store = Store(url)
    sizes = " UNION ALL ".join(f"SELECT (SELECT v FROM {index}_config WHERE k = 'pgsz')" for index in SQLITE_FTS_TABLES)
    try:
        await store.upgrade()
        if store.dialect != "sqlite":
            return
        async with store.write() as conn:
            assert (await conn.exec_driver_sql("PRAGMA page_size")).scalar() == 2048
            assert (await conn.exec_driver_sql(sizes)).scalars().all() == [2000, 2000, 2000]
        await _downgrade(store, "0035")
        async with store.write() as conn:
            assert (await conn.exec_driver_sql(sizes)).scalars().all() == [4050, 4050, 4050]
        await upgrade(store.engine)
        async with store.write() as conn:
            assert (await conn.exec_driver_sql(sizes)).scalars().all() == [2000, 2000, 2000]
    finally:
        await store.aclose()


async def test_0036_leaves_a_database_of_4_kib_pages_with_fts5s_default(tmp_path: Any) -> None:
    """A database created before `PAGE_SIZE` (SQLite's 4,096 bytes, in WAL mode) keeps its page
    size through the upgrade, and its indexes FTS5's default block size."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE before_genvault (id INTEGER PRIMARY KEY)")
    store = Store(f"sqlite:///{path}")
    try:
        await store.upgrade()
        async with store.write() as conn:
            assert (await conn.exec_driver_sql("PRAGMA page_size")).scalar() == 4096
            for index in SQLITE_FTS_TABLES:
                found = await conn.exec_driver_sql(f"SELECT v FROM {index}_config WHERE k = 'pgsz'")
                assert found.scalar() is None
    finally:
        await store.aclose()
