"""SQLite: a chat turn's rows written without a parameter for each NULL, and its timestamps bound
as text formatted once.

sqlite3 binds an int, float, str or bytearray as it is; anything else goes through its adapter
registry (a key tuple built, a dict hit, a call: `sqlite_adapter.bind_none_directly`), about
1,400 instructions for each `None` and, for a `datetime`, `isoformat(" ")` on top (~7,000).
A chat turn's opening and finalize bound ~90 `None`s (the parts' unused columns above all: a
text part fills 3 of 31) and 13 datetimes (the same instant up to four times), on the writer
connection's thread (docs/benchmarks.md, litewriter). Here an INSERT names only the columns that
have a value (the others take the column's default, NULL: no column the hot paths write has
another default) and an UPDATE writes `NULL` in its text, so the statement's text depends on
which values are NULL: one text per such shape, built once (`functools.lru_cache`) and kept
prepared by sqlite3's statement cache (128 a connection); a turn has a handful of shapes. The
stored rows are the same, and so is every timestamp's text: `stamp_text` gives what sqlite3's
datetime adapter stored (`sqlite_adapter.bind_datetimes_explicitly`: `isoformat(" ")` of
SQLAlchemy's naive UTC value).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from genvault.store.schema import generations

__all__ = ["insert_sql", "present", "present_in", "stamp_text"]


def stamp_text(dialect: Any) -> Callable[[datetime | None], str | None]:
    """How a `UTCDateTime` is stored on SQLite, as text: SQLAlchemy's bind (an aware datetime
    to naive UTC; a naive one raises) then sqlite3's adapter's `isoformat(" ")`. For SQLite that
    bind is `UTCDateTime.process_bind_param`, written out here (`_utc_text`: one call per
    timestamp instead of three, SQLAlchemy's `process` and the decorator's method; the same
    text or the same error, tested against them)."""
    if dialect.name == "sqlite":
        return _utc_text
    return _stamp_text(_stamp(dialect))


# The last whole second `_utc_text` formatted, as (year, month, day, hour, minute, second) and
# its text: one tuple, replaced whole, so a thread reads a key with its own text.
_last_second: tuple[tuple[int, ...], str] = ((), "")


def _utc_text(value: datetime | None) -> str | None:
    global _last_second
    if value is None:
        return None
    if value.tzinfo is UTC:  # the engine's instants (`datetime.now(UTC)`): its text less "+00:00"
        microsecond = value.microsecond
        if microsecond:
            # `isoformat` formats every field through `PyUnicode_FromFormat` (sprintf), ~12 k
            # instructions; a turn's instants mostly share their second, whose text is kept,
            # and the microseconds are formatted alone (~6 k; docs/benchmarks.md "sqliteloop").
            second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
            last = _last_second
            if last[0] == second:
                return f"{last[1]}.{microsecond:06d}"
            text = value.isoformat(" ")[:-6]
            _last_second = (second, text[:19])
            return text
        return value.isoformat(" ")[:-6]  # no fraction written for a whole second
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


@functools.cache
def _stamp(dialect: Any) -> Callable[[datetime], datetime]:
    processor = generations.c.created_at.type.bind_processor(dialect)
    assert processor is not None  # a TypeDecorator's
    return processor


@functools.cache
def _stamp_text(stamp: Callable[[datetime], datetime]) -> Callable[[datetime | None], str | None]:
    def text(value: datetime | None) -> str | None:
        return None if value is None else stamp(value).isoformat(" ")

    return text


def present(pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The names and values of `pairs` whose value is not None, in order."""
    names: list[str] = []
    values: list[Any] = []
    for name, value in pairs:
        if value is not None:
            names.append(name)
            values.append(value)
    return tuple(names), tuple(values)


def present_in(record: dict[str, Any], columns: frozenset[str]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """`present` of `record`'s items whose key is one of `columns` (a part's row), without the
    generator between them."""
    names: list[str] = []
    values: list[Any] = []
    for name, value in record.items():
        if value is not None and name in columns:
            names.append(name)
            values.append(value)
    return tuple(names), tuple(values)


@functools.lru_cache(maxsize=256)
def insert_sql(table: str, names: tuple[str, ...], constants: tuple[tuple[str, str], ...] = (), tail: str = "") -> str:
    """`INSERT INTO table (constants' columns, names) VALUES (constants' SQL, ?…) tail`."""
    columns = [name for name, _ in constants] + list(names)
    values = [sql for _, sql in constants] + ["?"] * len(names)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)}){tail}"
