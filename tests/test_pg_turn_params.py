"""The PostgreSQL turn statements' parameters (`store/openings.py`, `store/finishes.py`): JSON is
bound as text and cast in the statement, so asyncpg encodes it in C rather than through the
Python `json`/`jsonb` encoders SQLAlchemy's dialect sets on every connection, and the opening
binds the turn's instant once. What PostgreSQL stores is the same as before: the JSON's text as
`jsonb` reads it from `json.dumps`'s text (NaN refused, big integers and tiny floats kept), the
timestamps to the microsecond, in UTC."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genvault.store import finishes, openings

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 6, 19, 58, 0, 123457, tzinfo=UTC)
TRICKY = {
    "big": 2**64 - 1,
    "small": -(2**63),
    "f": 1e16,
    "tiny": 5e-324,
    "max": 1.7976931348623157e308,
    "s": '\u2028\x1f/\\"é😀',
    "nested": {"a": [1, 2.5, None, True, {"b": "c"}], "": {}},
}
ASKED = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi é😀"}], "metadata": {"k": 2**63}}
REPLY = {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "hello"}], "metadata": TRICKY}


def _generation(**changes: Any) -> dict[str, Any]:
    return {
        "id": "g1",
        "kind": "chat",
        "user_id": "alice",
        "chat_id": "c1",
        "message_id": "a1",
        "model": "m",
        "provider": "p",
        "request": {"messages": [ASKED], **TRICKY},
        "created_at": NOW,
        "lease_owner": "me",
        "lease_expires_at": NOW + timedelta(seconds=30),
        "reservation": None,  # a budget's hold: SQL NULL (its trigger reads a hold's own shape)
        "tags": {"t": TRICKY},
        "metadata": {"m": [1e-7, 0.1]},
        **changes,
    }


def _parameters(sql: str) -> int:
    return max(int(n) for n in re.findall(r"\$(\d+)", sql))


@pytest.mark.parametrize(
    "sql",
    [
        openings._postgresql_sql(),
        openings._postgresql_sql(narrow=True),
        openings._generation_sql(),
        finishes._postgresql_sql(purging=False),
        finishes._postgresql_sql(purging=True),
        finishes._postgresql_sql(purging=False, narrow=True),
        finishes._postgresql_sql(purging=True, narrow=True),
        finishes._generation_sql(purging=False),
        finishes._generation_sql(purging=True),
    ],
    ids=[
        "opening",
        "opening-narrow",
        "opening-no-chat",
        "finalize",
        "finalize-purging",
        "finalize-narrow",
        "finalize-narrow-purging",
        "finish-no-chat",
        "finish-no-chat-purging",
    ],
)
async def test_the_turn_statements_take_no_json_parameter(pg_connection: Any, sql: str) -> None:
    """A `json`/`jsonb` parameter would go through the connection's Python encoder (SQLAlchemy's
    `_jsonb_encoder`, `str.encode`) on every turn."""
    types = [t.name for t in (await pg_connection.prepare(sql)).get_parameters()]
    assert not {"json", "jsonb"} & set(types), types


def test_the_opening_binds_the_turns_instant_once() -> None:
    params = openings.postgresql_params("c1", "alice", "t", ASKED, _generation(), None)
    assert len(params) == _parameters(openings._postgresql_sql())
    assert [p for p in params if isinstance(p, datetime)] == [NOW, NOW + timedelta(seconds=30)]


async def _old_text(conn: Any, value: Any) -> str:
    """What PostgreSQL stored from `json.dumps`'s text, the way asyncpg bound it as `jsonb`."""
    text: str = await conn.fetchval("SELECT $1::jsonb::text", json.dumps(value))
    return text


async def test_a_turn_stores_the_same_json_and_timestamps_as_before(pg_connection: Any) -> None:
    conn = pg_connection
    await conn.execute("INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'alice', false, now())")
    opening = openings.postgresql_params("c1", "alice", "t", ASKED, _generation(), None)
    assert tuple(await conn.fetchrow(openings._postgresql_sql(), *opening)) == (True, False, None)

    row = await conn.fetchrow(
        "SELECT request::text, reservation::text, tags::text, metadata::text, created_at, lease_expires_at "
        "FROM generations WHERE id = 'g1'"
    )
    request = {"messages": [ASKED], **TRICKY, "messages_before": 1}
    generation = _generation()
    assert row["request"] == await _old_text(conn, request)
    for name in ("tags", "metadata"):
        assert row[name] == await _old_text(conn, generation[name]), name
    assert row["reservation"] is None
    assert (row["created_at"], row["lease_expires_at"]) == (NOW, NOW + timedelta(seconds=30))
    chat = await conn.fetchrow("SELECT tags::text, metadata::text, created_at, updated_at FROM chats WHERE id = 'c1'")
    assert chat["tags"] == await _old_text(conn, generation["tags"])
    assert chat["metadata"] == await _old_text(conn, generation["metadata"])
    assert (chat["created_at"], chat["updated_at"]) == (NOW, NOW)
    asked = await conn.fetchrow("SELECT metadata, created_at FROM messages WHERE id = 'u1'")
    assert (json.loads(asked["metadata"]), asked["created_at"]) == (ASKED["metadata"], NOW)
    assert await conn.fetchval("SELECT text_text FROM parts WHERE message_id = 'u1'") == "hi é😀"

    finished = NOW + timedelta(seconds=1, microseconds=1)
    values = {
        "status": "complete",
        "result_text": "hello",
        "result_message": REPLY,
        "unit_prices": {"input": 1e-7, "output": 2**64 - 1},
        "started_at": NOW,
        "first_token_at": NOW + timedelta(microseconds=999999),
        "finished_at": finished,
    }
    entry = finishes.CacheEntry("k1", "g1", "alice", finished + timedelta(days=1), None)
    params = finishes.postgresql_params("g1", values, "c1", "alice", REPLY, entry)
    assert await conn.fetchval(finishes._postgresql_sql(purging=False), *params) is True
    row = await conn.fetchrow(
        "SELECT result_message::text, unit_prices::text, started_at, first_token_at, finished_at "
        "FROM generations WHERE id = 'g1'"
    )
    assert row["result_message"] == await _old_text(conn, REPLY)
    assert row["unit_prices"] == await _old_text(conn, values["unit_prices"])
    assert tuple(row)[2:] == (NOW, NOW + timedelta(microseconds=999999), finished)
    reply = await conn.fetchrow("SELECT metadata, created_at FROM messages WHERE id = 'a1'")
    assert (json.loads(reply["metadata"]), reply["created_at"]) == (TRICKY, finished)
    assert await conn.fetchval("SELECT text_text FROM parts WHERE message_id = 'a1'") == "hello"


async def test_json_postgresql_refuses_is_still_refused(pg_connection: Any) -> None:
    """NaN (which `_json.dump_jsonb` writes as `json.dumps` does) is no JSON to PostgreSQL: the
    opening fails as it did when bound as `jsonb`, writing nothing."""
    import asyncpg

    conn = pg_connection
    await conn.execute("INSERT INTO users (id, name, is_admin, created_at) VALUES ('alice', 'alice', false, now())")
    opening = openings.postgresql_params("c1", "alice", "t", ASKED, _generation(request={"x": float("nan")}), None)
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await conn.fetchrow(openings._postgresql_sql(), *opening)
    assert await conn.fetchval("SELECT count(*) FROM generations") == 0
