"""Tags and metadata on chats (`genvault.labels`, revision 0011): set when a turn creates the chat
(library, `POST /api/chat` body or headers, `genvault chat --tag/--meta`), replaced later
(`update_chat`, `PATCH /api/chats/{id}`, `genvault chat label`), filtered on (`list_chats(tag=)`,
`?tag=`, `genvault chats --tag`); a turn's generation carries the chat's labels (so usage by tag
covers chat turns); shown on the pages; exported, erased and restored. Bad labels: 400, nothing
written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genvault.errors import InvalidRequest
from genvault.labels import MAX_TAGS
from genvault.providers import testmodel as tm
from genvault.server import create_app


def user(message_id: str, text: str = "hello") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


BAD: list[dict[str, Any]] = [
    {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]},
    {"tags": ["y" * 65]},
    {"tags": ["a\nb"]},
    {"tags": "eval"},
    {"metadata": ["not", "an", "object"]},
    {"metadata": {"big": "z" * 5000}},
]


@pytest.fixture
async def vault(vault_factory: Any) -> Any:
    return await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})


@pytest.fixture
async def client(vault: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(vault=vault)), base_url="http://t"
    ) as http:
        yield http


class TestLibrary:
    async def test_a_new_chat_takes_the_turns_labels_and_its_turns_carry_them(self, vault: Any) -> None:
        first = await vault.chat("c1", message=user("u1"), tags=["support"], metadata={"customer": "acme"})
        chat = await vault.get_chat("c1")
        assert chat.tags == ["support"]
        assert chat.metadata == {"customer": "acme"}
        done = await vault.wait(first.generation.id)
        assert done.tags == ["support"]
        assert done.metadata == {"customer": "acme"}
        # A later turn: the chat's labels, with the turn's own added; the chat keeps its own.
        second = await vault.chat("c1", message=user("u2"), tags=["urgent"], metadata={"ticket": 7})
        done = await vault.wait(second.generation.id)
        assert done.tags == ["support", "urgent"]
        assert done.metadata == {"customer": "acme", "ticket": 7}
        assert (await vault.get_chat("c1")).tags == ["support"]
        third = await vault.chat("c1", message=user("u3"))
        assert (await vault.wait(third.generation.id)).tags == ["support"]

    async def test_the_general_opening_labels_a_new_chat_too(self, vault: Any) -> None:
        # An idempotency key takes the locking path (`prepare_turn`), not the one-step opening.
        turn = await vault.chat("c2", message=user("u1"), tags=["keyed"], idempotency_key="k-1")
        assert (await vault.get_chat("c2")).tags == ["keyed"]
        assert (await vault.wait(turn.generation.id)).tags == ["keyed"]

    async def test_list_filter_update_and_create(self, vault: Any) -> None:
        for chat_id, tags in (("a", ["x"]), ("b", ["x", "y"]), ("c", None)):
            turn = await vault.chat(chat_id, message=user(f"{chat_id}-u"), tags=tags)
            await vault.wait(turn.generation.id)
        assert {c.id for c in (await vault.list_chats(tag="x")).items} == {"a", "b"}
        assert [c.id for c in (await vault.list_chats(tag="y")).items] == ["b"]
        assert (await vault.list_chats(tag="none")).items == []
        updated = await vault.update_chat("c", tags=["y"], metadata={"m": 1})
        assert updated.tags == ["y"]
        assert updated.metadata == {"m": 1}
        assert {c.id for c in (await vault.list_chats(tag="y")).items} == {"b", "c"}
        turn = await vault.chat("c", message=user("c-u2"))
        assert (await vault.wait(turn.generation.id)).tags == ["y"]  # later turns carry the new labels
        kept = await vault.update_chat("c", title="renamed")
        assert kept.tags == ["y"]  # left out: kept
        cleared = await vault.update_chat("c", tags=[])
        assert cleared.tags == []
        assert cleared.metadata == {"m": 1}
        made = await vault.create_chat("d", tags=["made"], metadata={"k": "v"})
        assert made.tags == ["made"]
        assert [c.id for c in (await vault.list_chats(tag="made")).items] == ["d"]
        with pytest.raises(InvalidRequest):
            await vault.list_chats(tag="")

    async def test_bad_labels_are_refused_and_nothing_is_written(self, vault: Any) -> None:
        turn = await vault.chat("kept", message=user("u1"), tags=["ok"])
        await vault.wait(turn.generation.id)
        for labels in BAD:
            with pytest.raises(InvalidRequest):
                await vault.chat("never", message=user("n1"), **labels)
            with pytest.raises(InvalidRequest):
                await vault.chat("never2", message=user("n1"), idempotency_key="k", **labels)
            with pytest.raises(InvalidRequest):
                await vault.update_chat("kept", **labels)
            with pytest.raises(InvalidRequest):
                await vault.create_chat("never3", **labels)
        # A turn whose labels with the chat's are over the limits: refused, the message not kept.
        with pytest.raises(InvalidRequest):
            await vault.chat("kept", message=user("u2"), tags=[f"t{i}" for i in range(MAX_TAGS)])
        assert [c.id for c in (await vault.list_chats()).items] == ["kept"]
        assert (await vault.get_chat("kept")).tags == ["ok"]
        assert len((await vault.chat_messages("kept")).messages) == 2
        assert len((await vault.list_generations()).items) == 1

    async def test_usage_by_tag_counts_chat_turns(self, vault: Any) -> None:
        for chat_id, tags in (("a", ["team-a"]), ("b", ["team-a", "eval"]), ("c", None)):
            turn = await vault.chat(chat_id, message=user(f"{chat_id}-u"), tags=tags)
            await vault.wait(turn.generation.id)
        rows = {row.key: row for row in await vault.usage(group_by="tag")}
        assert set(rows) == {"team-a", "eval"}
        assert rows["team-a"].generations == 2
        assert rows["eval"].generations == 1

    async def test_chat_labels_are_exported_erased_and_restored(self, vault: Any) -> None:
        turn = await vault.chat("kept", message=user("u1"), tags=["kept"], metadata={"z": 1, "a": {"b": "c"}})
        await vault.wait(turn.generation.id)
        archive = b"".join([line async for line in vault.export(user_id="local")])
        chat_rows = [json.loads(line) for line in archive.splitlines() if b'"table":"chats"' in line]
        assert chat_rows[0]["row"]["tags"] == ["kept"]
        assert chat_rows[0]["row"]["metadata"] == {"a": {"b": "c"}, "z": 1}
        await vault.erase_user("local")
        assert (await vault.list_chats(tag="kept")).items == []
        await vault.import_archive(archive.splitlines(keepends=True))
        restored = await vault.get_chat("kept")
        assert restored.tags == ["kept"]
        assert restored.metadata == {"a": {"b": "c"}, "z": 1}
        assert [c.id for c in (await vault.list_chats(tag="kept")).items] == ["kept"]


class TestHttp:
    async def test_post_chat_body_or_headers_label_the_chat_and_patch_replaces(
        self, client: httpx.AsyncClient, vault: Any
    ) -> None:
        body = {
            "id": "c1",
            "messages": [user("u1")],
            "trigger": "submit-message",
            "tags": ["web"],
            "metadata": {"plan": "pro"},
        }
        response = await client.post("/api/chat", json=body)
        assert response.status_code == 200, response.text
        generation = await vault.wait(response.headers["X-Genvault-Generation-Id"])
        assert generation.tags == ["web"]
        chat = (await client.get("/api/chats/c1")).json()["chat"]
        assert chat["tags"] == ["web"]
        assert chat["metadata"] == {"plan": "pro"}

        headers = {"X-Genvault-Tags": "hdr, other", "X-Genvault-Metadata": '{"src": "header"}'}
        body = {"id": "c2", "messages": [user("u1")], "trigger": "submit-message"}
        response = await client.post("/api/chat", json=body, headers=headers)
        assert response.status_code == 200, response.text
        await vault.wait(response.headers["X-Genvault-Generation-Id"])
        listed = (await client.get("/api/chats", params={"tag": "hdr"})).json()
        assert [c["id"] for c in listed["items"]] == ["c2"]
        assert listed["items"][0]["metadata"] == {"src": "header"}

        patched = await client.patch("/api/chats/c2", json={"tags": ["web"], "metadata": {}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["tags"] == ["web"]
        assert patched.json()["metadata"] == {}
        listed = (await client.get("/api/chats", params={"tag": "web"})).json()
        assert {c["id"] for c in listed["items"]} == {"c1", "c2"}
        rows = {r["key"]: r for r in (await client.get("/api/usage", params={"group_by": "tag"})).json()}
        assert rows["web"]["generations"] == 1  # c2's turn ran under its old tags
        assert rows["hdr"]["generations"] == 1

    async def test_bad_labels_are_a_400_that_writes_nothing(self, client: httpx.AsyncClient, vault: Any) -> None:
        response = await client.post(
            "/api/chat", json={"id": "kept", "messages": [user("u1")], "trigger": "submit-message", "tags": ["ok"]}
        )
        await vault.wait(response.headers["X-Genvault-Generation-Id"])
        for labels in BAD:
            body = {"id": "never", "messages": [user("n1")], "trigger": "submit-message", **labels}
            refused = await client.post("/api/chat", json=body)
            assert refused.status_code == 400, (labels, refused.text)
            patched = await client.patch("/api/chats/kept", json=labels)
            assert patched.status_code == 400, (labels, patched.text)
        for bad_header in ({"X-Genvault-Metadata": "[1]"}, {"X-Genvault-Tags": "a,,b"}):
            body = {"id": "never", "messages": [user("n1")], "trigger": "submit-message"}
            assert (await client.post("/api/chat", json=body, headers=bad_header)).status_code == 400
        assert (await client.get("/api/chats/never")).status_code == 404
        assert [c["id"] for c in (await client.get("/api/chats")).json()["items"]] == ["kept"]
        assert (await client.get("/api/chats/kept")).json()["chat"]["tags"] == ["ok"]
        assert (await client.get("/api/chats", params={"tag": ""})).status_code == 400
        assert (await client.patch("/api/chats/missing", json={"tags": []})).status_code == 404
        assert len((await vault.list_generations()).items) == 1

    async def test_the_pages_show_the_labels_to_the_owner(self, client: httpx.AsyncClient, vault: Any) -> None:
        turn = await vault.chat("c1", message=user("u1"), tags=["shown-tag"], metadata={"seen": "yes"})
        await vault.wait(turn.generation.id)
        page = await client.get("/chat/c1")
        assert page.status_code == 200
        assert '<span class="badge tag" data-field="tag">shown-tag</span>' in page.text
        assert "&#34;seen&#34;: &#34;yes&#34;" in page.text or '"seen": "yes"' in page.text
        record = await client.get(f"/generate/{turn.generation.id}")
        assert '<span class="badge tag" data-field="tag">shown-tag</span>' in record.text
        plain = await vault.chat("c2", message=user("u1"))
        await vault.wait(plain.generation.id)
        assert 'data-field="labels"' not in (await client.get("/chat/c2")).text


async def test_a_reader_of_a_shared_chat_is_not_shown_its_labels(vault_factory: Any) -> None:
    from genvault.store.keys import create_key

    vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides={"auth": "api_key"}
    )
    keys = {}
    for name in ("alice", "bob"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    turn = await vault.chat("shared", message=user("u1"), user_id="alice", tags=["internal"], metadata={"k": 1})
    await vault.wait(turn.generation.id, user_id="alice")
    await vault.update_chat("shared", user_id="alice", visibility="link")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for who, tags in (("alice", ["internal"]), ("bob", [])):
            got = await http.get("/api/chats/shared", headers={"Authorization": f"Bearer {keys[who]}"})
            assert got.status_code == 200
            assert got.json()["chat"]["tags"] == tags
        page = await http.get("/chat/shared", headers={"Authorization": f"Bearer {keys['bob']}"})
        assert page.status_code == 200
        assert "internal" not in page.text


def test_cli_chat_tags_list_and_relabel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from genvault.cli import app

    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    cli = CliRunner()
    made = cli.invoke(app, ["chat", "--tag", "cli", "--meta", "run=7"], input="Hello there\n/exit\n")
    assert made.exit_code == 0, made.output
    other = cli.invoke(app, ["chat"], input="Untagged\n/exit\n")
    assert other.exit_code == 0, other.output
    listed = cli.invoke(app, ["chats", "--tag", "cli", "--json"])
    assert listed.exit_code == 0, listed.output
    (chat,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert chat["tags"] == ["cli"]
    assert chat["metadata"] == {"run": 7}
    table = cli.invoke(app, ["chats"], env={"COLUMNS": "160"})
    assert "tags" in table.stdout
    assert "cli" in table.stdout

    relabelled = cli.invoke(app, ["chat", "label", chat["id"], "--tag", "done", "--meta", "k=v", "--json"])
    assert relabelled.exit_code == 0, relabelled.output
    assert json.loads(relabelled.stdout)["tags"] == ["done"]
    assert json.loads(relabelled.stdout)["metadata"] == {"k": "v"}
    assert cli.invoke(app, ["chats", "--tag", "cli", "--json"]).stdout.strip() == ""
    cleared = cli.invoke(app, ["chat", "label", chat["id"], "--clear-tags", "--json"])
    assert json.loads(cleared.stdout)["tags"] == []

    assert cli.invoke(app, ["chat", "label", chat["id"], "--tag", "y" * 65]).exit_code == 2
    assert cli.invoke(app, ["chat", "--meta", "novalue"], input="never\n").exit_code == 2
    assert cli.invoke(app, ["chat", "--tag", "y" * 65], input="never\n").exit_code == 2
    assert len(cli.invoke(app, ["chats", "--json"]).stdout.splitlines()) == 2  # nothing written
