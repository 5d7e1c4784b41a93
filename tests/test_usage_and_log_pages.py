"""Usage per user and per API key, as CSV (the API, the page's download, the CLI) and on the
/usage page; the log browser /generations with its filters and cursor pages. In process over
HTTP; the browser side is in tests/test_browser_auth.py."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from genvault.cli import app as cli_app
from genvault.providers import testmodel as tm
from genvault.records import UsageRow
from genvault.server import create_app
from genvault.store.keys import create_key
from genvault.usage_csv import COLUMNS, usage_csv
from genvault.vault import Vault

BASE = "http://genvault.test"


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    provider = tm.TestProvider(tokens_per_second=0)
    vault: Vault = await vault_factory(providers={"offline": provider}, settings_overrides={"auth": "api_key"})
    keys: dict[str, tuple[str, str]] = {}
    for name, admin in (("alice", False), ("bob", False), ("carol", True)):
        await vault.create_user(name, is_admin=admin)
        async with vault.store.write() as conn:
            keys[name] = await create_key(conn, name, f"{name}'s key")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:

        async def make(who: str, prompt: str, output: int) -> str:
            provider.enqueue(tm.text(f"answer to {prompt}"), tm.usage(input=10, output=output))
            made = await http.post("/api/generate", json={"prompt": prompt}, headers=bearer(keys, who))
            assert made.status_code == 201, made.text
            record = await vault.wait(made.json()["id"], user_id=who)
            assert record.status == "complete"
            return record.id

        ids = {"a1": await make("alice", "first of alice", 5), "a2": await make("alice", "second of alice", 7)}
        ids["b1"] = await make("bob", "only one of bob", 11)
        yield {"http": http, "vault": vault, "keys": keys, "ids": ids, "provider": provider}


def bearer(keys: dict[str, tuple[str, str]], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[who][1]}"}


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_an_admin_gets_usage_per_user_and_per_key_as_csv_with_unpriced_cost_empty(world: dict[str, Any]) -> None:
    http, keys = world["http"], world["keys"]
    by_user = await http.get("/api/usage.csv", params={"group_by": "user"}, headers=bearer(keys, "carol"))
    assert by_user.status_code == 200
    assert by_user.headers["content-type"].startswith("text/csv")
    assert "attachment" in by_user.headers["content-disposition"]
    rows = {row["user"]: row for row in parse(by_user.text)}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"]["generations"] == "2"
    assert rows["alice"]["output_tokens"] == "12"
    assert rows["bob"]["output_tokens"] == "11"
    # The offline model has no price: unknown cost, never 0.
    assert rows["alice"]["cost_usd"] == ""
    assert rows["alice"]["unpriced_generations"] == "2"
    by_key = parse((await http.get("/api/usage.csv?group_by=key", headers=bearer(keys, "carol"))).text)
    assert {row["key"]: row["generations"] for row in by_key} == {keys["alice"][0]: "2", keys["bob"][0]: "1"}
    # The same numbers as the JSON report.
    report = (await http.get("/api/usage?group_by=user", headers=bearer(keys, "carol"))).json()
    assert {r["key"]: r["total_tokens"] for r in report} == {k: int(v["total_tokens"]) for k, v in rows.items()}


async def test_a_user_gets_only_their_own_usage_as_csv(world: dict[str, Any]) -> None:
    http, keys = world["http"], world["keys"]
    rows = parse((await http.get("/api/usage.csv?group_by=user", headers=bearer(keys, "bob"))).text)
    assert [row["user"] for row in rows] == ["bob"]
    assert (await http.get("/api/usage.csv")).status_code == 401
    bad = await http.get("/api/usage.csv?group_by=colour", headers=bearer(keys, "bob"))
    assert bad.status_code == 422  # as every query parameter FastAPI checks


def test_csv_money_is_exact_and_a_formula_looking_key_is_kept_as_text() -> None:
    priced = UsageRow(
        key="=HYPERLINK(1)",
        generations=3,
        input_tokens=1,
        output_tokens=2,
        cached_input_tokens=0,
        reasoning_tokens=0,
        total_tokens=3,
        cost_nano_usd=123,
        unpriced_generations=1,
    )
    [row] = parse(usage_csv([priced], "model"))
    assert row["model"] == "'=HYPERLINK(1)"
    assert row["cost_usd"] == "0.000000123"  # the priced part, exactly; one more is unpriced
    assert row["unpriced_generations"] == "1"
    assert list(row) == ["model", *COLUMNS]


async def test_the_usage_page_shows_an_admin_each_user_and_key_and_downloads_the_same_csv(
    world: dict[str, Any],
) -> None:
    http, keys = world["http"], world["keys"]
    html = (await http.get("/usage", headers=bearer(keys, "carol"))).text
    by_user = html[html.index('id="by-user"') : html.index('id="by-key"')]
    assert 'data-key="alice"' in by_user
    assert 'data-key="bob"' in by_user
    assert "$0.00" not in html
    assert f'data-key="{keys["alice"][0]}"' in html[html.index('id="by-key"') :]
    download = await http.get("/usage?days=30&format=csv&group_by=user", headers=bearer(keys, "carol"))
    assert download.status_code == 200
    api = await http.get("/api/usage.csv?group_by=user", headers=bearer(keys, "carol"))
    assert parse(download.text) == parse(api.text)
    # Someone else sees no per-user table, only their own keys.
    mine = (await http.get("/usage", headers=bearer(keys, "bob"))).text
    assert 'id="by-user"' not in mine
    assert keys["alice"][0] not in mine
    assert (await http.get("/usage?format=pdf", headers=bearer(keys, "bob"))).status_code == 400


def test_the_cli_prints_usage_as_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    cli = CliRunner()
    for prompt in ("one", "two"):
        assert cli.invoke(cli_app, ["generate", prompt]).exit_code == 0
    result = cli.invoke(cli_app, ["usage", "--by", "model", "--csv"])
    assert result.exit_code == 0, result.output
    [row] = parse(result.stdout)
    assert row["model"] == "offline/test-model"
    assert row["generations"] == "2"
    assert row["cost_usd"] == ""  # unpriced: unknown, not 0


async def test_the_log_filters_by_status_kind_model_tag_and_date_and_links_each_row(world: dict[str, Any]) -> None:
    http, keys, ids, vault = world["http"], world["keys"], world["ids"], world["vault"]
    await vault.update_labels(ids["a2"], tags=["eval"], user_id="alice")
    html = (await http.get("/generations", headers=bearer(keys, "alice"))).text
    assert f'href="/generate/{ids["a1"]}"' in html
    assert f'href="/generate/{ids["a2"]}"' in html
    assert ids["b1"] not in html  # bob's record is not alice's to see
    tagged = (await http.get("/generations?tag=eval", headers=bearer(keys, "alice"))).text
    assert ids["a2"] in tagged
    assert ids["a1"] not in tagged
    assert ids["a1"] not in (await http.get("/generations?status=error", headers=bearer(keys, "alice"))).text
    assert ids["a1"] in (await http.get("/generations?kind=text", headers=bearer(keys, "alice"))).text
    assert "No generations match" in (await http.get("/generations?kind=image", headers=bearer(keys, "alice"))).text
    assert ids["a1"] in (await http.get("/generations?model=offline/test-model", headers=bearer(keys, "alice"))).text
    old = await http.get("/generations?since=2001-01-01&until=2001-01-02", headers=bearer(keys, "alice"))
    assert "No generations match" in old.text


async def test_the_log_pages_by_cursor_and_an_admin_sees_everyone(world: dict[str, Any]) -> None:
    http, keys, ids = world["http"], world["keys"], world["ids"]
    import genvault.server.routes.log_page as log_page

    page_size = log_page.LOG_PAGE
    log_page.LOG_PAGE = 2
    try:
        everyone = (await http.get("/generations?user=*", headers=bearer(keys, "carol"))).text
        assert ids["b1"] in everyone
        assert ids["a2"] in everyone
        assert ids["a1"] not in everyone
        older = re.search(r'href="(/generations\?[^"]+)" rel="next"', everyone)
        assert older is not None
        second = (await http.get(older.group(1).replace("&amp;", "&"), headers=bearer(keys, "carol"))).text
        assert ids["a1"] in second
        assert 'rel="next"' not in second
        assert "<th>User</th>" in second
    finally:
        log_page.LOG_PAGE = page_size
    api = await http.get("/api/generations", params={"user": "alice"}, headers=bearer(keys, "carol"))
    assert {g["id"] for g in api.json()["items"]} == {ids["a1"], ids["a2"]}
    refused = await http.get("/generations?user=*", headers=bearer(keys, "bob"))
    assert refused.status_code == 403
    assert "only an admin" in refused.text
    assert (await http.get("/api/generations?user=alice", headers=bearer(keys, "bob"))).status_code == 403


@pytest.mark.parametrize(
    "query", ["status=done", "kind=video", "since=yesterday", "until=2026-13-01", "cursor=not-a-cursor"]
)
async def test_a_bad_log_filter_is_a_400_page_that_says_what_is_wrong(world: dict[str, Any], query: str) -> None:
    response = await world["http"].get(f"/generations?{query}", headers=bearer(world["keys"], "alice"))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert 'class="error"' in response.text


def test_the_cli_lists_and_ends_page_sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from genvault.settings import Settings

    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    cli = CliRunner()
    assert cli.invoke(cli_app, ["users", "add", "dora"]).exit_code == 0
    made = cli.invoke(cli_app, ["keys", "create", "dora"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]

    async def sign_in_twice() -> list[str]:
        async with Vault(Settings(data_dir=tmp_path, auth="api_key")) as vault:
            return [(await vault.sessions.sign_in_with_key(key)).session.id for _ in range(2)]

    first, second = asyncio.run(sign_in_twice())
    listed = cli.invoke(cli_app, ["sessions", "list", "dora"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert first in listed.stdout
    assert second in listed.stdout
    assert cli.invoke(cli_app, ["sessions", "revoke", first]).exit_code == 0
    assert first not in cli.invoke(cli_app, ["sessions", "list"], env={"COLUMNS": "200"}).stdout
    assert first in cli.invoke(cli_app, ["sessions", "list", "--all"], env={"COLUMNS": "200"}).stdout
    ended = cli.invoke(cli_app, ["sessions", "revoke", "--user", "dora"])
    assert "ended 1 session" in ended.stdout
    again = cli.invoke(cli_app, ["sessions", "revoke", first])
    assert again.exit_code == 2  # NotFound: a caller's mistake, one line
    assert "no live session" in again.output
    typed = cli.invoke(cli_app, ["users", "password", "dora"], input="a long password\na long password\n")
    assert typed.exit_code == 0, typed.output
    assert "a long password" not in typed.output

    async def with_password() -> str:
        async with Vault(Settings(data_dir=tmp_path, auth="api_key")) as vault:
            return (await vault.sessions.sign_in_with_password("dora", "a long password")).session.user_id

    assert asyncio.run(with_password()) == "dora"
