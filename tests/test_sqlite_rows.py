"""SQLite: a chat turn's rows written without a parameter per NULL and with timestamps bound as
text (`store/sqlite_rows.py`, used by `store/openings.py` and `store/finishes.py`): the rows
stored are those the statements with every column bound stored before."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect

from genvault.store import finishes
from genvault.store.db import create_engine
from genvault.store.openings import _sqlite_part_rows
from genvault.store.parts import PAGE_PART_COLUMNS, part_record
from genvault.store.schema import generations, metadata
from genvault.store.sqlite_adapter import bind_datetimes_explicitly, bind_none_directly
from genvault.store.sqlite_rows import insert_sql, present, present_in, stamp_text

PARTS: list[dict[str, Any]] = [
    {"type": "step-start"},
    {"type": "text", "text": "hello"},
    {"type": "text", "text": "done", "state": "done", "providerMetadata": {"p": {"x": 1}}},
    {"type": "reasoning", "text": "hmm", "state": "done"},
    {
        "type": "tool-weather",
        "toolCallId": "c1",
        "state": "output-available",
        "input": {"city": "Oslo"},
        "output": {"t": -3.5, "ok": True, "none": None},
        "providerExecuted": False,
    },
    {"type": "tool-weather", "toolCallId": "c2", "state": "output-error", "input": {}, "errorText": "boom"},
    {"type": "file", "mediaType": "image/png", "url": "https://example.test/a.png", "filename": "a.png"},
    {"type": "source-url", "sourceId": "s1", "url": "https://example.test", "title": "Example"},
    {"type": "data-weather", "id": "d1", "data": {"a": [1, 2, None]}},
    {"type": "text", "text": ""},
]


def _sync_db(tmp_path: Path) -> sqlite3.Connection:
    """A database with the schema's tables (from the metadata) on plain sqlite3, with genvault's
    adapters registered as a SQLite engine registers them."""
    bind_none_directly()
    bind_datetimes_explicitly()
    path = tmp_path / "rows.db"
    engine = create_sync_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    return sqlite3.connect(path, isolation_level=None)


def _rows(db: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    select = ", ".join(f"{c}, typeof({c})" for c in columns)
    return db.execute(f"SELECT {select} FROM {table} WHERE {where}", args).fetchall()


def test_a_part_row_named_by_its_values_is_the_row_every_column_bound_stored(tmp_path: Path) -> None:
    db = _sync_db(tmp_path)
    db.execute("PRAGMA foreign_keys=OFF")
    every_column = (
        f"INSERT INTO parts (chat_id, message_id, position, user_id, {', '.join(PAGE_PART_COLUMNS)}) "
        f"VALUES ({', '.join('?' * (4 + len(PAGE_PART_COLUMNS)))})"
    )
    message = {"id": "m-new", "role": "assistant", "parts": PARTS}
    for sql, row in _sqlite_part_rows("c", "u", message):
        db.execute(sql, row)
    for position, part in enumerate(PARTS):
        record = part_record(part)
        db.execute(every_column, ("c", "m-old", position, "u", *map(record.get, PAGE_PART_COLUMNS)))
    new = _rows(db, "parts", "message_id = ? ORDER BY position", ("m-new",))
    old = _rows(db, "parts", "message_id = ? ORDER BY position", ("m-old",))
    assert len(new) == len(PARTS)
    assert [r[:2] + r[4:] for r in new] == [r[:2] + r[4:] for r in old]  # all but message_id and its type


def _json_read(db: sqlite3.Connection, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A `_rows` row of `generations` with its JSON columns' text read as JSON."""
    columns = [r[1] for r in db.execute("PRAGMA table_info(generations)")]
    values = list(row)
    for name in ("result_message", "unit_prices"):
        at = 2 * columns.index(name)
        if isinstance(values[at], str):
            values[at] = json.loads(values[at])
    return tuple(values)


def test_the_finalize_update_stores_what_every_column_bound_stored(tmp_path: Path) -> None:
    """NULL values written as NULL, the kept columns (COALESCE) left as they were when not given,
    timestamps as the adapter's text, on rows that held other values before."""
    db = _sync_db(tmp_path)
    db.execute("PRAGMA foreign_keys=OFF")
    engine = create_engine(f"sqlite:///{tmp_path / 'dialect.db'}")
    dialect = engine.dialect
    stamp = generations.c.created_at.type.bind_processor(dialect)
    json_value = generations.c.result_message.type.bind_processor(dialect)
    old_sets = ", ".join(
        f"{name} = COALESCE(?, {name})" if keep else f"{name} = ?" for name, _, keep in finishes._FINAL_COLUMNS
    )
    old_sql = (
        f"UPDATE generations SET {old_sets}, lease_owner = NULL, lease_expires_at = NULL "
        "WHERE id = ? AND status IN ('pending', 'streaming') RETURNING id"
    )
    at = datetime(2026, 12, 6, 13, 0, 0, tzinfo=UTC)
    finals: list[dict[str, Any]] = [
        {"status": "complete", "result_text": "hi", "result_message": {"a": 1}, "finished_at": at},
        {
            "status": "complete",
            "result_message": {"id": "m", "metadata": {"é": "😀\u2028", "n": None}, "parts": [{"x": 1.5e16}]},
            "unit_prices": {"input": "0.15"},
            "finished_at": at,
        },
        {
            "status": "error",
            "error": "bad",
            "input_tokens": 3,
            "cost_nano_usd": 0,
            "unit_prices": None,
            "started_at": at.astimezone(timezone(timedelta(hours=5))),
            "first_token_at": at + timedelta(microseconds=1),
            "finished_at": at + timedelta(seconds=1),
            "cached_from": "gen-src",
            "saved_nano_usd": 7,
            "usage_estimated": True,
        },
        {"status": "cancelled", "usage_estimated": False, "saved_nano_usd": 0, "finished_at": at},
    ]

    store: Any = SimpleNamespace(sa_dialect=dialect)  # what `_sqlite_final` reads
    for n, values in enumerate(finals):
        for copy in ("new", "old"):
            db.execute(
                "INSERT INTO generations (id, kind, user_id, status, model, provider, request, created_at, "
                "error, cached_from, saved_nano_usd, usage_estimated, lease_owner, lease_expires_at) "
                "VALUES (?, 'chat', 'u', 'streaming', 'm', 'p', '{}', '2026-01-01 00:00:00', 'was', 'gen-was', 5, 0, "
                "'o', '2026-01-01 00:10:00')",
                (f"{copy}{n}",),
            )
        sql, params = finishes._sqlite_final(store, f"new{n}", values)
        assert db.execute(sql, params).rowcount == 1
        assert db.execute(sql, params).rowcount == 0  # final already: the guard holds
        old_params = tuple(
            json_value(values.get(name))
            if name in ("result_message", "unit_prices")
            else stamp(values.get(name))
            if name in ("started_at", "first_token_at", "finished_at")
            else values.get(name)
            for name, _, _ in finishes._FINAL_COLUMNS
        )
        assert db.execute(old_sql, (*old_params, f"old{n}")).fetchall() == [(f"old{n}",)]
        db.execute(old_sql, (*old_params, f"old{n}")).fetchall()
        new, old = _rows(db, "generations", "id = ?", (f"new{n}",)), _rows(db, "generations", "id = ?", (f"old{n}",))
        # all but the id and its type; the JSON columns as the same JSON value (finloop: orjson's
        # compact text where SQLAlchemy's bind wrote `json.dumps`' spaced, ASCII-escaped text)
        assert _json_read(db, new[0])[2:] == _json_read(db, old[0])[2:]
        assert None not in params
    engine.sync_engine.dispose()


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 6, 13, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 13, 0, 0, 5, tzinfo=UTC),
        datetime(2026, 12, 6, 18, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1999, 1, 1, 0, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_a_timestamp_as_text_is_what_the_adapter_stored(tmp_path: Path, value: datetime) -> None:
    db = _sync_db(tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'dialect.db'}")
    stamp = generations.c.created_at.type.bind_processor(engine.dialect)
    stored = db.execute("SELECT ?, typeof(?)", (stamp(value), stamp(value))).fetchone()
    assert (stamp_text(engine.dialect)(value), "text") == stored
    assert stamp_text(engine.dialect)(None) is None
    with pytest.raises(ValueError, match="naive"):
        stamp_text(engine.dialect)(datetime(2026, 1, 1))  # naive: refused
    engine.sync_engine.dispose()


def test_insert_names_only_the_values_given() -> None:
    assert present([("a", 1), ("b", None), ("c", ""), ("d", 0)]) == (("a", "c", "d"), (1, "", 0))
    assert (
        insert_sql("t", ("a", "c"), (("k", "'x'"),), " RETURNING a")
        == "INSERT INTO t (k, a, c) VALUES ('x', ?, ?) RETURNING a"
    )


def test_no_column_a_turn_leaves_out_has_a_default_other_than_null(tmp_path: Path) -> None:
    """An INSERT that names only the columns with a value leaves the others to their default:
    NULL only while no column of these tables has a default of its own (in the migrations'
    schema, which the metadata matches: tests/test_migrations.py)."""
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'defaults.db'}")
    metadata.create_all(engine)
    for table in ("chats", "messages", "parts", "generations"):
        columns = inspect(engine).get_columns(table)
        assert [c["name"] for c in columns if c["default"] is not None] == [], table
    engine.dispose()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_turns_row_counts_count_its_own_rows_not_its_triggers(database: tuple[str, str | None]) -> None:
    """The opening tells a new chat by the chats INSERT's row count and the finalize its write by
    the UPDATE's (no RETURNING): sqlite3's rowcount is the statement's own rows, whatever its
    triggers wrote (the title's search queue, the search and budget triggers of a generation)."""
    url, _ = database  # migrated to the head revision
    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("INSERT OR IGNORE INTO users (id, name, is_admin, created_at) VALUES ('u', 'u', 0, '2026-01-01')")
    chat = (
        "INSERT INTO chats (id, user_id, title, visibility, last_seq, created_at, updated_at) "
        "VALUES ('c', 'u', 'a title', 'private', 1, '2026-01-01', '2026-01-01') ON CONFLICT (id) DO NOTHING"
    )
    assert db.execute(chat).rowcount == 1
    assert db.execute("SELECT count(*) FROM search_parts_pending").fetchone() == (1,)  # its trigger's row
    assert db.execute(chat).rowcount == 0
    db.execute(
        "INSERT INTO generations (id, kind, user_id, chat_id, status, model, provider, request, created_at) "
        "VALUES ('g', 'chat', 'u', 'c', 'streaming', 'm', 'p', '{}', '2026-01-01')"
    )
    final = (
        "UPDATE generations SET status = 'complete', result_text = 'x' "
        "WHERE id = 'g' AND status IN ('pending', 'streaming')"
    )
    assert db.execute(final).rowcount == 1
    assert db.execute(final).rowcount == 0
    db.close()


_ZONES = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59))


@given(
    value=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.one_of(st.just(UTC), _ZONES)
    )
)
def test_a_timestamp_as_text_is_sqlalchemys_bind_then_the_adapters_isoformat(value: datetime) -> None:
    # `stamp_text` on SQLite writes `UTCDateTime`'s bind out (one call instead of three): the
    # same text as SQLAlchemy's processor then sqlite3's adapter (`isoformat(" ")`), any zone.
    engine = create_engine("sqlite:///unused.db")
    processor = generations.c.created_at.type.bind_processor(engine.dialect)
    assert stamp_text(engine.dialect)(value) == processor(value).isoformat(" ")
    with pytest.raises(ValueError, match="naive datetime given to a UTC column"):
        processor(value.replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive datetime given to a UTC column"):
        stamp_text(engine.dialect)(value.replace(tzinfo=None))


_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just(""), st.just(0), st.just(False))


@given(
    record=st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "x", "y"]), _VALUES),
    columns=st.frozensets(st.sampled_from(["a", "b", "c", "d", "z"])),
)
def test_present_in_is_present_of_the_records_columns(record: dict[str, Any], columns: frozenset[str]) -> None:
    expected = present((c, v) for c, v in record.items() if c in columns)
    assert present_in(record, columns) == expected
    assert present(list(record.items())) == (
        tuple(c for c, v in record.items() if v is not None),
        tuple(v for v in record.values() if v is not None),
    )


@given(
    values=st.lists(
        st.one_of(
            st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
            # instants that share a second, or all but their month or year, with the one before
            st.builds(
                lambda year, month, second, us: datetime(year, month, 6, 13, 0, second, us, tzinfo=UTC),
                st.sampled_from([2026, 2027]),
                st.sampled_from([1, 2]),
                st.sampled_from([0, 1]),
                st.sampled_from([0, 1, 999999]),
            ),
        ),
        max_size=12,
    )
)
def test_timestamps_in_a_row_are_each_their_own_text(values: list[datetime]) -> None:
    # `stamp_text` keeps the text of the last second it wrote (sqliteloop): whatever came
    # before, each value's text is its own `isoformat(" ")` as SQLAlchemy's bind gives it.
    engine = create_engine("sqlite:///unused.db")
    processor = generations.c.created_at.type.bind_processor(engine.dialect)
    stamp = stamp_text(engine.dialect)
    assert [stamp(value) for value in values] == [processor(value).isoformat(" ") for value in values]
