"""Chats from the command line: list, show, export, and the AI SDK v4 import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genvault.cli import app

V4_CHAT = {
    "id": "v4chat",
    "title": "Weather",
    "messages": [
        {"id": "m1", "role": "user", "content": "Weather in Paris?", "createdAt": "2025-01-01T10:00:00.000Z"},
        {
            "id": "m2",
            "role": "assistant",
            "content": "",
            "toolInvocations": [
                {"state": "call", "step": 0, "toolCallId": "c1", "toolName": "weather", "args": {"city": "Paris"}}
            ],
        },
        {
            "id": "m3",
            "role": "assistant",
            "content": "It is 21°C.",
            "toolInvocations": [
                {
                    "state": "result",
                    "step": 0,
                    "toolCallId": "c1",
                    "toolName": "weather",
                    "args": {"city": "Paris"},
                    "result": {"tempC": 21},
                }
            ],
        },
    ],
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def write_jsonl(path: Path, *records: object) -> Path:
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in records) + "\n")
    return path


def test_import_v4_converts_merges_and_keeps_ids_then_show_and_export_read_it_back(
    cli: CliRunner, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "v4.jsonl", V4_CHAT)
    result = cli.invoke(app, ["import-v4", str(source)])
    assert result.exit_code == 0, result.output
    assert "chats imported" in result.stdout
    assert "merged into m2" in result.stdout

    exported = cli.invoke(app, ["chat", "export", "v4chat"])
    data = json.loads(exported.stdout)
    assert data["chat"]["title"] == "Weather"
    messages = data["messages"]
    assert [m["id"] for m in messages] == ["m1", "m2"]
    assert messages[0]["metadata"] == {"createdAt": "2025-01-01T10:00:00.000Z"}
    tool = next(p for p in messages[1]["parts"] if p["type"] == "tool-weather")
    assert tool["state"] == "output-available"
    assert tool["output"] == {"tempC": 21}
    assert messages[1]["parts"][-1] == {"type": "text", "text": "It is 21°C."}

    shown = cli.invoke(app, ["chat", "show", "v4chat"])
    assert shown.exit_code == 0
    assert "Weather in Paris?" in shown.stdout
    assert "weather" in shown.stdout
    listed = cli.invoke(app, ["chats", "--json"])
    assert json.loads(listed.stdout.splitlines()[0])["id"] == "v4chat"

    again = cli.invoke(app, ["import-v4", str(source)])
    assert again.exit_code == 0
    assert "messages unchanged" in again.stdout


def test_a_chat_that_fails_to_convert_is_reported_and_nothing_of_it_is_written(cli: CliRunner, tmp_path: Path) -> None:
    broken = {"id": "bad", "messages": [{"id": "x", "content": "no role"}]}
    source = write_jsonl(tmp_path / "v4.jsonl", broken, "{not json", V4_CHAT)
    result = cli.invoke(app, ["import-v4", str(source)])
    assert result.exit_code == 1
    assert "line 1 (chat bad)" in result.stdout
    assert "role" in result.stdout
    assert "line 2" in result.stdout
    listed = cli.invoke(app, ["chats", "--json"])
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ["v4chat"]


def test_dry_run_reports_and_writes_nothing(cli: CliRunner, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "v4.jsonl", V4_CHAT)
    result = cli.invoke(app, ["import-v4", str(source), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout
    assert cli.invoke(app, ["chats", "--json"]).stdout.strip() == ""
    missing = cli.invoke(app, ["chat", "show", "v4chat"])
    assert missing.exit_code == 2
    assert "no chat" in missing.stderr


def test_a_chat_that_fails_to_convert_is_reported_with_all_its_problems(cli: CliRunner, tmp_path: Path) -> None:
    broken = {
        "id": "bad",
        "messages": [
            {"id": "a", "content": "no role"},
            {"id": "b", "role": "user", "content": "fine"},
            {"id": "c", "role": "robot", "content": "x"},
            {"id": "d", "role": "assistant", "content": "", "toolInvocations": [{"state": "call"}]},
        ],
    }
    deep = '{"id": "deep", "messages": ' + "[" * 5000 + "]" * 5000 + "}"
    source = write_jsonl(tmp_path / "v4.jsonl", broken, deep)
    result = cli.invoke(app, ["import-v4", str(source)])
    assert result.exit_code == 1, result.output
    assert "3 problems with the v4 messages" in result.stdout
    for location in ("messages[0].role", "messages[2].role", "messages[3].toolInvocations[0].toolCallId"):
        assert location in result.stdout
    assert "line 2" in result.stdout
    assert "more than 64 deep" in result.stdout
    assert cli.invoke(app, ["chats", "--json"]).stdout.strip() == ""
