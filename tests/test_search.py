"""Search (issue 20) through the library, on SQLite and PostgreSQL: the query language, ranking,
snippets, filters, pages, ownership, and an index that follows every write path exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from typer.testing import CliRunner

from genvault import InvalidRequest
from genvault.cli import app as cli_app
from genvault.ops.backup import restore
from genvault.providers import testmodel as tm
from genvault.search import parse_query
from genvault.search.ddl import SQLITE_FTS_TABLES, missing_objects
from genvault.server import create_app
from genvault.store import Store
from genvault.store.schema import chats, generations
from genvault.vault import Vault


def msg(message_id: str, text: str, role: str = "user") -> dict[str, Any]:
    return {"id": message_id, "role": role, "parts": [{"type": "text", "text": text}]}


@pytest.fixture
async def vault(vault_factory: Any) -> Vault:
    v: Vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})
    for name in ("alice", "bob"):
        await v.create_user(name)
    return v


async def found(vault: Vault, q: str, **kwargs: Any) -> list[tuple[str, str | None]]:
    """(kind, message id or chat id or generation id) of every hit, best first."""
    kwargs.setdefault("user_id", "alice")
    page = await vault.search(q, limit=100, **kwargs)
    return [(h.kind, h.message_id or h.generation_id or h.chat_id) for h in page.items]


async def alice_chat(vault: Vault) -> None:
    await vault.create_chat("c1", title="Fixing the migration", user_id="alice")
    await vault.append_messages(
        "c1",
        [
            msg("m1", "The migration fails on a foreign key to invoice 4711"),
            msg("m2", "Drop the foreign key first, then migrate the table.", "assistant"),
            msg("m3", "Deploy went fine after the migrations ran"),
        ],
        user_id="alice",
    )


# -- the query language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ('"unclosed phrase', "unclosed quote"),
        ("-draft", "only leaves words out"),
        ("m*", "at least 2"),
        ("mi*gra", "at the end"),
        ("foo_*", "letters and digits"),
        ("*", "at the end of a word"),
        ("- word", "followed by"),
        ("!!! ???", "no letters or digits"),
        ('"..."', "no letters or digits"),
        ('"a b"*', "single word"),
        ("x" * 501, "longer than"),
        (" ".join(["w"] * 17), "at most 16"),
    ],
)
def test_a_malformed_query_is_refused_with_the_reason(q: str, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        parse_query(q)


def test_terms_become_quoted_fts5_strings_that_carry_no_syntax() -> None:
    query = parse_query('migra* "foreign key" -draft NEAR(a) col:x o\'neil OR')
    assert query.fts5(columns="body") == ('body : ("migra" * "foreign key" "near a" "col x" "o neil" "or" NOT "draft")')


# -- finding ---------------------------------------------------------------------------------------


async def test_words_phrases_prefixes_and_exclusions_find_the_right_messages(vault: Vault) -> None:
    await alice_chat(vault)
    assert {k for _, k in await found(vault, "foreign key")} == {"m1", "m2"}
    assert await found(vault, '"key first"') == [("message", "m2")]
    assert await found(vault, '"first key"') == []
    assert {k for _, k in await found(vault, "migra*")} == {"m1", "m2", "m3", "c1"}
    assert {k for _, k in await found(vault, "migra* -foreign")} == {"m3", "c1"}
    assert await found(vault, "4711") == [("message", "m1")]
    assert await found(vault, "INVOICE") == [("message", "m1")]
    assert await found(vault, "nowhere") == []


async def test_hits_are_ranked_and_carry_a_snippet_and_what_to_open(vault: Vault) -> None:
    await alice_chat(vault)
    await vault.append_messages("c1", [msg("m4", "key key key: the key is the key")], user_id="alice")
    page = await vault.search("key", user_id="alice")
    assert page.items[0].message_id == "m4"  # most occurrences ranks first
    hit = next(h for h in page.items if h.message_id == "m1")
    assert hit.snippet == "The migration fails on a foreign <mark>key</mark> to invoice 4711"
    assert (hit.chat_id, hit.role, hit.chat_title) == ("c1", "user", "Fixing the migration")
    assert hit.url == "/chat/c1?message=m1"
    title = (await vault.search("fixing", user_id="alice")).items[0]
    assert (title.kind, title.chat_id, title.url) == ("chat", "c1", "/chat/c1")
    assert title.snippet == "<mark>Fixing</mark> the migration"


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (
            50,
            "…w42 w43 w44 w45 w46 w47 w48 w49 <mark>Needle</mark> w51 w52 w53 w54 w55 w56 w57 w58 w59 w60 "
            "w61 w62 w63 w64 w65…",
        ),
        (3, "w0 w1 w2 <mark>Needle</mark> w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23…"),
        (97, "…w89 w90 w91 w92 w93 w94 w95 w96 <mark>Needle</mark> w98 w99"),
    ],
)
def test_a_snippet_is_the_window_around_the_first_match(at: int, expected: str) -> None:
    from genvault.search.snippet import snippet

    words = [f"w{i}" for i in range(100)]
    words[at] = "Needle"
    assert snippet(" ".join(words), parse_query("needle")) == expected
    assert snippet(" ".join(words), parse_query("absent")) is None


def test_a_snippet_marks_only_words_that_start_with_the_query_however_the_text_is_cased() -> None:
    """The first match is found in the lowercased text; a hit inside a word is not one, and a
    text whose lowercase is longer (İ) is read word by word instead, with the same result."""
    from genvault.search.snippet import snippet

    query = parse_query("migra* table")
    text = "untable remigrate TABLES, then the Migration of a Table"
    expected = "untable remigrate TABLES, then the <mark>Migration</mark> of a <mark>Table</mark>"
    assert snippet(text, query) == expected
    assert snippet("İ " + text, query) == "İ " + expected
    assert snippet("İ untable remigrate", query) is None
    assert snippet("untable remigrate", query) is None


async def test_snippets_escape_html_and_mark_prefix_matches(vault: Vault) -> None:
    await vault.create_chat("c2", user_id="alice")
    await vault.append_messages("c2", [msg("x1", "<b>Migrating</b> & more")], user_id="alice")
    (hit,) = (await vault.search("migrat*", user_id="alice")).items
    assert hit.snippet == "&lt;b&gt;<mark>Migrating</mark>&lt;/b&gt; &amp; more"


async def test_generations_are_found_by_prompt_and_output_once_finished(vault: Vault) -> None:
    record = await vault.generate("Write a haiku about invoices", user_id="alice")
    await vault.wait(record.id, user_id="alice")
    done = await vault.get_generation(record.id, user_id="alice")
    assert await found(vault, "haiku") == [("generation", record.id)]
    output_word = next(w for w in (done.result_text or "").split() if w.isalpha() and len(w) > 3)
    assert ("generation", record.id) in await found(vault, output_word)
    (hit,) = (await vault.search("haiku", user_id="alice")).items
    assert (hit.url, hit.status, hit.model) == (f"/generate/{record.id}", "complete", done.model)


async def test_a_chat_turn_is_found_as_its_messages_and_by_list_filters(vault: Vault) -> None:
    await vault.create_chat("turns", user_id="alice")
    turn = await vault.chat("turns", message=msg("u1", "tell me about zebras"), user_id="alice")
    await vault.wait(turn.generation.id, user_id="alice")
    hits = await found(vault, "zebras")
    assert ("message", "u1") in hits
    assert all(kind == "message" for kind, _ in hits)  # the turn's generation is not a second hit
    reply = await vault.chat_messages("turns", user_id="alice")
    reply_text = reply.messages[-1]["parts"][-1]["text"]
    word = next(w for w in reply_text.split() if w.isalpha() and len(w) > 3)
    listed = await vault.list_generations(user_id="alice", q=word)
    assert [g.id for g in listed.items] == [turn.generation.id]
    assert (await vault.list_generations(user_id="alice", q="nonexistentword")).items == []
    assert [c.id for c in (await vault.list_chats(user_id="alice", q="zebras")).items] == ["turns"]
    assert (await vault.list_chats(user_id="bob", q="zebras")).items == []


async def test_filters_narrow_the_hits(vault: Vault) -> None:
    await alice_chat(vault)
    await vault.create_chat("c9", title="Other migration", user_id="alice")
    await vault.append_messages("c9", [msg("n1", "another migration story")], user_id="alice")
    assert {k for _, k in await found(vault, "migration", chat_id="c9")} == {"c9", "n1"}
    assert await found(vault, "migration", kind="chat") == [("chat", "c1"), ("chat", "c9")] or await found(
        vault, "migration", kind="chat"
    ) == [("chat", "c9"), ("chat", "c1")]
    assert await found(vault, "key", role="assistant") == [("message", "m2")]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await found(vault, "migration", since=future) == []
    assert len(await found(vault, "migration", until=future)) == 4
    with pytest.raises(InvalidRequest, match="kind"):
        await vault.search("x", kind="nope", user_id="alice")
    with pytest.raises(InvalidRequest, match="since must be before"):
        await vault.search("x", since=future, until=future, user_id="alice")


async def test_a_tag_narrows_the_hits_to_tagged_chats_and_generations_on_every_surface(
    vault: Vault, tmp_path: Path
) -> None:
    await vault.create_chat("tagged", title="Zebras at the zoo", user_id="alice", tags=["support"])
    await vault.append_messages("tagged", [msg("t1", "zebras have stripes")], user_id="alice")
    await vault.create_chat("plain", title="More zebras", user_id="alice")
    await vault.append_messages("plain", [msg("p1", "zebras run fast")], user_id="alice")
    labelled = await vault.generate("zebras in a poem", user_id="alice", tags=["support", "eval"])
    other = await vault.generate("zebras in a song", user_id="alice", tags=["eval"])
    for generation in (labelled, other):
        await vault.wait(generation.id, user_id="alice")
    expected = {("chat", "tagged"), ("message", "t1"), ("generation", labelled.id)}
    assert set(await found(vault, "zebras", tag="support")) == expected
    assert {key for _, key in await found(vault, "zebras", tag="eval")} == {labelled.id, other.id}
    assert await found(vault, "zebras", tag="nobody") == []
    with pytest.raises(InvalidRequest):
        await vault.search("zebras", tag="a\nb", user_id="alice")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(vault=vault)), base_url="http://t"
    ) as http:
        # The local user (an admin under auth none) searches alice's records.
        answer = await http.get("/api/search", params={"q": "zebras", "tag": "support", "user": "alice"})
        bad = await http.get("/api/search", params={"q": "zebras", "tag": "x" * 65, "user": "alice"})
        page = await http.get("/search", params={"q": "zebras", "tag": "support", "user": "alice"})
    assert answer.status_code == 200, answer.text
    hits = {(h["kind"], h["message_id"] or h["generation_id"] or h["chat_id"]) for h in answer.json()["items"]}
    assert hits == expected
    assert bad.status_code == 400
    assert page.status_code == 200
    assert 'value="support"' in page.text
    assert labelled.id in page.text
    assert other.id not in page.text


def test_the_cli_searches_by_tag(tmp_path: Path) -> None:
    env = {"GENVAULT_DATA_DIR": str(tmp_path), "GENVAULT_TEST_MODEL_TPS": "0"}
    runner = CliRunner()
    for tags in (["--tag", "support"], []):
        made = runner.invoke(
            cli_app, ["generate", "zebras everywhere", *tags, "--json"], env=env, catch_exceptions=False
        )
        assert made.exit_code == 0, made.output
    tagged = runner.invoke(cli_app, ["search", "zebras", "--tag", "support", "--json"], env=env, catch_exceptions=False)
    assert tagged.exit_code == 0, tagged.output
    hits = [json.loads(line) for line in tagged.stdout.splitlines() if line.strip()]
    assert len(hits) == 1
    assert hits[0]["kind"] == "generation"


async def test_pages_follow_the_cursor_without_gaps_or_repeats(vault: Vault) -> None:
    await vault.create_chat("many", user_id="alice")
    await vault.append_messages(
        "many", [msg(f"p{i}", "needle " * (1 + i % 4) + f"filler {i}") for i in range(23)], user_id="alice"
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = await vault.search("needle", user_id="alice", limit=5, cursor=cursor)
        seen += [h.message_id or "" for h in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    everything = await vault.search("needle", user_id="alice", limit=100)
    assert seen == [h.message_id for h in everything.items]
    assert sorted(seen) == sorted(f"p{i}" for i in range(23))
    with pytest.raises(InvalidRequest, match="cursor"):
        await vault.search("needle", user_id="alice", cursor="garbage!")


async def test_a_user_finds_only_their_own_and_everyone_is_for_operators(vault: Vault) -> None:
    await alice_chat(vault)
    await vault.create_chat("b1", title="Bob's migration", user_id="bob")
    await vault.append_messages("b1", [msg("bm", "bob also has a migration")], user_id="bob")
    assert {k for _, k in await found(vault, "migration", user_id="bob")} == {"b1", "bm"}
    assert "bm" not in {k for _, k in await found(vault, "migration")}
    everyone = await found(vault, "migration", user_id=None)
    assert {"bm", "m1", "b1", "c1"} <= {k for _, k in everyone}


# -- the index stays exact ---------------------------------------------------------------------------


async def assert_index_consistent(vault: Vault) -> None:
    """SQLite: FTS5's own check that each index holds exactly what its content view holds (after
    the queue is applied). PostgreSQL keeps its indexes itself."""
    await vault.searcher.catch_up()
    if vault.store.dialect == "sqlite":
        async with vault.store.write() as conn:
            for table in SQLITE_FTS_TABLES:
                await conn.execute(text(f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)"))
            assert (await conn.execute(text("SELECT count(*) FROM search_parts_pending"))).scalar() == 0


async def test_the_queue_of_part_changes_lands_exactly_whatever_happened_before_a_search(vault: Vault) -> None:
    """On SQLite message parts reach the index through a queue; in any order of changes between
    two searches, the index ends up holding what the table holds."""
    await vault.create_chat("q", user_id="alice")
    await vault.append_messages("q", [msg("a", "aardvark one"), msg("b", "badger two")], user_id="alice")
    assert await found(vault, "aardvark") == [("message", "a")]
    # Between two searches: delete an indexed part, add one and delete it, reuse a freed rowid,
    # and replace a message twice.
    await vault.delete_message("q", "b", user_id="alice")
    await vault.append_messages("q", [msg("c", "cheetah three")], user_id="alice")
    await vault.delete_message("q", "c", user_id="alice")
    await vault.append_messages("q", [msg("d", "dingo four")], user_id="alice")
    await vault.import_chat("q", [msg("a", "echidna five")], user_id="alice")
    await vault.import_chat("q", [msg("a", "ferret six")], user_id="alice")
    for gone in ("badger", "cheetah", "aardvark", "echidna"):
        assert await found(vault, gone) == [], gone
    assert await found(vault, "dingo") == [("message", "d")]
    assert await found(vault, "ferret") == [("message", "a")]
    await assert_index_consistent(vault)


async def test_the_index_follows_edits_and_deletes_of_messages_and_chats(vault: Vault) -> None:
    await alice_chat(vault)
    # An edit: the message is replaced (truncate + new message) by a chat turn.
    turn = await vault.chat("c1", message=msg("m1", "The upgrade fails on a unique index"), user_id="alice")
    await vault.wait(turn.generation.id, user_id="alice")
    assert await found(vault, "invoice") == []
    assert await found(vault, "unique") == [("message", "m1")]
    assert await found(vault, "deploy") == []  # after the edited message: cut
    await vault.delete_message("c1", "m1", user_id="alice")
    assert await found(vault, "unique") == []
    await vault.update_chat("c1", title="Renamed entirely", user_id="alice")
    assert await found(vault, "fixing") == []
    assert await found(vault, "renamed") == [("chat", "c1")]
    await vault.delete_chat("c1", user_id="alice")
    assert await found(vault, "renamed") == []
    assert await found(vault, "migra*") == []
    await assert_index_consistent(vault)


async def test_the_index_follows_imports_erasure_and_retention(vault_factory: Any) -> None:
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)},
        settings_overrides={"retention_days_chat": 30, "retention_days_text": 7},
    )
    await vault.create_user("alice")
    await vault.create_user("bob")
    await vault.import_chat("imp", [msg("i1", "imported walrus notes")], user_id="alice", title="Walrus")
    assert {k for _, k in await found(vault, "walrus")} == {"i1", "imp"}
    await vault.import_chat("old", [msg("o1", "ancient platypus")], user_id="alice")
    record = await vault.generate("platypus poem", user_id="alice")
    await vault.wait(record.id, user_id="alice")
    assert len(await found(vault, "platypus")) == 2
    long_ago = datetime.now(UTC) - timedelta(days=40)
    async with vault.store.write() as conn:
        await conn.execute(update(chats).where(chats.c.id == "old").values(updated_at=long_ago))
        await conn.execute(update(generations).where(generations.c.id == record.id).values(created_at=long_ago))
    await vault.apply_retention()
    assert await found(vault, "platypus") == []
    await vault.import_chat("bobs", [msg("b1", "bob's walrus")], user_id="bob")
    await vault.erase_user("alice")
    assert await found(vault, "walrus", user_id=None) == [("message", "b1")]
    await assert_index_consistent(vault)


async def test_a_restored_backup_is_searchable_and_holds_only_what_it_held(vault: Vault, tmp_path: Path) -> None:
    await alice_chat(vault)
    await vault.backup(tmp_path / "backup")
    await vault.append_messages("c1", [msg("late", "written after the backup: pelican")], user_id="alice")
    target = Store(f"sqlite:///{tmp_path / 'restored.db'}")
    try:
        await restore(tmp_path / "backup", target)
        restored = Vault(store_settings(vault, tmp_path, target.url), migrate=False)
        try:
            assert {k for _, k in await found(restored, "foreign key")} == {"m1", "m2"}
            assert await found(restored, "pelican") == []
        finally:
            await restored.aclose(grace_seconds=0)
        async with target.read() as conn:
            assert await missing_objects(conn) == []
    finally:
        await target.aclose()


def store_settings(vault: Vault, tmp_path: Path, url: str) -> Any:
    return vault.settings.model_copy(update={"database_url": url, "data_dir": tmp_path / "restored-data"})


@pytest.mark.empty_database
async def test_upgrade_builds_the_index_for_rows_written_before_it(database: tuple[str, str | None]) -> None:
    """Revision 0009 over existing data (on PostgreSQL the CREATE INDEX CONCURRENTLY path)."""
    from genvault.store.db import upgrade
    from genvault.store.users import ensure_user

    url, schema = database
    store = Store(url, schema=schema)
    try:
        await upgrade(store.engine, "0005")
        # Rows as revision 0005 held them, in SQL of that revision (today's store code writes
        # columns later revisions added).
        now = datetime.now(UTC)
        async with store.write() as conn:
            await ensure_user(conn, "alice", "alice")
            await conn.execute(
                text(
                    "INSERT INTO chats (id, user_id, title, visibility, last_seq, created_at, updated_at) "
                    "VALUES ('pre', 'alice', 'Before the index', 'private', 1, :now, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO messages (chat_id, id, seq, user_id, role, created_at) "
                    "VALUES ('pre', 'pm', 1, 'alice', 'user', :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO parts (chat_id, message_id, position, user_id, type, text_text) "
                    "VALUES ('pre', 'pm', 0, 'alice', 'text', 'an older message about otters')"
                )
            )
        await store.upgrade()
        async with store.read() as conn:
            assert await missing_objects(conn) == []
        vault = Vault(
            __import__("genvault").Settings(database_url=url, data_dir=Path("/nonexistent")),
            database_schema=schema,
            migrate=False,
        )
        try:
            assert await found(vault, "otters") == [("message", "pm")]
            assert await found(vault, "before") == [("chat", "pre")]
        finally:
            await vault.aclose(grace_seconds=0)
    finally:
        await store.aclose()


async def test_an_unfiltered_search_of_everyone_ranks_a_window_and_a_filtered_one_is_exact(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin's unfiltered search ranks at most ADMIN_WINDOW candidates per source (so it stays
    fast at a million messages); a user's search, or any filter, still finds every match."""
    from genvault.search import service

    monkeypatch.setattr(service, "ADMIN_WINDOW", 2)
    for i, user in enumerate(("alice", "bob", "alice", "bob", "alice")):
        await vault.import_chat(f"c{i}", [msg(f"m{i}", f"narwhal sighting {i}")], user_id=user)
    everyone = await found(vault, "narwhal", user_id=None, kind="message")
    assert len(everyone) == 2
    assert {k for _, k in everyone} <= {f"m{i}" for i in range(5)}
    page = await vault.search("narwhal", user_id=None, kind="message", limit=1)
    assert page.next_cursor is not None
    rest = await vault.search("narwhal", user_id=None, kind="message", limit=1, cursor=page.next_cursor)
    assert [h.message_id for h in rest.items] != [h.message_id for h in page.items]
    assert {k for _, k in await found(vault, "narwhal", kind="message")} == {"m0", "m2", "m4"}
    assert {k for _, k in await found(vault, "narwhal", user_id="bob", kind="message")} == {"m1", "m3"}
    chat = await found(vault, "narwhal", user_id=None, chat_id="c3")
    assert chat == [("message", "m3")]
    since = datetime.now(UTC) - timedelta(days=1)
    assert len(await found(vault, "narwhal", user_id=None, kind="message", since=since)) == 5


def test_the_own_rank_favours_more_occurrences_shorter_texts_and_counts_prefixes() -> None:
    from genvault.search.rank import rank, rank_terms

    terms = rank_terms(parse_query('table "foreign key" migra* -draft'))
    assert terms == "table foreign key migra*"
    assert rank("nothing to see", terms) == 0.0
    assert rank("untable remigrate keyless", terms) == 0.0  # inside a word is not a match
    assert rank(None, terms) == 0.0
    once = rank("the table " + "filler " * 20, terms)
    twice = rank("the table and the table " + "filler " * 17, terms)
    assert twice < once < 0
    assert rank("the table", terms) < rank("the table " + "filler " * 200, terms)
    assert rank("Migrations, migrated", terms) < rank("migrations", terms) < 0
    assert rank("the table's foreign key migrates", terms) < rank("the table", terms)


async def test_a_users_search_scores_with_the_own_rank_on_sqlite(vault: Vault) -> None:
    from genvault.search.rank import rank, rank_terms

    await alice_chat(vault)
    page = await vault.search("migra*", user_id="alice", kind="message")
    assert page.items
    if vault.store.dialect == "sqlite":
        terms = rank_terms(parse_query("migra*"))
        texts = {
            "m1": "The migration fails on a foreign key to invoice 4711",
            "m2": "Drop the foreign key first, then migrate the table.",
            "m3": "Deploy went fine after the migrations ran",
        }
        assert [h.score for h in page.items] == sorted(rank(texts[h.message_id or ""], terms) for h in page.items)
        assert {h.score for h in page.items} == {rank(t, terms) for t in texts.values()}


async def test_generations_have_a_prefix_index_and_prefix_searches_find_them(vault: Vault) -> None:
    """Revision 0024: generations' FTS5 table keeps 3-, 4- and 5-character prefixes (SQLite)."""
    record = await vault.generate("how to migrate the invoices table", user_id="alice")
    await vault.wait(record.id, user_id="alice")
    for q in ("migr*", "migra*", "migrat*", "mi*"):
        assert ("generation", record.id) in await found(vault, q), q
    assert ("generation", record.id) not in await found(vault, "migra*", user_id="bob")
    if vault.store.dialect == "sqlite":
        async with vault.store.read() as conn:
            sql = (await conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'search_generations'"))).scalar()
        assert "prefix = '3 4 5'" in sql


@pytest.mark.parametrize("own_rows", [1, 5000])
async def test_a_users_prefix_search_finds_the_same_by_the_index_or_by_their_rows(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, own_rows: int
) -> None:
    """PostgreSQL reads a user's own rows for a prefix below PG_OWN_ROWS rows, else the GIN index
    with the owner lexeme: the same hits, only the user's, either way (SQLite: one way)."""
    from genvault.search import service

    monkeypatch.setattr(service, "PG_OWN_ROWS", own_rows)
    await alice_chat(vault)
    record = await vault.generate("migrating the ledger", user_id="alice")
    await vault.wait(record.id, user_id="alice")
    await vault.import_chat("bobs", [msg("b1", "bob migrates too")], user_id="bob")
    hits = {k for _, k in await found(vault, "migra*")}
    assert {"m1", "m2", "m3", "c1", record.id} <= hits
    assert "b1" not in hits
    assert {k for _, k in await found(vault, "migra* -foreign")} >= {"m3", "c1", record.id}
    assert {k for _, k in await found(vault, "migra* -foreign", kind="message")} == {"m3"}
    assert {k for _, k in await found(vault, "migra*", user_id="bob")} == {"b1"}
    # The list filters use the same matching.
    assert {c.id for c in (await vault.list_chats(user_id="alice", q="migra*")).items} == {"c1"}
    assert {c.id for c in (await vault.list_chats(user_id="bob", q="migra*")).items} == {"bobs"}
    assert record.id in {g.id for g in (await vault.list_generations(user_id="alice", q="migra*")).items}
    assert record.id not in {g.id for g in (await vault.list_generations(user_id="bob", q="migra*")).items}


async def test_chat_titles_reach_the_index_through_the_queue_whatever_happened_before_a_search(
    vault: Vault,
) -> None:
    """Revision 0028: on SQLite a chat's title is queued (`c+`, `c-`) rather than indexed in the
    writer's transaction, like message parts; a search and the chat list's filter see every
    committed title all the same, and the index ends up holding what the table holds."""
    await vault.create_chat("t1", title="Walrus planning", user_id="alice")
    if vault.store.dialect == "sqlite":
        async with vault.store.read() as conn:
            ops = (await conn.execute(text("SELECT op FROM search_parts_pending"))).scalars().all()
            assert ops == ["c+"]
            indexed = "SELECT count(*) FROM search_chats WHERE search_chats MATCH 'walrus'"
            assert (await conn.execute(text(indexed))).scalar() == 0  # not yet: queued
    assert await found(vault, "walrus") == [("chat", "t1")]
    # Between two searches: a title renamed twice, a chat made and deleted, one deleted, a title
    # taken away, and the list's filter before any search.
    await vault.update_chat("t1", title="Narwhal plans", user_id="alice")
    await vault.update_chat("t1", title="Orca plans", user_id="alice")
    await vault.create_chat("t2", title="Walrus again", user_id="alice")
    await vault.delete_chat("t2", user_id="alice")
    await vault.create_chat("t3", title="Beluga notes", user_id="alice")
    await vault.create_chat("t4", title="Dolphin notes", user_id="alice")
    assert [c.id for c in (await vault.list_chats(user_id="alice", q="orca")).items] == ["t1"]
    await vault.delete_chat("t3", user_id="alice")
    for gone in ("walrus", "narwhal", "beluga"):
        assert await found(vault, gone) == [], gone
    assert await found(vault, "orca") == [("chat", "t1")]
    assert await found(vault, "dolphin") == [("chat", "t4")]
    assert await found(vault, "orca", user_id="bob") == []
    await assert_index_consistent(vault)
