"""The CLI as a person uses it every day: whole ids at any width, prompts from a pipe, users made
on the fly, `models`, an interactive `chat` that is stored like any chat, and a fast, grouped
`--help`. In-process with Typer's runner (one subprocess: the import check)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from genvault.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    monkeypatch.setenv("COLUMNS", "80")
    return CliRunner()


def ids_of(cli: CliRunner) -> list[str]:
    listed = cli.invoke(app, ["logs", "--json"])
    return [json.loads(line)["id"] for line in listed.stdout.splitlines()]


@pytest.mark.parametrize("columns", ["60", "80", "110"])
def test_logs_never_crop_an_id_or_a_status(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    cli.invoke(app, ["generate", "a prompt long enough to be cut somewhere in a narrow table, surely"])
    cli.invoke(app, ["generate", "second", "--max-tokens", "3"])
    monkeypatch.setenv("COLUMNS", columns)
    table = cli.invoke(app, ["logs"])
    assert table.exit_code == 0, table.output
    for generation_id in ids_of(cli):
        assert re.search(rf"(^|\s){generation_id}(\s|$)", table.stdout, re.MULTILINE), table.stdout
    assert table.stdout.count("complete") == 2  # never `compl…`
    assert all(len(line) <= int(columns) for line in table.stdout.splitlines())
    if columns == "80":
        assert "unknown" in table.stdout  # the cost column stays
        assert "second" in table.stdout  # and the prompt still fits


def test_usage_by_day_shows_whole_dates(cli: CliRunner) -> None:
    cli.invoke(app, ["generate", "hello"])
    table = cli.invoke(app, ["usage", "--by", "day"])
    assert re.search(r"\b\d{4}-\d{2}-\d{2}\b", table.stdout), table.stdout
    assert "…" not in table.stdout


def test_the_summary_wraps_between_its_pieces_never_after_a_dot(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    result = cli.invoke(app, ["generate", "hello"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    summary = [line for line in lines if "tokens" in line or "/generate/" in line]
    assert summary, result.stderr
    assert not any(line.rstrip().endswith("·") for line in lines)
    assert any(re.fullmatch(r"/generate/gen_\w+", line.strip()) for line in lines)  # the URL whole


def test_show_prints_the_record_once(cli: CliRunner) -> None:
    cli.invoke(app, ["generate", "hello"])
    [generation_id] = ids_of(cli)
    shown = cli.invoke(app, ["show", generation_id])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count(f"/generate/{generation_id}") == 1
    assert shown.stdout.count("cost unknown") == 1


def test_the_prompt_comes_from_a_pipe_or_dash(cli: CliRunner) -> None:
    piped = cli.invoke(app, ["generate", "--json"], input="a piped prompt\n")
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["request"]["prompt"] == "a piped prompt"
    dashed = cli.invoke(app, ["generate", "-", "--json"], input="from a dash")
    assert json.loads(dashed.stdout)["request"]["prompt"] == "from a dash"
    plain = cli.invoke(app, ["generate", "an argument", "--json"], input="ignored")
    assert json.loads(plain.stdout)["request"]["prompt"] == "an argument"


def test_user_is_created_under_local_auth(cli: CliRunner) -> None:
    result = cli.invoke(app, ["generate", "hello", "--user", "alice", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["user_id"] == "alice"
    assert "alice" in cli.invoke(app, ["users", "list"]).stdout
    again = cli.invoke(app, ["generate", "hello again", "--user", "alice", "--json"])
    assert again.exit_code == 0, again.output


def test_user_under_api_key_auth_must_exist_and_the_error_says_how(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENVAULT_AUTH", "api_key")
    missing = cli.invoke(app, ["generate", "hello", "--user", "bob"])
    assert missing.exit_code == 2
    assert "genvault users add bob" in missing.stderr
    assert cli.invoke(app, ["users", "add", "bob"]).exit_code == 0
    assert cli.invoke(app, ["generate", "hello", "--user", "bob"]).exit_code == 0


def test_models_lists_configured_providers_with_prices(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = cli.invoke(app, ["models", "--json"])
    providers = {p["name"]: p for p in map(json.loads, plain.stdout.splitlines())}
    assert providers["offline"]["configured"] is True
    assert [m["name"] for m in providers["offline"]["models"]] == [
        "offline/test-model",
        "offline/test-image",
        "offline/test-embedding",
    ]
    assert providers["openai"]["configured"] is False
    assert providers["openai"]["models"] == []
    assert providers["openai"]["how"] == "set OPENAI_API_KEY"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GENVAULT_PRICE_OVERRIDES", '{"offline/test-model": {"input_mtok": "1", "output_mtok": "2"}}')
    priced = cli.invoke(app, ["models", "--json"])
    providers = {p["name"]: p for p in map(json.loads, priced.stdout.splitlines())}
    gpt = {m["name"]: m for m in providers["openai"]["models"]}["openai/gpt-4o-mini"]
    assert (gpt["input_mtok"], gpt["output_mtok"], gpt["price_source"]) == ("0.15", "0.6", "genai-prices")
    offline = providers["offline"]["models"][0]
    assert (offline["input_mtok"], offline["price_source"]) == ("1", "override")
    table = cli.invoke(app, ["models", "gpt-4o-mini"])
    assert "openai/gpt-4o-mini " in table.stdout
    assert "$0.15" in table.stdout


def test_chat_is_interactive_stored_and_continued(cli: CliRunner, tmp_path: Path) -> None:
    first = cli.invoke(app, ["chat"], input="Hello there\nTell me more\n/exit\n")
    assert first.exit_code == 0, first.output
    assert first.stdout.count("offline test model") == 2  # two replies streamed
    [chat_id] = re.findall(r"genvault chat show (\S+)", first.stderr)

    more = cli.invoke(app, ["chat", "-c", chat_id], input="One more thing\n")  # ends at end of input
    assert more.exit_code == 0, more.output
    assert "4 messages" in more.stderr

    shown = cli.invoke(app, ["chat", "export", chat_id])
    messages = json.loads(shown.stdout)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["parts"][-1]["text"] for m in messages[::2]] == ["Hello there", "Tell me more", "One more thing"]
    missing = cli.invoke(app, ["chat", "-c", "chat_nope"], input="hi\n")
    assert missing.exit_code == 2
    assert "chat_nope" in missing.stderr

    # The server shows it like any chat.
    async def page() -> str:
        from genvault.server import create_app
        from genvault.settings import Settings
        from genvault.vault import Vault

        async with Vault(Settings(data_dir=tmp_path)) as vault:
            transport = httpx.ASGITransport(app=create_app(vault=vault))
            async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
                response = await http.get(f"/chat/{chat_id}")
                assert response.status_code == 200
                return response.text

    assert "One more thing" in asyncio.run(page())


def test_help_is_grouped_unwrapped_and_plain(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    top = cli.invoke(app, ["--help"])
    assert top.exit_code == 0
    for panel in ("Generate", "Read", "Your data", "Operate", "Run the server"):
        assert f"─ {panel} ─" in top.stdout
    assert "<bool>" not in top.stdout
    # A docstring paragraph reads as one line on a wide terminal (no hard wraps mid-sentence).
    assert "or the whole database (--all). Read from one consistent snapshot" in top.stdout
    for command in ("generate", "erase-user", "chat", "models"):
        page = cli.invoke(app, [command, "--help"]).stdout
        assert "<bool>" not in page
        assert not re.search(r"\{\w+\}", page), page
    assert "genvault erase-user [OPTIONS] USER_ID" in cli.invoke(app, ["erase-user", "--help"]).stdout


def test_help_imports_none_of_the_engine() -> None:
    """What makes `genvault --help` fast: the CLI's import loads Typer and Rich, not Pydantic,
    SQLAlchemy or the engine (those load when a command runs)."""
    code = (
        "import sys, genvault.cli; heavy = [m for m in ('pydantic', 'sqlalchemy', 'genvault.vault', "
        "'genvault.engine', 'genai_prices', 'httpx') if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
