"""`genvault export|import|erase-user|retention run|backup|restore|verify`, in-process with
Typer's runner against temporary SQLite databases and local blob directories."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genvault.cli import app
from genvault.settings import Settings
from genvault.store.audit import user_hash
from genvault.vault import Vault

MESSAGE = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]}


async def _populate(data_dir: Path) -> None:
    async with Vault(Settings(data_dir=data_dir, test_model_tps=0)) as vault:
        for user in ("alice", "bob"):
            await vault.create_user(user)
            turn = await vault.chat(f"{user}-chat", message=MESSAGE, user_id=user)
            await vault.wait(turn.generation.id, user_id=user)
            record = await vault.generate(f"{user} prompt", user_id=user)
            await vault.wait(record.id, user_id=user)
            await vault.store_file(f"{user} file".encode(), media_type="text/plain", user_id=user)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path / "main"))
    monkeypatch.setenv("COLUMNS", "200")
    asyncio.run(_populate(tmp_path / "main"))
    return CliRunner()


def other(tmp_path: Path, name: str) -> list[str]:
    """Global options pointing at another, empty deployment (its database and blob directory)."""
    return ["--data-dir", str(tmp_path / name)]


def test_export_import_export_gives_the_same_bytes_in_another_database(cli: CliRunner, tmp_path: Path) -> None:
    first = tmp_path / "all.jsonl"
    result = cli.invoke(app, ["export", "--all", "--out", str(first)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr
    imported = cli.invoke(app, [*other(tmp_path, "copy"), "import", str(first)])
    assert imported.exit_code == 0, imported.output
    assert "imported the whole database" in imported.stderr
    assert "2 files" in imported.stderr
    second = tmp_path / "again.jsonl.gz"
    again = cli.invoke(app, [*other(tmp_path, "copy"), "export", "--all", "--out", str(second)])
    assert again.exit_code == 0, again.output
    assert gzip.decompress(second.read_bytes()) == first.read_bytes()
    # Compressed output is deterministic too.
    third = tmp_path / "third.jsonl.gz"
    assert cli.invoke(app, [*other(tmp_path, "copy"), "export", "--all", "-o", str(third)]).exit_code == 0
    assert third.read_bytes() == second.read_bytes()
    assert cli.invoke(app, [*other(tmp_path, "copy"), "verify"]).exit_code == 0


def test_a_user_export_to_stdout_holds_only_that_user(cli: CliRunner) -> None:
    result = cli.invoke(app, ["export", "--user", "alice", "--out", "-"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["user_id"] == "alice"
    rows = [r["row"] for r in records if "table" in r]
    assert {r.get("user_id", r.get("id")) for r in rows} == {"alice"}
    assert records[-1]["end"]["objects"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export"], "--user ID"),
        (["export", "--user", "alice", "--all"], "--user ID"),
        (["export", "--user", "ghost", "-o", "-"], "no user 'ghost'"),
        (["import", "missing.jsonl"], "no such file"),
        (["retention", "run"], "no retention is configured"),
        (["restore", "nowhere"], "not a genvault backup"),
    ],
)
def test_bad_input_prints_one_clear_line_and_exits_2(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_importing_a_damaged_archive_writes_nothing(cli: CliRunner, tmp_path: Path) -> None:
    archive = tmp_path / "alice.jsonl"
    assert cli.invoke(app, ["export", "--user", "alice", "-o", str(archive)]).exit_code == 0
    archive.write_bytes(b"".join(archive.read_bytes().splitlines(keepends=True)[:-1]))
    result = cli.invoke(app, [*other(tmp_path, "copy"), "import", str(archive)])
    assert result.exit_code == 2
    assert "cut short" in result.stderr
    empty = cli.invoke(app, [*other(tmp_path, "copy"), "export", "--all", "-o", "-"])
    assert '"table":"chats"' not in empty.stdout


@pytest.mark.long
def test_erase_user_asks_first_then_prints_the_receipt_and_a_repeat_writes_nothing(cli: CliRunner) -> None:
    declined = cli.invoke(app, ["erase-user", "alice"], input="n\n")
    assert declined.exit_code == 1
    assert cli.invoke(app, ["export", "--user", "alice", "-o", "-"]).exit_code == 0  # still there

    erased = cli.invoke(app, ["erase-user", "alice"], input="y\n")
    assert erased.exit_code == 0, erased.output
    assert "audit event aud_" in erased.stdout
    assert "chats" in erased.stdout
    again = cli.invoke(app, ["erase-user", "alice"])  # no question: there is nothing to erase
    assert again.exit_code == 0, again.output
    assert "user alice was erased already" in again.stdout
    assert "nothing to do" in again.stdout
    as_json = json.loads(cli.invoke(app, ["erase-user", "alice", "--json"]).stdout)
    assert as_json["status"] == "already_erased"
    assert as_json["audit_id"].startswith("aud_")
    never = cli.invoke(app, ["erase-user", "nobody-ever", "--yes"])
    assert (never.exit_code, never.stdout.strip()) == (0, "no user nobody-ever: nothing to erase")
    assert cli.invoke(app, ["export", "--user", "alice", "-o", "-"]).exit_code == 2
    bob = cli.invoke(app, ["export", "--user", "bob", "-o", "-"])
    assert '"table":"chats"' in bob.stdout
    # The one erasure is in the audit log (the repeats wrote nothing), found by alice's id, with
    # counts and no content, and naming her by pseudonym only.
    audit = cli.invoke(app, ["audit", "--user", "alice", "--json"])
    events = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [e["action"] for e in events] == ["erase_user"]
    assert events[0]["counts"]["chats"] == 1
    assert events[0]["actor_user_id"] is None
    assert events[0]["actor_user_hash"] is None
    assert {e["subject_user_hash"] for e in events} == {user_hash("alice")}
    assert "hello" not in audit.stdout
    assert "alice" not in audit.stdout
    assert cli.invoke(app, ["audit", "--user", "bob"]).stdout.strip() == "no audit events"
    table = cli.invoke(app, ["audit"])
    assert "erase_user" in table.stdout
    assert "operator" in table.stdout
    assert user_hash("alice")[:19] in table.stdout
    assert "alice" not in table.stdout
    # Nothing in the database holds her id any more.
    whole = cli.invoke(app, ["export", "--all", "-o", "-"])
    assert whole.exit_code == 0
    assert "bob" in whole.stdout
    assert "alice" not in whole.stdout


def test_retention_run_deletes_old_text_generations(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite3.connect(tmp_path / "main" / "genvault.db")
    db.execute("UPDATE generations SET created_at = '2020-01-01 00:00:00.000000' WHERE kind = 'text'")
    db.commit()
    db.close()
    monkeypatch.setenv("GENVAULT_RETENTION_DAYS_TEXT", "30")
    result = cli.invoke(app, ["retention", "run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"] == {"generations": 2, "cache_entries": 2}  # the cache goes with its records
    assert list(report["cutoffs"]) == ["text", "embedding"]  # embeddings keep as long as text


def test_backup_restore_and_verify_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    backup = cli.invoke(app, ["backup", str(tmp_path / "bk")])
    assert backup.exit_code == 0, backup.output
    assert "2 files" in backup.stderr
    restored = cli.invoke(app, [*other(tmp_path, "restored"), "restore", str(tmp_path / "bk")])
    assert restored.exit_code == 0, restored.output
    assert "verified" in restored.stdout
    again = cli.invoke(app, [*other(tmp_path, "restored"), "restore", str(tmp_path / "bk")])
    assert again.exit_code == 2
    assert "not empty" in again.stderr
    original = cli.invoke(app, ["export", "--all", "-o", "-"]).stdout
    copy = cli.invoke(app, [*other(tmp_path, "restored"), "export", "--all", "-o", "-"]).stdout
    assert copy == original


def test_verify_reports_a_missing_file_and_a_stuck_record_and_exits_1(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(app, ["verify"]).exit_code == 0
    for blob in (tmp_path / "main" / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
            break
    db = sqlite3.connect(tmp_path / "main" / "genvault.db")
    db.execute("UPDATE generations SET status = 'streaming', lease_expires_at = '2020-01-01 00:00:00.000000'")
    db.commit()
    db.close()
    result = cli.invoke(app, ["verify", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("missing from the blob store" in p for p in report["problems"])
    assert sum("stuck streaming" in p for p in report["problems"]) == 4
