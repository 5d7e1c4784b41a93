"""Export, import, erasure, retention and verify through the library, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from genvault.blobs import BlobStore
from genvault.errors import Conflict, InvalidRequest
from genvault.ops import archive as archive_module
from genvault.ops.backup import restore
from genvault.providers import testmodel as tm
from genvault.settings import Settings
from genvault.store import Store
from genvault.store.audit import list_events, user_hash
from genvault.store.schema import audit_events, blobs, chats, generations, parts
from genvault.vault import Vault
from traces import rows_mentioning

SHARED_BYTES = b"the same file, uploaded by several users"
USER_MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello there"}]}


async def fill(vault: Any, user: str, *, chats_n: int = 2) -> None:
    """Chats with replies, a text generation, and client JSON with ordered keys and nulls."""
    await vault.create_user(user)
    for i in range(chats_n):
        turn = await vault.chat(f"{user}-chat-{i}", message=USER_MESSAGE, user_id=user)
        await vault.wait(turn.generation.id, user_id=user)
    await vault.import_chat(
        f"{user}-imported",
        [
            {"id": "m1", "role": "user", "metadata": {"z": 1, "a": None}, "parts": [{"type": "text", "text": "x"}]},
            {
                "id": "m2",
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool-weather",
                        "toolCallId": "c1",
                        "state": "output-available",
                        "input": {"city": "Oslo", "units": None},
                        "output": {"temp": 1.5, "b": [1, {"y": 2, "x": 1}]},
                    }
                ],
            },
        ],
        user_id=user,
    )
    record = await vault.generate(f"{user}'s prompt ✓", user_id=user)
    await vault.wait(record.id, user_id=user)
    await vault.store_file(
        f"{user}'s own picture".encode(), media_type="image/png", user_id=user, generation_id=record.id
    )
    await vault.store_file(SHARED_BYTES, media_type="text/plain", user_id=user, chat_id=f"{user}-imported")


async def dump_all(vault: Any) -> bytes:
    return b"".join([line async for line in vault.export(user_id=None)])


@pytest.fixture
async def vault(vault_factory: Any) -> Any:
    return await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})


async def test_a_user_export_holds_their_rows_in_order_and_ends_with_counts(vault: Any) -> None:
    await fill(vault, "alice")
    await fill(vault, "bob", chats_n=1)
    lines = [line async for line in vault.export(user_id="alice")]
    records = [json.loads(line) for line in lines]
    assert records[0]["format"] == "genvault-archive"
    assert records[0]["user_id"] == "alice"
    rows = [r for r in records if "table" in r]
    assert {r["row"].get("user_id", r["row"].get("id")) for r in rows} == {"alice"}
    assert "api_keys" not in {r["table"] for r in rows}
    end = records[-1]["end"]
    assert end["rows"]["chats"] == 3
    assert end["rows"]["generations"] == 3
    assert end["rows"]["blobs"] == 2
    assert end["objects"] == 2
    objects = [r for r in records if "object" in r]
    assert [o["object"] for o in objects] == sorted(o["object"] for o in objects)
    # Client JSON keeps its key order and its nulls; absent keys stay absent.
    # Each chat also comes as the UIMessages useChat would load, in chat id order.
    views = [r for r in records if "chat" in r]
    assert [v["chat"] for v in views] == sorted(["alice-chat-0", "alice-chat-1", "alice-imported"])
    page = await vault.chat_messages("alice-imported", user_id="alice")
    assert views[-1]["messages"] == page.messages
    assert end["uimessages"] == 3
    m1 = next(r["row"] for r in rows if r["table"] == "messages" and r["row"]["id"] == "m1")
    assert json.dumps(m1["metadata"]) == '{"z": 1, "a": null}'
    assert "metadata" not in next(r["row"] for r in rows if r["table"] == "messages" and r["row"]["id"] == "m2")


async def test_exporting_an_unknown_user_is_not_found(vault: Any) -> None:
    with pytest.raises(Exception, match="no user 'ghost'"):
        [line async for line in vault.export(user_id="ghost")]


@pytest.mark.postgres
async def test_sqlite_export_import_into_a_fresh_postgres_schema_export_is_byte_identical(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    source = Settings(data_dir=tmp_path / "src", database_url=f"sqlite:///{tmp_path / 'src.db'}", test_model_tps=0)
    async with Vault(source) as vault:
        await fill(vault, "alice")
        await fill(vault, "bob", chats_n=1)
        first = await dump_all(vault)
        alice_first = b"".join([line async for line in vault.export(user_id="alice")])
    url, schema = pg_schema
    async with Vault(Settings(data_dir=tmp_path / "dst", database_url=url), database_schema=schema) as target:
        result = await target.import_archive(first.splitlines(keepends=True))
        assert result["objects"] == 3
        assert await dump_all(target) == first
        assert b"".join([line async for line in target.export(user_id="alice")]) == alice_first
        assert (await target.verify()).ok


async def test_a_user_archive_moves_to_another_database_and_back_unchanged(vault: Any, tmp_path: Path) -> None:
    await fill(vault, "alice")
    archive = tmp_path / "alice.jsonl"
    archive.write_bytes(b"".join([line async for line in vault.export(user_id="alice")]))
    other = Settings(data_dir=tmp_path / "other", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    async with Vault(other) as target:
        result = await target.import_archive(archive)
        assert result["rows"]["chats"] == 3
        again = b"".join([line async for line in target.export(user_id="alice")])
        assert again == archive.read_bytes()
        async with target.store.read() as conn:
            file_ids = (await conn.execute(select(blobs.c.id).where(blobs.c.user_id == "alice"))).scalars().all()
        contents = {await target.read_file(file_id, user_id="alice") for file_id in file_ids}
        assert contents == {b"alice's own picture", SHARED_BYTES}


async def test_importing_into_a_database_that_has_the_rows_changes_nothing(vault: Any) -> None:
    await fill(vault, "alice", chats_n=1)
    archive = b"".join([line async for line in vault.export(user_id="alice")])
    before = await dump_all(vault)
    with pytest.raises(Exception, match="already holds"):
        await vault.import_archive(archive.splitlines(keepends=True))
    assert await dump_all(vault) == before


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda lines: lines[:-1], "no end line"),
        (lambda lines: lines[:3] + lines[4:], "does not match|damaged"),
        (lambda lines: [b'{"format":"zip"}\n', *lines[1:]], "not a genvault archive"),
        (lambda lines: [lines[0], b"not json\n", *lines[1:]], "line 2: not JSON"),
        (lambda lines: [lines[0], b'{"table":"nope","row":{}}\n', *lines[1:]], "unknown table"),
        (lambda lines: [lines[0], b'{"table":"chats","row":{"colour":1}}\n', *lines[1:]], "no column 'colour'"),
        (
            lambda lines: [
                line.replace(b'"text":"x"', b'"text":"y"') if b'"chat":' in line else line for line in lines
            ],
            "differ from its rows",
        ),
    ],
)
async def test_a_damaged_archive_is_refused_with_a_reason_and_nothing_is_written(
    vault: Any, tmp_path: Path, mangle: Any, message: str
) -> None:
    await fill(vault, "alice", chats_n=1)
    lines = [line async for line in vault.export(user_id="alice")]
    await vault.erase_user("alice")
    before = await dump_all(vault)
    with pytest.raises(InvalidRequest, match=message):
        await vault.import_archive(mangle(lines))
    assert await dump_all(vault) == before


async def test_erasing_a_user_leaves_no_row_with_their_id_and_others_untouched(vault: Any) -> None:
    await fill(vault, "alice")
    await fill(vault, "bob")
    bob_before = b"".join([line async for line in vault.export(user_id="bob")])
    # A live (retained) stream buffer of alice's.
    turn = await vault.chat("alice-chat-0", message={**USER_MESSAGE, "id": "u2"}, user_id="alice")
    await vault.wait(turn.generation.id, user_id="alice")
    assert await vault.hub.exists(turn.generation.id)

    objects_before = {key async for key in vault.blobs.iter_keys()}
    everything_before = await dump_all(vault)

    receipt = await vault.erase_user("alice", actor_user_id="local")

    assert await rows_mentioning(vault.store, "alice") == {}
    # Alice's own picture is gone; the file bob also uploaded stays, for bob.
    objects_after = {key async for key in vault.blobs.iter_keys()}
    assert objects_before - objects_after == {hashlib.sha256(b"alice's own picture").hexdigest()}
    assert hashlib.sha256(SHARED_BYTES).hexdigest() in objects_after
    assert receipt.counts["blobs"] == 2
    assert receipt.counts["blob_objects"] == 1
    assert not await vault.hub.exists(turn.generation.id)
    assert receipt.counts["chats"] == 3
    assert receipt.counts["generations"] == 4
    assert receipt.counts["parts"] > 0
    assert receipt.counts["users"] == 1
    assert receipt.counts["stream_buffers"] >= 1
    assert b"".join([line async for line in vault.export(user_id="bob")]) == bob_before
    # Every other line of the whole database is exactly as it was.
    alice_picture = "sha256:" + hashlib.sha256(b"alice's own picture").hexdigest()

    def others(dump: bytes) -> list[bytes]:
        kept = []
        for line in dump.splitlines()[1:-1]:
            record = json.loads(line)
            row = record.get("row", {})
            if record.get("table") == "audit_events" or record.get("object") == alice_picture:
                continue
            if row.get("user_id") == "alice" or (record.get("table") == "users" and row["id"] == "alice"):
                continue
            kept.append(line)
        return kept

    everything_after = await dump_all(vault)
    assert others(everything_after) == others(everything_before)
    # Not even inside a JSON column or a longer string: the audit event names her by pseudonym.
    assert b"alice" not in everything_after
    async with vault.store.read() as conn:
        event = (await conn.execute(select(audit_events))).mappings().one()
    assert event["action"] == "erase_user"
    assert event["actor_user_id"] == "local"
    assert event["actor_user_hash"] is None
    assert event["subject_user_hash"] == user_hash("alice")
    assert event["counts"] == receipt.counts
    assert "hello" not in str(dict(event))


def test_a_user_hash_is_sha256_of_the_domain_and_the_id_and_names_its_algorithm() -> None:
    expected = hashlib.sha256(b"genvault-audit-user:alice").hexdigest()
    assert user_hash("alice") == f"sha256:{expected}"
    assert user_hash("alice") != user_hash("alice ")
    assert user_hash("alice") != "sha256:" + hashlib.sha256(b"alice").hexdigest()


async def test_the_audit_log_still_finds_an_erased_user_by_their_id(vault: Any) -> None:
    await fill(vault, "alice", chats_n=1)
    await fill(vault, "bob", chats_n=1)
    first = await vault.erase_user("alice")
    second = await vault.erase_user("alice")
    await vault.erase_user("bob")
    async with vault.store.read() as conn:
        events = await list_events(conn, subject_user_id="alice")
        assert await list_events(conn, subject_user_id="ghost") == []
    assert [e["id"] for e in events] == [second.audit_id, first.audit_id]
    assert {e["subject_user_hash"] for e in events} == {user_hash("alice")}
    assert "subject_user_id" not in events[0]


async def test_a_user_erasing_themself_is_recorded_as_self_without_their_id(vault: Any) -> None:
    await fill(vault, "alice", chats_n=1)
    receipt = await vault.erase_user("alice", actor_user_id="alice")
    assert await rows_mentioning(vault.store, "alice") == {}
    async with vault.store.read() as conn:
        (event,) = await list_events(conn, subject_user_id="alice")
    assert event["id"] == receipt.audit_id
    assert event["actor_user_id"] is None
    assert event["actor_user_hash"] == event["subject_user_hash"] == user_hash("alice")


async def test_erasing_an_admin_replaces_their_id_in_the_events_they_acted_in(vault: Any) -> None:
    await vault.create_user("root", is_admin=True)
    await fill(vault, "alice", chats_n=1)
    await fill(vault, "bob", chats_n=1)
    by_root = await vault.erase_user("alice", actor_user_id="root")
    by_bob = await vault.erase_user("root", actor_user_id="bob")
    assert by_bob.counts["users"] == 1
    assert "audit_events" not in by_bob.counts  # the audit log is not root's data
    assert await rows_mentioning(vault.store, "root") == {}
    assert await rows_mentioning(vault.store, "alice") == {}
    async with vault.store.read() as conn:
        events = {e["id"]: e for e in await list_events(conn)}
    assert events[by_root.audit_id]["actor_user_id"] is None
    assert events[by_root.audit_id]["actor_user_hash"] == user_hash("root")
    assert events[by_root.audit_id]["subject_user_hash"] == user_hash("alice")
    # Bob is not erased: his id as the actor stays.
    assert events[by_bob.audit_id]["actor_user_id"] == "bob"
    assert events[by_bob.audit_id]["actor_user_hash"] is None
    assert events[by_bob.audit_id]["subject_user_hash"] == user_hash("root")


async def test_erasing_twice_is_safe_and_the_second_receipt_is_all_zeros(vault: Any) -> None:
    await fill(vault, "alice", chats_n=1)
    await vault.erase_user("alice")
    again = await vault.erase_user("alice")
    assert set(again.counts.values()) == {0}


async def test_erasure_stops_a_running_generation_first(vault_factory: Any) -> None:
    slow = tm.TestProvider(tokens_per_second=5)
    vault = await vault_factory(providers={"offline": slow})
    await vault.create_user("alice")
    record = await vault.generate("a long story " * 20, user_id="alice", params={"max_tokens": 500})
    receipt = await vault.erase_user("alice")
    assert receipt.counts["generations"] == 1
    assert await rows_mentioning(vault.store, "alice") == {}
    assert not vault.engine.is_running_here(record.id)


async def test_another_users_cache_hit_on_an_erased_generation_keeps_only_its_own_data(vault: Any) -> None:
    await fill(vault, "alice", chats_n=0)
    await fill(vault, "bob", chats_n=0)
    async with vault.store.write() as conn:
        alice_gen = (await conn.execute(select(generations.c.id).where(generations.c.user_id == "alice"))).scalar()
        await conn.execute(update(generations).where(generations.c.user_id == "bob").values(cached_from=alice_gen))
    await vault.erase_user("alice")
    async with vault.store.read() as conn:
        links = (await conn.execute(select(generations.c.cached_from).where(generations.c.user_id == "bob"))).all()
    assert links
    assert all(link[0] is None for link in links)


async def test_retention_deletes_old_chats_and_generations_per_kind_only(vault_factory: Any) -> None:
    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)},
        settings_overrides={"retention_days_chat": 30, "retention_days_text": 7},
    )
    await fill(vault, "alice")
    old = datetime.now(UTC) - timedelta(days=40)
    async with vault.store.write() as conn:
        await conn.execute(update(chats).where(chats.c.id == "alice-chat-0").values(updated_at=old))
        await conn.execute(
            update(generations)
            .where(generations.c.kind == "text")
            .values(created_at=datetime.now(UTC) - timedelta(days=8))
        )
    report = await vault.apply_retention()
    assert report.counts["chats"] == 1
    assert report.counts["generations"] == 2  # the old chat's reply and the old text generation
    # The old text generation's picture goes (row and object); the file of a kept chat stays.
    assert report.counts["blobs"] == 1
    assert report.counts["blob_objects"] == 1
    objects = {key async for key in vault.blobs.iter_keys()}
    assert objects == {hashlib.sha256(SHARED_BYTES).hexdigest()}
    async with vault.store.read() as conn:
        remaining = set((await conn.execute(select(chats.c.id))).scalars().all())
        kinds = (await conn.execute(select(generations.c.kind))).scalars().all()
        orphan_parts = (
            await conn.execute(select(func.count()).select_from(parts).where(parts.c.chat_id == "alice-chat-0"))
        ).scalar()
        event = (await conn.execute(select(audit_events))).mappings().one()
    assert remaining == {"alice-chat-1", "alice-imported"}
    assert sorted(kinds) == ["chat"]
    assert orphan_parts == 0
    assert event["action"] == "retention"
    assert event["subject_user_hash"] is None
    assert event["actor_user_id"] is None
    assert event["actor_user_hash"] is None
    assert event["counts"] == report.counts
    assert (await vault.apply_retention()).counts == {}  # nothing more to do, no new event


async def test_verify_finds_missing_parts_and_stuck_records(vault: Any) -> None:
    await fill(vault, "alice", chats_n=1)
    assert (await vault.verify()).ok
    async with vault.store.write() as conn:
        await conn.execute(parts.delete().where(parts.c.chat_id == "alice-chat-0", parts.c.message_id == "u1"))
        await conn.execute(
            update(generations)
            .where(generations.c.kind == "text")
            .values(status="streaming", lease_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    report = await vault.verify()
    assert report.problem_count == 2
    assert any("message 'u1'" in p and "no parts" in p for p in report.problems)
    assert any("stuck streaming" in p for p in report.problems)


async def test_erasure_with_redis_leaves_none_of_their_cache_keys_or_streams(
    vault_factory: Any, redis_settings: dict[str, str]
) -> None:
    import redis.asyncio as aioredis

    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides=redis_settings
    )
    for user in ("alice", "bob"):
        await vault.create_user(user)
        for _ in range(2):  # the second is a cache hit: an entry exists
            record = await vault.generate("the same prompt", user_id=user)
            await vault.wait(record.id, user_id=user)
    prefix = redis_settings["redis_prefix"]
    client = aioredis.Redis.from_url(redis_settings["redis_url"], decode_responses=True)
    try:
        alice_keys = {f"{prefix}cache-user:alice"} | {
            f"{prefix}cache:{k}" for k in await client.smembers(f"{prefix}cache-user:alice")
        }
        assert await client.exists(*alice_keys) == len(alice_keys) >= 2
        before = {k async for k in client.scan_iter(match=f"{prefix}*")}

        receipt = await vault.erase_user("alice")

        after = {k async for k in client.scan_iter(match=f"{prefix}*")}
        assert not after & alice_keys
        assert not any("alice" in k for k in after)
        assert receipt.counts["cache_keys"] >= 1
        # Bob's entries are untouched.
        assert {k for k in before if "cache" in k and k not in alice_keys} <= after
        assert await rows_mentioning(vault.store, "alice") == {}
    finally:
        await client.aclose()


async def load_chats(vault: Any, stop: asyncio.Event, done: asyncio.Queue[int]) -> None:
    """Chat turns one after another until told to stop (the write load of a busy server)."""
    n = 0
    while not stop.is_set():
        turn = await vault.chat(f"load-{n % 3}", message={**USER_MESSAGE, "id": f"m{n}"}, user_id="loader")
        await vault.wait(turn.generation.id, user_id="loader")
        await vault.store_file(f"file {n}".encode(), media_type="text/plain", user_id="loader", chat_id=f"load-{n % 3}")
        n += 1
        done.put_nowait(n)


async def test_a_backup_taken_under_chat_load_restores_consistent(
    vault_factory: Any, tmp_path: Path, pg_database: str
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=400)})
    await vault.create_user("loader")
    stop, done = asyncio.Event(), asyncio.Queue[int]()
    load = asyncio.create_task(load_chats(vault, stop, done))
    for _ in range(3):
        await done.get()
    manifest = await vault.backup(tmp_path / "backup")
    for _ in range(2):  # the load goes on after the snapshot
        await done.get()
    stop.set()
    await load

    assert manifest.objects >= 3
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "database.jsonl" if vault.store.dialect == "postgresql" else "database.sqlite3",
        "manifest.json",
        "objects",
        "objects.jsonl",
    ]
    # Restore into both kinds of database; each must be consistent and match the manifest.
    schema = f"r_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_database)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    targets = [
        (f"sqlite:///{tmp_path / 'restored.db'}", None),
        (pg_database, schema),
    ]
    for url, target_schema in targets:
        target = Store(url, schema=target_schema)
        blob_store = BlobStore.local(tmp_path / f"blobs-{target_schema}")
        try:
            report = await restore(tmp_path / "backup", target, blobs=blob_store)
            assert report.verify.ok, report.verify.problems
            assert report.objects == manifest.objects
            assert report.verify.checked["blob_objects"] == manifest.objects
            for name, n in manifest.counts.items():
                assert report.counts[name] == n, name
            # Restoring twice into the same database is refused: it is no longer empty.
            with pytest.raises(Conflict, match="not empty"):
                await restore(tmp_path / "backup", target, blobs=blob_store)
        finally:
            await target.aclose()


async def test_a_backup_needs_a_new_directory_and_a_damaged_object_is_refused_on_restore(
    vault: Any, tmp_path: Path
) -> None:
    await fill(vault, "alice", chats_n=1)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(InvalidRequest, match="already exists"):
        await vault.backup(tmp_path / "taken")
    manifest = await vault.backup(tmp_path / "backup")
    damaged = next((tmp_path / "backup" / "objects").rglob("*"))
    while damaged.is_dir():
        damaged = next(damaged.iterdir())
    damaged.write_bytes(b"tampered")
    target = Store(f"sqlite:///{tmp_path / 'restored.db'}")
    try:
        with pytest.raises(InvalidRequest, match="does not match its hash"):
            await restore(tmp_path / "backup", target, blobs=BlobStore.memory())
    finally:
        await target.aclose()
    assert manifest.counts["chats"] == 2


async def test_a_started_vault_applies_retention_in_the_background(vault_factory: Any, tmp_path: Path) -> None:
    first = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})
    await fill(first, "alice", chats_n=0)
    async with first.store.write() as conn:
        await conn.execute(update(generations).values(created_at=datetime.now(UTC) - timedelta(days=3)))
    server = await vault_factory(
        settings_overrides={"retention_days_text": 2, "retention_interval_seconds": 0.05},
        providers={"offline": tm.TestProvider(tokens_per_second=0)},
    )
    for _ in range(400):  # the task runs at start, then every interval
        async with server.store.read() as conn:
            left = (await conn.execute(select(func.count()).select_from(generations))).scalar()
        if left == 0:
            break
        await asyncio.sleep(0.05)
    assert left == 0
    # A vault made for one-off work does not run it.
    assert (await vault_factory(settings_overrides={"retention_days_text": 2}, run_retention=False))._retention is None


async def test_an_account_larger_than_one_batch_round_trips(
    vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two whole batches and a part of one, for the export's reads and the import's writes: at a
    # batch of 50 rather than 500, 120 messages (it was 1,200) are what crosses the same edges.
    monkeypatch.setattr(archive_module, "BATCH", 50)
    messages = [
        {"id": f"m{i:04}", "role": "user", "parts": [{"type": "text", "text": f"message {i}"}]} for i in range(120)
    ]
    await vault.import_chat("big", messages, user_id="carol")
    progress: list[int] = []
    archive = b"".join(
        [line async for line in vault.export(user_id="carol", progress=lambda _t, n: progress.append(n))]
    )
    assert sum(progress) == 1 + 1 + 120 + 120  # user, chat, messages, parts
    assert progress.count(50) == 4  # read in whole batches (two of messages, two of parts)
    other = Settings(data_dir=tmp_path / "other", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    async with Vault(other) as target:
        await target.import_archive(archive.splitlines(keepends=True))
        assert b"".join([line async for line in target.export(user_id="carol")]) == archive


async def test_erasing_the_local_user_leaves_the_embedded_mode_working(vault: Any) -> None:
    record = await vault.generate("mine")
    await vault.wait(record.id)
    receipt = await vault.erase_user("local")
    assert receipt.counts["generations"] == 1
    page = await vault.list_generations()
    assert page.items == []
    again = await vault.generate("a fresh start")
    assert (await vault.wait(again.id)).status == "complete"


async def test_a_restore_marks_generations_the_backup_caught_running_interrupted(vault: Any, tmp_path: Path) -> None:
    await fill(vault, "alice", chats_n=1)
    async with vault.store.write() as conn:
        await conn.execute(
            update(generations)
            .where(generations.c.kind == "text")
            .values(
                status="streaming", lease_owner="elsewhere:1:x", lease_expires_at=datetime.now(UTC) + timedelta(hours=1)
            )
        )
    await vault.backup(tmp_path / "backup")
    target = Store(f"sqlite:///{tmp_path / 'restored.db'}")
    try:
        report = await restore(tmp_path / "backup", target, blobs=BlobStore.memory())
        assert report.interrupted == 1
        assert report.verify.ok, report.verify.problems
        async with target.read() as conn:
            statuses = (await conn.execute(select(generations.c.status).where(generations.c.kind == "text"))).scalars()
            assert list(statuses) == ["interrupted"]
    finally:
        await target.aclose()


async def test_every_table_a_user_is_erased_and_exported_from_is_reached_through_an_index(vault: Any) -> None:
    """No by-user statement of erasure or a personal archive reads a whole table: each table's
    `owned_by` condition has an index to go by (its own `user_id`'s, or its parent's and the
    column that points there, for the tables whose `user_id` keeps no index: revision 0032)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from genvault.ops.erasure import user_tables
    from genvault.store.schema import owned_by

    store = vault.store
    dialect = postgresql.dialect() if store.dialect == "postgresql" else sqlite.dialect()
    scans = {}
    async with store.read() as conn:
        if store.dialect == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")  # a near-empty table: else a scan
        for table in user_tables():
            query = select(table).where(owned_by(table, "alice"))
            sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            plan = "\n".join(str(row[-1]) for row in (await conn.exec_driver_sql(explain + sql)).all())
            # PostgreSQL: a sequential scan even with them turned off means no index applies;
            # SQLite: `SCAN <table>` is a full scan (`SEARCH` goes by an index).
            if f"Seq Scan on {table.name}" in plan or f"SCAN {table.name}" in plan.replace("SEARCH", ""):
                scans[table.name] = plan
        if store.dialect == "postgresql":
            await conn.exec_driver_sql("RESET enable_seqscan")
    assert scans == {}
