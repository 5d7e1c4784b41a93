"""Tags and metadata on generations (`genvault.labels`): set at creation through the library and
`/api/generate`, replaced by PATCH, filtered by `?tag=`; bad labels are a 400 that writes nothing;
export, erasure and restore carry them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.errors import InvalidRequest
from genvault.labels import MAX_METADATA_BYTES, MAX_TAG_CHARS, MAX_TAGS
from genvault.providers import testmodel as tm
from genvault.server import create_app


@pytest.fixture
async def client(vault_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(vault=vault)), base_url="http://t"
    ) as http:
        http.vault = vault  # type: ignore[attr-defined]
        yield http


async def test_the_library_sets_lists_and_updates_labels(vault_factory: Any) -> None:
    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})
    tagged = await vault.generate("a", tags=["eval", " eval ", "nightly"], metadata={"run": 7, "who": {"team": "x"}})
    assert tagged.tags == ["eval", "nightly"]
    plain = await vault.generate("b")
    assert plain.tags == []
    assert plain.metadata is None
    done = await vault.wait(tagged.id)
    assert done.tags == ["eval", "nightly"]  # the final record keeps them
    assert done.metadata == {"run": 7, "who": {"team": "x"}}
    await vault.wait(plain.id)
    assert [r.id for r in (await vault.list_generations(tag="eval")).items] == [tagged.id]
    assert (await vault.list_generations(tag="other")).items == []
    updated = await vault.update_labels(plain.id, tags=["eval"], metadata={"k": "v"})
    assert updated.tags == ["eval"]
    assert updated.metadata == {"k": "v"}
    assert {r.id for r in (await vault.list_generations(tag="eval")).items} == {tagged.id, plain.id}
    cleared = await vault.update_labels(plain.id, tags=[])
    assert cleared.tags == []
    assert cleared.metadata == {"k": "v"}
    bad: list[dict[str, Any]] = [
        {"tags": ["x"] * 0 + [f"t{i}" for i in range(MAX_TAGS + 1)]},
        {"tags": ["y" * (MAX_TAG_CHARS + 1)]},
        {"tags": [""]},
        {"tags": ["a\nb"]},
        {"tags": "eval"},
        {"metadata": ["not", "an", "object"]},
        {"metadata": {"big": "z" * MAX_METADATA_BYTES}},
        {"metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
        {"metadata": {"nul": "a\x00b"}},
    ]
    for labels in bad:
        with pytest.raises(InvalidRequest):
            await vault.generate("never", **labels)
        with pytest.raises(InvalidRequest):
            await vault.update_labels(tagged.id, **labels)
    assert (await vault.get_generation(tagged.id)).tags == ["eval", "nightly"]
    assert len((await vault.list_generations(limit=100)).items) == 2  # nothing written


async def test_http_create_patch_filter_and_refuse(client: httpx.AsyncClient) -> None:
    vault = client.vault  # type: ignore[attr-defined]
    created = await client.post("/api/generate", json={"prompt": "p", "tags": ["a", "b"], "metadata": {"n": 1}})
    assert created.status_code == 201, created.text
    gen_id = created.json()["id"]
    await vault.wait(gen_id)
    record = (await client.get(f"/api/generations/{gen_id}")).json()
    assert record["tags"] == ["a", "b"]
    assert record["metadata"] == {"n": 1}
    other = (await client.post("/api/generate", json={"prompt": "q"})).json()["id"]
    await vault.wait(other)
    listed = (await client.get("/api/generations", params={"tag": "b"})).json()
    assert [r["id"] for r in listed["items"]] == [gen_id]

    patched = await client.patch(f"/api/generations/{other}", json={"tags": ["b"], "metadata": {"m": [1, 2]}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["b"]
    assert patched.json()["metadata"] == {"m": [1, 2]}
    listed = (await client.get("/api/generations", params={"tag": "b"})).json()
    assert {r["id"] for r in listed["items"]} == {gen_id, other}

    count = len((await client.get("/api/generations")).json()["items"])
    for body in ({"tags": ["x" * 65]}, {"tags": "a"}, {"metadata": "s"}, {"metadata": {"x": "y" * 5000}}):
        refused = await client.post("/api/generate", json={"prompt": "never", **body})
        assert refused.status_code == 400, (body, refused.text)
        assert (await client.patch(f"/api/generations/{gen_id}", json=body)).status_code == 400
    assert len((await client.get("/api/generations")).json()["items"]) == count
    assert (await client.get(f"/api/generations/{gen_id}")).json()["tags"] == ["a", "b"]
    assert (await client.get("/api/generations", params={"tag": ""})).status_code == 400
    assert (await client.patch("/api/generations/gen_missing", json={"tags": []})).status_code == 404


async def test_labels_are_exported_erased_and_restored(vault_factory: Any) -> None:
    vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})
    record = await vault.generate("keep me", tags=["kept"], metadata={"z": 1, "a": {"b": "c"}})
    await vault.wait(record.id)
    archive = b"".join([line async for line in vault.export(user_id=record.user_id)])
    assert b'"tags":["kept"]' in archive
    assert b'"metadata":{"a":{"b":"c"},"z":1}' in archive
    await vault.erase_user(record.user_id)
    assert (await vault.list_generations(tag="kept")).items == []
    await vault.import_archive(archive.splitlines(keepends=True))
    restored = await vault.get_generation(record.id)
    assert restored.tags == ["kept"]
    assert restored.metadata == {"a": {"b": "c"}, "z": 1}
    assert [r.id for r in (await vault.list_generations(tag="kept")).items] == [record.id]


def test_cli_tag_meta_and_logs_tag(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from genvault.cli import app

    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    cli = CliRunner()
    made = cli.invoke(
        app, ["generate", "hi", "--json", "--tag", "eval", "--tag", "cli", "--meta", "run=7", "--meta", "who=ann"]
    )
    assert made.exit_code == 0, made.output
    record = json.loads(made.stdout)
    assert record["tags"] == ["eval", "cli"]
    assert record["metadata"] == {"run": 7, "who": "ann"}
    assert cli.invoke(app, ["generate", "other", "--json"]).exit_code == 0
    listed = cli.invoke(app, ["logs", "--tag", "cli", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [record["id"]]
    bad = cli.invoke(app, ["generate", "x", "--meta", "novalue"])
    assert bad.exit_code == 2
    assert "key=value" in bad.output
    assert cli.invoke(app, ["generate", "x", "--tag", "y" * 65]).exit_code == 2
    assert len(cli.invoke(app, ["logs", "--json"]).stdout.splitlines()) == 2  # nothing written


async def test_usage_by_tag(client: httpx.AsyncClient) -> None:
    vault = client.vault  # type: ignore[attr-defined]
    for n, body in enumerate(({"tags": ["a", "b"]}, {"tags": ["a"]}, {})):
        payload = {"prompt": f"p{n}", "params": {"max_tokens": 2}, **body}
        created = (await client.post("/api/generate", json=payload)).json()
        await vault.wait(created["id"])
    rows = {row["key"]: row for row in (await client.get("/api/usage", params={"group_by": "tag"})).json()}
    assert set(rows) == {"a", "b"}  # the untagged generation is in no tag's row
    assert rows["a"]["generations"] == 2
    assert rows["a"]["output_tokens"] == 4
    assert rows["b"]["generations"] == 1


async def test_the_gateway_takes_labels_from_headers(client: httpx.AsyncClient) -> None:
    vault = client.vault  # type: ignore[attr-defined]
    body = {"model": "offline/test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    headers = {"X-Genvault-Tags": "gw, eval", "X-Genvault-Metadata": '{"trace": "abc", "n": 2}'}
    answered = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert answered.status_code == 200, answered.text
    record = await vault.wait(answered.headers["x-genvault-generation-id"])
    assert record.tags == ["gw", "eval"]
    assert record.metadata == {"trace": "abc", "n": 2}
    count = len((await vault.list_generations(limit=100)).items)
    for bad in ({"X-Genvault-Metadata": "[1]"}, {"X-Genvault-Metadata": "{nope"}, {"X-Genvault-Tags": "a,,b"}):
        refused = await client.post("/v1/chat/completions", json=body, headers=bad)
        assert refused.status_code == 400, (bad, refused.text)
        assert "error" in refused.json()
    assert len((await vault.list_generations(limit=100)).items) == count
