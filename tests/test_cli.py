"""The command line, run in-process with Typer's runner against a temporary SQLite database."""

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
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal, so tables show whole cells
    return CliRunner()


def test_generate_streams_the_reply_and_prints_id_usage_and_url(cli: CliRunner) -> None:
    result = cli.invoke(app, ["generate", "Write a haiku about persistence"])
    assert result.exit_code == 0, result.output
    assert "gen_" in result.stderr
    assert "complete" in result.stderr
    assert "/generate/gen_" in result.stderr
    assert "cost unknown" in result.stderr  # the offline model has no price
    assert "offline test model" in result.stdout.lower()


def test_generate_json_prints_the_final_record(cli: CliRunner) -> None:
    result = cli.invoke(app, ["generate", "hello", "--json", "--max-tokens", "5"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "complete"
    assert record["finish_reason"] == "length"
    assert record["usage"]["output_tokens"] == 5
    assert record["request"] == {"prompt": "hello", "params": {"max_tokens": 5}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", ""], "prompt is empty"),
        (["generate", "x", "-m", "gpt-4o"], "provider/model"),
        (["generate", "x", "-m", "openai/gpt-4o-mini"], "OPENAI_API_KEY"),
        (["generate", "x", "--temperature", "9"], "temperature"),
        (["logs", "-n", "-3"], "limit"),
        (["logs", "--since", "yesterday-ish"], "--since"),
        (["show", "gen_nope"], "no generation"),
    ],
)
def test_bad_input_prints_one_clear_line_and_exits_2(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_logs_show_and_usage_read_back_what_generate_wrote(cli: CliRunner) -> None:
    for prompt in ("first prompt", "second prompt"):
        assert cli.invoke(app, ["generate", prompt]).exit_code == 0
    listed = cli.invoke(app, ["logs", "--json"])
    assert listed.exit_code == 0, listed.output
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["request"]["prompt"] for r in records] == ["second prompt", "first prompt"]

    table = cli.invoke(app, ["logs", "--since", "1h", "-m", "offline/test-model"])
    assert "second prompt" in table.stdout
    assert "first prompt" in table.stdout

    shown = cli.invoke(app, ["show", records[0]["id"]])
    assert shown.exit_code == 0, shown.output
    assert "second prompt" in shown.stdout
    assert records[0]["id"] in shown.stdout

    usage = cli.invoke(app, ["usage", "--json"])
    rows = json.loads(usage.stdout)
    assert rows[0]["key"] == "offline/test-model"
    assert rows[0]["generations"] == 2
    by_day = cli.invoke(app, ["usage", "--by", "day"])
    assert by_day.exit_code == 0
    assert "total" in by_day.stdout


def test_db_upgrade_creates_the_schema_and_is_idempotent(cli: CliRunner, tmp_path: Path) -> None:
    for _ in range(2):
        result = cli.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "genvault.db").exists()


def test_image_prints_the_permanent_url_and_saves_the_png(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    result = cli.invoke(app, ["image", "a quiet harbour", "--size", "24x24", "-n", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    urls = result.stdout.split()
    assert len(urls) == 2
    assert all(url.startswith("/files/file_") for url in urls)
    assert "complete" in result.stderr
    assert "/image/gen_" in result.stderr
    saved = sorted(out.iterdir())
    assert len(saved) == 2
    assert all(p.suffix == ".png" and p.read_bytes().startswith(b"\x89PNG") for p in saved)


def test_image_json_and_bad_input(cli: CliRunner) -> None:
    result = cli.invoke(app, ["image", "a fox", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["kind"] == "image"
    assert record["status"] == "complete"
    assert len(record["image_urls"]) == 1
    bad = cli.invoke(app, ["image", "a fox", "-n", "0"])
    assert bad.exit_code == 2
    assert "1 to 10" in bad.stderr


def test_files_add_show_and_get_round_trip(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "note.txt"
    source.write_bytes("héllo".encode())
    added = cli.invoke(app, ["files", "add", str(source)])
    assert added.exit_code == 0, added.output
    url = added.stdout.strip()
    assert url.startswith("/files/file_")
    file_id = url.rsplit("/", 1)[1]
    shown = cli.invoke(app, ["files", "show", file_id])
    assert json.loads(shown.stdout)["media_type"] == "text/plain"
    assert json.loads(shown.stdout)["filename"] == "note.txt"
    copy = tmp_path / "copy.txt"
    assert cli.invoke(app, ["files", "get", file_id, "--out", str(copy)]).exit_code == 0
    assert copy.read_bytes() == source.read_bytes()
    stranger = cli.invoke(app, ["files", "show", file_id, "--user", "bob"])
    assert stranger.exit_code == 2
    assert "no file" in stranger.stderr


def test_files_add_refuses_a_disallowed_type(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "tool.exe"
    source.write_bytes(b"MZ")
    result = cli.invoke(app, ["files", "add", str(source), "--type", "application/x-msdownload"])
    assert result.exit_code == 2
    assert "not accepted" in result.stderr


def test_files_gc_reports_what_it_deleted(cli: CliRunner) -> None:
    result = cli.invoke(app, ["files", "gc", "--older-than-hours", "0"])
    assert result.exit_code == 0, result.output
    assert "deleted 0 unreferenced objects, 0 bytes" in result.stdout


def test_search_finds_messages_and_generations_with_highlights(cli: CliRunner) -> None:
    assert cli.invoke(app, ["generate", "A haiku about pelicans"]).exit_code == 0
    result = cli.invoke(app, ["search", "pelican*"])
    assert result.exit_code == 0, result.output
    assert "generation" in result.stdout
    assert "/generate/gen_" in result.stdout
    assert "pelicans" in result.stdout
    hits = [json.loads(line) for line in cli.invoke(app, ["search", "pelicans", "--json"]).stdout.splitlines()]
    assert [h["kind"] for h in hits] == ["generation"]
    assert hits[0]["snippet"] == "A haiku about <mark>pelicans</mark>"
    assert cli.invoke(app, ["search", "walrus"]).stdout.strip() == "nothing found"


def test_search_refuses_a_malformed_query_with_the_reason(cli: CliRunner) -> None:
    result = cli.invoke(app, ["search", '"unclosed'])
    assert result.exit_code == 2
    assert "unclosed quote" in result.stderr


def test_logs_q_lists_only_the_matching_records(cli: CliRunner) -> None:
    for prompt in ("A haiku about pelicans", "A limerick about walruses"):
        assert cli.invoke(app, ["generate", prompt]).exit_code == 0
    records = [json.loads(line) for line in cli.invoke(app, ["logs", "-q", "walrus*", "--json"]).stdout.splitlines()]
    assert [r["request"]["prompt"] for r in records] == ["A limerick about walruses"]
    assert "no generations match" in cli.invoke(app, ["logs", "-q", "nothing"]).stdout
