"""`genvault limits …` and `genvault keys create --expires --models`, in-process on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genvault.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENVAULT_TEST_MODEL_TPS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_limits_set_then_show_a_user(cli: CliRunner) -> None:
    run(cli, "users", "add", "alice")
    out = run(cli, "limits", "set", "alice", "--monthly-usd", "20", "--rpm", "60")
    assert "monthly_usd 20" in out
    assert "rpm 60" in out
    run(cli, "limits", "set", "alice", "--concurrent", "2")  # the others stay
    status = json.loads(run(cli, "limits", "show", "alice", "--json"))
    assert status["own"] == {
        "daily_usd": None,
        "monthly_usd": "20",
        "total_usd": None,
        "rpm": 60,
        "tpm": None,
        "concurrent": 2,
    }
    table = run(cli, "limits", "show", "alice")
    assert "monthly_usd" in table
    assert "$20" in table
    assert "$0" in table
    everything = run(cli, "limits", "show")
    assert "user:alice" in everything
    run(cli, "limits", "set", "alice", "--remove", "rpm")
    assert json.loads(run(cli, "limits", "show", "alice", "--json"))["own"]["rpm"] is None


def test_limits_set_needs_one_subject_and_sane_values(cli: CliRunner) -> None:
    assert "exactly one" in run(cli, "limits", "set", "--rpm", "1", code=2)
    assert "no user" in run(cli, "limits", "set", "nobody", "--rpm", "1", code=2)
    assert "monthly_usd" in run(cli, "limits", "set", "--default", "--monthly-usd", "-1", code=2)
    run(cli, "limits", "set", "--default", "--daily-usd", "5")
    assert "default" in run(cli, "limits", "show")


def test_keys_create_with_expiry_and_models(cli: CliRunner) -> None:
    run(cli, "users", "add", "alice")
    out = run(cli, "keys", "create", "alice", "--expires", "30d", "--models", "openai/gpt-4o-mini")
    assert "only openai/gpt-4o-mini" in out
    assert "expires" in out
    listing = run(cli, "keys", "list")
    assert "openai/gpt" in listing  # (the cell may be cut to the terminal width)
    assert "bad" in run(cli, "keys", "create", "alice", "--models", "bad", code=2)
    assert "--expires" in run(cli, "keys", "create", "alice", "--expires", "soon", code=2)
    key_id = out.split()[1]
    assert "concurrent 1" in run(cli, "limits", "set", "--key", key_id, "--concurrent", "1")
