"""The normalized chat store on SQLite and PostgreSQL: exact round trips, atomic ordered appends,
idempotent upserts, pagination by cursor, truncation, deletion and ownership."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from genvault.errors import Conflict, InvalidRequest, NotFound, StorageError
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store.schema import chats, messages, metadata, parts
from genvault.store.sqlite_adapter import SqliteReader
from genvault.store.users import ensure_user

RICH_ASSISTANT: dict[str, Any] = {
    "id": "m1",
    "role": "assistant",
    "metadata": {"a": {"b": 1, "c": 2}, "u": 1},
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "id": "r1", "text": "think", "state": "done"},
        {"type": "text", "text": "Hello", "state": "done", "providerMetadata": {"openai": {"itemId": "x"}}},
        {
            "type": "tool-weather",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"t": 2},
            "callProviderMetadata": {"x": {"y": 1}},
        },
        {"type": "tool-bad", "toolCallId": "c2", "state": "output-error", "rawInput": "{oops", "errorText": "invalid"},
        {"type": "tool-pending", "toolCallId": "c3", "state": "input-streaming"},
        {"type": "tool-nulls", "toolCallId": "c4", "state": "output-available", "input": None, "output": None},
        {
            "type": "dynamic-tool",
            "toolName": "mcp-search",
            "toolCallId": "c5",
            "state": "output-available",
            "input": [1, "two", 3.0],
            "output": "done",
            "preliminary": True,
            "providerExecuted": False,
        },
        {"type": "data-w", "id": "d1", "data": {"c": 3}},
        {"type": "data-n", "data": None},
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA"},
        {"type": "file", "mediaType": "text/plain", "filename": "a.txt", "url": "https://x/a.txt"},
        {"type": "source-url", "sourceId": "s1", "url": "https://x"},
        {
            "type": "source-document",
            "sourceId": "s2",
            "mediaType": "application/pdf",
            "title": "Doc",
            "filename": "d.pdf",
        },
        {"type": "text", "text": "Ünïcödé ✓ 🎉"},
    ],
}


def user_message(message_id: str, content: str = "hi") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": content}]}


@pytest.fixture
async def store(database: tuple[str, str | None]) -> Any:
    url, schema = database
    s = Store(url, schema=schema)
    async with s.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with s.write() as conn:
        await ensure_user(conn, "alice")
        await ensure_user(conn, "bob")
        await chat_store.create_chat(conn, "c1", "alice", title="First")
    yield s
    await s.aclose()


async def load_all(store: Store, chat_id: str = "c1") -> list[dict[str, Any]]:
    async with store.read() as conn:
        return await chat_store.load_all_messages(conn, chat_id)


@contextlib.asynccontextmanager
async def page_reader(store: Store) -> AsyncIterator[Any]:
    """What the app's page read runs on: asyncpg itself on PostgreSQL (`Store.driver`), the
    store's own reader connection on SQLite (`Store.sqlite_reader`)."""
    if store.dialect == "postgresql":
        async with store.driver() as driver:
            yield driver
    else:
        async with store.sqlite_reader() as conn:
            yield conn


class TestRoundTrip:
    async def test_a_rich_message_loads_back_as_identical_json(self, store: Store) -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("u1"), RICH_ASSISTANT])
        loaded = await load_all(store)
        assert loaded == [user_message("u1"), RICH_ASSISTANT]
        # Same keys, so absent stays absent and null stays null.
        assert [sorted(p) for p in loaded[1]["parts"]] == [sorted(p) for p in RICH_ASSISTANT["parts"]]

    async def test_the_page_read_gives_the_json_of_the_row_by_row_read_key_order_included(self, store: Store) -> None:
        # The page's JSON text is written by the database (`part_json_sql`); `row_to_part` is
        # the reference. Quotes, escapes and integers beyond 64 bits included.
        odd = {
            "id": 'm"2\\',
            "role": "assistant",
            "metadata": {"big": 2**70, "f": 0.1, "neg": -(2**65)},
            "parts": [
                {"type": "text", "text": 'quote " backslash \\ newline \n tab \t \u2028 \x01 ✓', "state": "streaming"},
                {"type": "tool-x", "toolCallId": 'c"1', "state": "input-available", "input": {"n": 2**64, "s": "é"}},
                {"type": "reasoning", "text": "", "providerMetadata": None},
                {"type": "data-t", "data": 1, "transient": False},
            ],
        }
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("u1"), RICH_ASSISTANT, odd])
            await chat_store.append_messages(conn, "c1", "alice", [{"id": "empty", "role": "user", "parts": []}])
        expected = await load_all(store)
        async with page_reader(store) as reader:
            page = await chat_store.load_messages(reader, "c1", owner="alice", check_owner=True)
        assert page.messages == expected == [user_message("u1"), RICH_ASSISTANT, odd, expected[-1]]
        assert [json.dumps(m) for m in page.messages] == [json.dumps(m) for m in expected]
        assert repr(page.messages[2]["metadata"]) == repr(odd["metadata"])  # ints stay ints

    async def test_metadata_null_and_absent_stay_distinct(self, store: Store) -> None:
        with_null = {**user_message("u1"), "metadata": None}
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [with_null, user_message("u2")])
        loaded = await load_all(store)
        assert loaded[0] == with_null
        assert "metadata" not in loaded[1]

    async def test_an_unknown_part_type_is_refused_and_nothing_is_stored(self, store: Store) -> None:
        bad = {"id": "u1", "role": "user", "parts": [{"type": "mystery", "x": 1}]}
        with pytest.raises(InvalidRequest, match="unknown part type 'mystery'"):
            async with store.write() as conn:
                await chat_store.append_messages(conn, "c1", "alice", [bad])
        assert await load_all(store) == []


class TestUnstorableText:
    @pytest.mark.parametrize("bad", ["a\x00b", "lone \ud800"])
    @pytest.mark.parametrize(
        "operation",
        [
            lambda conn, bad: chat_store.update_chat(conn, "c1", "alice", title=bad),
            lambda conn, bad: chat_store.create_chat(conn, "c2", "alice", title=bad),
            lambda conn, bad: chat_store.create_chat(conn, f"c{bad}", "alice"),
            lambda conn, bad: chat_store.ensure_chat(conn, f"c{bad}", "alice"),
        ],
    )
    async def test_a_title_or_chat_id_no_database_can_keep_is_refused_on_every_backend(
        self, store: Store, operation: Any, bad: str
    ) -> None:
        with pytest.raises(InvalidRequest, match=r"NUL character|unpaired UTF-16 surrogate"):
            async with store.write() as conn:
                await operation(conn, bad)
        async with store.read() as conn:
            assert (await chat_store.get_chat(conn, "c1", "alice")).title == "First"
            assert [c.id for c in (await chat_store.list_chats(conn, "alice")).items] == ["c1"]


class TestAppend:
    async def test_seqs_follow_append_order(self, store: Store) -> None:
        async with store.write() as conn:
            first = await chat_store.append_messages(conn, "c1", "alice", [user_message("a"), user_message("b")])
            second = await chat_store.append_messages(conn, "c1", "alice", [user_message("c")])
        assert first == [1, 2]
        assert second == [3]
        assert [m["id"] for m in await load_all(store)] == ["a", "b", "c"]

    async def test_a_failure_in_the_middle_of_an_append_leaves_the_chat_exactly_as_before(self, store: Store) -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("a")])
        async with store.read() as conn:
            before_chat = await chat_store.get_chat(conn, "c1", "alice")
        broken = {"id": "x2", "role": "assistant", "parts": [{"type": "file", "mediaType": None, "url": "u"}]}
        with pytest.raises(StorageError, match=r"(?i)check constraint|ck_parts_file_fields"):
            async with store.write() as conn:
                await chat_store.append_messages(conn, "c1", "alice", [user_message("x1"), broken])
        assert [m["id"] for m in await load_all(store)] == ["a"]
        async with store.read() as conn:
            assert await chat_store.get_chat(conn, "c1", "alice") == before_chat
            assert (await conn.execute(select(func.count()).select_from(parts))).scalar_one() == 1

    async def test_appending_an_id_already_in_the_chat_is_a_conflict(self, store: Store) -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("a")])
        with pytest.raises(Conflict, match="message 'a' is already in chat 'c1'"):
            async with store.write() as conn:
                await chat_store.append_messages(conn, "c1", "alice", [user_message("b"), user_message("a")])
        assert [m["id"] for m in await load_all(store)] == ["a"]

    async def test_the_same_message_id_may_live_in_two_users_chats(self, store: Store) -> None:
        async with store.write() as conn:
            await chat_store.create_chat(conn, "c2", "bob")
            await chat_store.append_messages(conn, "c1", "alice", [user_message("same", "alice's")])
            await chat_store.append_messages(conn, "c2", "bob", [user_message("same", "bob's")])
        assert (await load_all(store, "c1"))[0]["parts"][0]["text"] == "alice's"
        assert (await load_all(store, "c2"))[0]["parts"][0]["text"] == "bob's"


class TestUpsert:
    async def test_saving_the_same_message_again_changes_nothing(self, store: Store) -> None:
        async with store.write() as conn:
            assert await chat_store.upsert_message(conn, "c1", "alice", RICH_ASSISTANT) == "inserted"
            assert await chat_store.upsert_message(conn, "c1", "alice", copy.deepcopy(RICH_ASSISTANT)) == "unchanged"
        assert await load_all(store) == [RICH_ASSISTANT]

    async def test_saving_a_changed_message_replaces_its_parts_in_place(self, store: Store) -> None:
        changed = {**user_message("u1", "edited"), "metadata": {"v": 2}}
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("u1"), user_message("u2")])
            assert await chat_store.upsert_message(conn, "c1", "alice", changed) == "updated"
        assert await load_all(store) == [changed, user_message("u2")]


class TestPages:
    @pytest.fixture
    async def hundred(self, store: Store) -> Store:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message(f"m{i:03}") for i in range(100)])
        return store

    async def test_a_reader_connection_sees_what_was_committed_since_its_last_read(self, hundred: Store) -> None:
        for added in ("m100", "m101"):
            async with page_reader(hundred) as conn:
                before = await chat_store.load_messages(conn, "c1", limit=1)
            async with hundred.write() as conn:
                await chat_store.append_messages(conn, "c1", "alice", [user_message(added)])
            async with page_reader(hundred) as conn:  # the same connection again on SQLite
                after = await chat_store.load_messages(conn, "c1", limit=1)
            assert [m["id"] for m in after.messages] == [added] != [m["id"] for m in before.messages]

    async def test_reads_beyond_the_readers_go_through_the_pool(self, hundred: Store) -> None:
        if hundred.dialect != "sqlite":
            pytest.skip("SQLite's reader connections")
        readers = hundred._sqlite_readers
        assert readers is not None
        async with contextlib.AsyncExitStack() as held:
            # Every reader connection in use: the next page read still answers, from the pool.
            conns = [await held.enter_async_context(hundred.sqlite_reader()) for _ in range(readers._size + 1)]
            assert {type(c).__name__ for c in conns[:-1]} == {"SqliteReader"}
            assert not isinstance(conns[-1], SqliteReader)
            pages = [await chat_store.load_messages(c, "c1", limit=2) for c in conns]
        assert {tuple(m["id"] for m in p.messages) for p in pages} == {("m098", "m099")}

    async def test_the_latest_page_comes_oldest_first(self, hundred: Store) -> None:
        async with page_reader(hundred) as conn:
            page = await chat_store.load_messages(conn, "c1", limit=10)
        assert [m["id"] for m in page.messages] == [f"m{i:03}" for i in range(90, 100)]
        assert page.has_before
        assert not page.has_after

    async def test_pages_before_and_after_a_message(self, hundred: Store) -> None:
        async with page_reader(hundred) as conn:
            before = await chat_store.load_messages(conn, "c1", limit=5, before="m050")
            after = await chat_store.load_messages(conn, "c1", limit=5, after="m050")
            tail = await chat_store.load_messages(conn, "c1", limit=5, after="m097")
            head = await chat_store.load_messages(conn, "c1", limit=5, before="m003")
        assert [m["id"] for m in before.messages] == ["m045", "m046", "m047", "m048", "m049"]
        assert (before.has_before, before.has_after) == (True, True)
        assert [m["id"] for m in after.messages] == ["m051", "m052", "m053", "m054", "m055"]
        assert [m["id"] for m in tail.messages] == ["m098", "m099"]
        assert (tail.has_before, tail.has_after) == (True, False)
        assert [m["id"] for m in head.messages] == ["m000", "m001", "m002"]
        assert (head.has_before, head.has_after) == (False, True)

    @pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 5000}, {"before": "a", "after": "b"}])
    async def test_bad_page_requests_are_refused(self, hundred: Store, kwargs: dict[str, Any]) -> None:
        async with page_reader(hundred) as conn:
            with pytest.raises(InvalidRequest):
                await chat_store.load_messages(conn, "c1", **kwargs)

    async def test_a_cursor_to_an_unknown_message_is_not_found(self, hundred: Store) -> None:
        async with page_reader(hundred) as conn:
            with pytest.raises(NotFound):
                await chat_store.load_messages(conn, "c1", before="nope")

    async def test_the_page_read_checks_the_owner_in_the_same_statement(self, hundred: Store) -> None:
        async with page_reader(hundred) as conn:
            mine = await chat_store.load_messages(conn, "c1", limit=3, owner="alice", check_owner=True)
            assert [m["id"] for m in mine.messages] == ["m097", "m098", "m099"]
            for kwargs in ({}, {"before": "m050"}, {"after": "m050"}, {"for_reading": True}):
                with pytest.raises(NotFound, match="no chat 'c1'"):
                    await chat_store.load_messages(conn, "c1", owner="bob", check_owner=True, **kwargs)
            with pytest.raises(NotFound, match="no chat 'nope'"):
                await chat_store.load_messages(conn, "nope")
            with pytest.raises(NotFound, match="no message 'nope'"):
                await chat_store.load_messages(conn, "c1", after="nope", owner="alice", check_owner=True)
        async with hundred.write() as conn:
            await chat_store.update_chat(conn, "c1", "alice", visibility="public")
            await chat_store.create_chat(conn, "empty", "alice")
        async with page_reader(hundred) as conn:
            shared = await chat_store.load_messages(
                conn, "c1", limit=2, before="m050", owner="bob", check_owner=True, for_reading=True
            )
            assert [m["id"] for m in shared.messages] == ["m048", "m049"]
            with pytest.raises(NotFound):  # readable, not the reader's
                await chat_store.load_messages(conn, "c1", owner="bob", check_owner=True)
            empty = await chat_store.load_messages(conn, "empty", owner="alice", check_owner=True)
            assert (empty.messages, empty.has_before, empty.has_after) == ([], False, False)
            tail = await chat_store.load_messages(conn, "c1", after="m099")
            assert (tail.messages, tail.has_before, tail.has_after) == ([], True, False)

    async def test_loading_the_latest_page_uses_the_chat_seq_index(self, hundred: Store) -> None:
        query = (
            select(messages.c.id, messages.c.seq)
            .where(messages.c.chat_id == "c1")
            .order_by(messages.c.seq.desc())
            .limit(51)
        )
        async with hundred.read() as conn:
            compiled = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})  # type: ignore[arg-type]
            if hundred.dialect == "sqlite":
                plan = " ".join(str(r[-1]) for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
                assert "TEMP B-TREE" not in plan  # no sort: the index gives the order
                # SQLite names the unique constraint's index itself; check which columns it has.
                index = plan.split("USING INDEX ", 1)[1].split()[0]
                columns = [r[2] for r in await conn.execute(text(f"PRAGMA index_info('{index}')"))]
                assert columns == ["chat_id", "seq"]
            else:
                await conn.execute(text("SET enable_seqscan = off"))  # a 100-row table would be scanned anyway
                plan = " ".join(str(r[0]) for r in await conn.execute(text(f"EXPLAIN {compiled}")))
                assert "uq_messages_chat_id_seq" in plan
                assert "Sort" not in plan


class TestTruncateAndDelete:
    async def test_truncate_after_drops_the_later_messages_and_their_parts(self, store: Store) -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message(x) for x in "abcd"])
            assert await chat_store.truncate_after(conn, "c1", "alice", "b") == 2
        assert [m["id"] for m in await load_all(store)] == ["a", "b"]
        async with store.write() as conn:
            assert await chat_store.truncate_after(conn, "c1", "alice", "b", inclusive=True) == 1
            # New appends continue after the highest seq ever taken: no reuse.
            assert await chat_store.append_messages(conn, "c1", "alice", [user_message("e")]) == [5]
        async with store.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(parts))).scalar_one() == 2

    async def test_delete_message_and_delete_chat(self, store: Store) -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("a"), RICH_ASSISTANT])
            await chat_store.delete_message(conn, "c1", "alice", "m1")
        assert [m["id"] for m in await load_all(store)] == ["a"]
        async with store.write() as conn:
            await chat_store.delete_chat(conn, "c1", "alice")
        async with store.read() as conn:
            for table in (chats, messages, parts):
                assert (await conn.execute(select(func.count()).select_from(table))).scalar_one() == 0


class TestOwnership:
    @pytest.mark.parametrize(
        "operation",
        [
            lambda conn: chat_store.get_chat(conn, "c1", "bob"),
            lambda conn: chat_store.append_messages(conn, "c1", "bob", [user_message("x")]),
            lambda conn: chat_store.upsert_message(conn, "c1", "bob", user_message("x")),
            lambda conn: chat_store.truncate_after(conn, "c1", "bob", "a"),
            lambda conn: chat_store.delete_message(conn, "c1", "bob", "a"),
            lambda conn: chat_store.delete_chat(conn, "c1", "bob"),
            lambda conn: chat_store.update_chat(conn, "c1", "bob", title="mine now"),
        ],
    )
    async def test_every_operation_on_a_strangers_chat_is_not_found_and_changes_nothing(
        self, store: Store, operation: Any
    ) -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("a")])
        with pytest.raises(NotFound):
            async with store.write() as conn:
                await operation(conn)
        assert await load_all(store) == [user_message("a")]
        async with store.read() as conn:
            assert (await chat_store.get_chat(conn, "c1", "alice")).title == "First"

    async def test_a_shared_chat_is_readable_by_others_only_when_shared(self, store: Store) -> None:
        async with store.write() as conn:
            with pytest.raises(NotFound):
                await chat_store.get_chat(conn, "c1", "bob", for_reading=True)
            await chat_store.update_chat(conn, "c1", "alice", visibility="link")
            assert (await chat_store.get_chat(conn, "c1", "bob", for_reading=True)).id == "c1"
            with pytest.raises(NotFound):
                await chat_store.get_chat(conn, "c1", "bob")  # shared for reading, not for writing

    async def test_a_strangers_chat_id_cannot_be_taken(self, store: Store) -> None:
        async with store.write() as conn:
            with pytest.raises(Conflict):
                await chat_store.ensure_chat(conn, "c1", "bob")


class TestChatList:
    async def test_lists_a_users_chats_by_last_update_in_pages(self, store: Store) -> None:
        async with store.write() as conn:
            for name in ("c2", "c3", "c4"):
                await chat_store.create_chat(conn, name, "alice")
            await chat_store.create_chat(conn, "other", "bob")
        async with store.write() as conn:
            await chat_store.append_messages(conn, "c1", "alice", [user_message("a")])  # c1 now newest
        async with store.read() as conn:
            first = await chat_store.list_chats(conn, "alice", limit=3)
            second = await chat_store.list_chats(conn, "alice", limit=3, cursor=first.next_cursor)
        assert [c.id for c in first.items] == ["c1", "c4", "c3"]
        assert [c.id for c in second.items] == ["c2"]
        assert second.next_cursor is None


@pytest.mark.postgres
async def test_fifty_concurrent_writers_on_one_chat_lose_nothing_and_keep_their_order(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    store = Store(url, schema=schema)
    try:
        # Migrated, not `metadata.create_all`: the append writes the parts' search vectors, a
        # column of revision 0009's that the metadata does not hold.
        await store.upgrade()
        async with store.write() as conn:
            await ensure_user(conn, "alice")
            await chat_store.create_chat(conn, "busy", "alice")

        async def writer(w: int) -> None:
            for i in range(4):
                batch = [user_message(f"w{w:02}-{i}-u"), {**user_message(f"w{w:02}-{i}-a"), "role": "assistant"}]
                async with store.write() as conn:
                    await chat_store.append_messages(conn, "busy", "alice", batch)

        await asyncio.gather(*(writer(w) for w in range(50)))
        async with store.read() as conn:
            rows = (
                await conn.execute(
                    select(messages.c.id, messages.c.seq).where(messages.c.chat_id == "busy").order_by(messages.c.seq)
                )
            ).all()
        assert [r.seq for r in rows] == list(range(1, 401))  # no gaps, no duplicates
        ids = [r.id for r in rows]
        assert len(set(ids)) == 400
        for w in range(50):
            mine = [i for i in ids if i.startswith(f"w{w:02}-")]
            assert mine == [f"w{w:02}-{i}-{r}" for i in range(4) for r in ("u", "a")]
    finally:
        await store.aclose()


async def test_upsert_writes_no_parts_for_a_message_deleted_after_it_read_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`upsert_message` reads the stored message, then replaces it with nothing locked; a delete
    committed in between leaves its update matching no row, and the parts' foreign key is what
    refuses its parts (why `fk_parts_message` is not a delete trigger on `messages`)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite's single writer lock serializes the two transactions")
    async with store.write() as conn:
        await chat_store.append_messages(conn, "c1", "alice", [user_message("a"), user_message("m1", "old")])
    read = chat_store._load_message_rows

    async def read_then_delete(conn: Any, chat_id: str, message_ids: Any) -> list[dict[str, Any]]:
        rows = await read(conn, chat_id, message_ids)
        async with store.write() as other:
            await chat_store.delete_message(other, "c1", "alice", "m1")
        return rows

    monkeypatch.setattr(chat_store, "_load_message_rows", read_then_delete)
    with pytest.raises(StorageError, match="fk_parts_message"):
        async with store.write() as conn:
            await chat_store.upsert_message(conn, "c1", "alice", user_message("m1", "deleted, written again"))
    monkeypatch.undo()
    assert [m["id"] for m in await load_all(store)] == ["a"]
    async with store.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(parts))).scalar_one() == 1


@pytest.mark.postgres
async def test_connections_killed_by_the_server_are_replaced_before_use(pg_schema: tuple[str, str]) -> None:
    """The checkout ping (one round trip, in place of pool_pre_ping) discards dead pooled
    connections: after the server ends every pooled session, reads and writes still work."""
    url, schema = pg_schema
    store = Store(url, schema=schema)
    killer = Store(url, schema=schema)
    try:
        await store.upgrade()  # migrated: the append writes the parts' search vectors (not in the metadata)
        async with store.write() as conn:
            await ensure_user(conn, "alice")
            await chat_store.create_chat(conn, "c1", "alice")
        pids = set()
        async with store.read() as first, store.read() as second:  # two pooled connections
            for conn in (first, second):
                pids.add((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())
        async with killer.read() as conn:
            for pid in pids:
                assert (await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")).scalar_one()
        for _ in range(3):
            async with store.write() as conn:
                await chat_store.append_messages(conn, "c1", "alice", [user_message(f"m{_}")])
            async with store.read() as conn:
                page = await chat_store.load_messages(conn, "c1", owner="alice", check_owner=True)
            assert [m["id"] for m in page.messages] == [f"m{i}" for i in range(_ + 1)]
        # A read that skips the ping retries on a fresh connection when its own is dead.
        async with contextlib.AsyncExitStack() as stack:  # every pooled connection (at most 4 by now)
            held = [await stack.enter_async_context(store.read()) for _ in range(4)]
            pids = {(await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one() for conn in held}
        async with killer.read() as conn:
            for pid in pids:
                await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        page = await store.read_retrying(lambda conn: chat_store.load_messages(conn, "c1"))
        assert [m["id"] for m in page.messages] == ["m0", "m1", "m2"]
        # So does the page read straight on asyncpg (`Store.driver_retrying`).
        await kill_pooled(store, killer)
        page = await store.driver_retrying(lambda driver: chat_store.load_messages(driver, "c1"))
        assert [m["id"] for m in page.messages] == ["m0", "m1", "m2"]
        # And a one-statement write (`write_statement`: autocommit, no ping).
        await kill_pooled(store, killer)
        await store.write_statement(
            lambda conn: conn.exec_driver_sql("UPDATE chats SET title = 'renamed' WHERE id = 'c1'")
        )
        async with store.read() as conn:
            assert (await conn.exec_driver_sql("SELECT title FROM chats WHERE id = 'c1'")).scalar_one() == "renamed"
    finally:
        await store.aclose()
        await killer.aclose()


async def kill_pooled(store: Store, killer: Store) -> None:
    """Terminate every connection in `store`'s pools (at most 4 in each by then: SQLAlchemy's
    and the hot paths' `Store.driver`) from another store."""
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(store.read()) for _ in range(4)]
        drivers = [await stack.enter_async_context(store.driver()) for _ in range(4)]
        pids = {(await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one() for conn in held}
        pids |= {await driver.connection.fetchval("SELECT pg_backend_pid()") for driver in drivers}
    async with killer.read() as conn:
        for pid in pids:
            await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")


async def test_two_transactions_creating_one_user_at_once_both_succeed(store: Store) -> None:
    """Two processes starting at once both find no user and both insert it: the second insert
    waits for the first to commit, then does nothing (it used to fail on the primary key)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite's single writer lock serializes the two transactions")
    async with store.engine.connect() as first, store.engine.connect() as second:
        await first.begin()
        await second.begin()
        await ensure_user(first, "carol")
        waiting = asyncio.create_task(ensure_user(second, "carol"))
        await asyncio.sleep(0.2)  # the second insert is now blocked on the first's row lock
        await first.commit()
        await waiting
        await second.commit()
    async with store.read() as conn:
        assert (
            await conn.execute(select(func.count()).select_from(text("users")).where(text("id = 'carol'")))
        ).scalar_one() == 1
