"""`genvault webhooks add|list|deliveries|retry|remove`, in-process on SQLite."""

from __future__ import annotations

import json
import sqlite3
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


def test_webhooks_are_added_listed_logged_retried_and_removed(cli: CliRunner, tmp_path: Path) -> None:
    added = json.loads(
        run(cli, "webhooks", "add", "http://127.0.0.1:9/hook", "--event", "generation.completed", "--json")
    )
    assert added["events"] == ["generation.completed"]
    assert added["secret"].startswith("whsec_")
    listed = run(cli, "webhooks", "list")
    assert added["id"] in listed
    assert "generation.completed" in listed
    assert "whsec_" not in listed  # never the secret again
    assert "no deliveries" in run(cli, "webhooks", "deliveries", added["id"])

    # A one-off command writes the event (it does not deliver; the server's processes do).
    run(cli, "generate", "hello hooks")
    [delivery] = json.loads(run(cli, "webhooks", "deliveries", added["id"], "--json"))
    assert (delivery["event"], delivery["status"], delivery["attempts"]) == ("generation.completed", "pending", 0)
    assert "pending already" in run(cli, "webhooks", "retry", str(delivery["id"]), code=2)

    with sqlite3.connect(tmp_path / "genvault.db") as db:  # as if every attempt had failed
        db.execute("UPDATE webhook_deliveries SET status = 'dead', attempts = 10, last_status_code = 500")
    table = run(cli, "webhooks", "deliveries", added["id"], "--status", "dead")
    assert "dead" in table
    assert "500" in table
    assert "pending again" in run(cli, "webhooks", "retry", str(delivery["id"]))
    [again] = json.loads(run(cli, "webhooks", "deliveries", added["id"], "--json"))
    assert (again["status"], again["attempts"]) == ("pending", 0)

    assert "removed" in run(cli, "webhooks", "remove", added["id"])
    assert "no webhooks" in run(cli, "webhooks", "list")
    assert "no webhook" in run(cli, "webhooks", "deliveries", added["id"], code=2)


def test_bad_webhook_arguments_are_one_line_errors(cli: CliRunner) -> None:
    assert "unknown event" in run(cli, "webhooks", "add", "http://h/x", "--event", "generation.exploded", code=2)
    assert "http" in run(cli, "webhooks", "add", "file:///etc/passwd", "--event", "chat.deleted", code=2)
    assert "secret" in run(cli, "webhooks", "add", "http://h/x", "--event", "chat.deleted", "--secret", "x", code=2)
    assert "no webhook" in run(cli, "webhooks", "remove", "wh_missing", code=2)
    assert "no delivery" in run(cli, "webhooks", "retry", "12345", code=2)
    assert "no webhooks" in run(cli, "webhooks", "list")
