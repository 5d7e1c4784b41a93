"""`bench.floor`'s raw relay (`bench._server --mode raw`): the least a durable turn writes, by
hand on asyncpg. Each kind of turn it runs stores the rows it claims to, with the text the client
was streamed, or its figures would flatter the floor."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from bench import _proc

pytestmark = pytest.mark.slow


def _turn(base: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = {
        "id": f"chat_{uuid.uuid4().hex}",
        "messages": [{"id": f"msg_{uuid.uuid4().hex}", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    }
    with httpx.stream("POST", f"{base}/api/chat", json=body, timeout=30) as response:
        response.raise_for_status()
        lines = [line for line in response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
    return body, [json.loads(line.removeprefix("data: ")) for line in lines]


def _streamed(chunks: list[dict[str, Any]]) -> str:
    assert chunks[0]["type"] == "start"
    assert chunks[-1]["type"] == "finish"
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def _raw_server(url: str, rows: str) -> Any:
    argv = ["bench._server", "--mode", "raw", "--rows", rows, "--db", url, "--tokens", "5", "--tps", "0"]
    return _proc.server(argv, quiet=True)


@pytest.mark.parametrize("rows", ["one", "turn"])
def test_on_sqlite_the_raw_relay_stores_the_streamed_reply(tmp_path: Path, rows: str) -> None:
    path = tmp_path / "raw.db"
    with _raw_server(f"sqlite:///{path}", rows) as (base, _):
        body, chunks = _turn(base)
    streamed = _streamed(chunks)
    with sqlite3.connect(path) as db:
        if rows == "one":
            row = db.execute("SELECT status, reply, prompt FROM raw_turns WHERE chat_id = ?", (body["id"],)).fetchone()
            assert row == ("complete", streamed, "hi")
        else:
            assert db.execute("SELECT status, result_text FROM raw_generations").fetchall() == [("complete", streamed)]
            texts = db.execute(
                "SELECT m.role, p.text_text FROM raw_messages m JOIN raw_parts p "
                "ON p.chat_id = m.chat_id AND p.message_id = m.id ORDER BY m.seq"
            ).fetchall()
            assert texts == [("user", "hi"), ("assistant", streamed)]
            assert db.execute("SELECT last_seq, active_generation_id FROM raw_chats").fetchall() == [(2, None)]


@pytest.mark.postgres
@pytest.mark.parametrize("rows", ["one", "turn"])
async def test_on_postgresql_the_raw_relay_stores_the_streamed_reply(pg_database: str, rows: str) -> None:
    with _raw_server(pg_database, rows) as (base, _):
        body, chunks = _turn(base)
    streamed = _streamed(chunks)
    conn = await asyncpg.connect(pg_database)
    try:
        if rows == "one":
            row = await conn.fetchrow("SELECT status, reply, prompt FROM raw_turns WHERE chat_id = $1", body["id"])
            assert (row["status"], row["reply"], row["prompt"]) == ("complete", streamed, "hi")
        else:
            generation = await conn.fetchrow("SELECT * FROM raw_generations WHERE chat_id = $1", body["id"])
            assert (generation["status"], generation["result_text"]) == ("complete", streamed)
            texts = await conn.fetch(
                "SELECT m.role, p.text_text FROM raw_messages m JOIN raw_parts p "
                "ON p.chat_id = m.chat_id AND p.message_id = m.id WHERE m.chat_id = $1 ORDER BY m.seq",
                body["id"],
            )
            assert [tuple(t) for t in texts] == [("user", "hi"), ("assistant", streamed)]
            chat = await conn.fetchrow("SELECT last_seq, active_generation_id FROM raw_chats WHERE id = $1", body["id"])
            assert tuple(chat) == (2, None)
    finally:
        await conn.close()
