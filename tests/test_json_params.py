"""The PostgreSQL turn statements' JSON parameters written by orjson (`_json.dump_jsonb`,
`_json.dump_json`): PostgreSQL reads the same value from them as from `json.dumps`'s text, and
what only `json.dumps` writes (NaN, ±Infinity, an integer over 64 bits) is still its text."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genvault._json import dump_jsonb
from genvault.store import finishes, openings

CHARACTERS = ["a", "\x00", "\x1f", "\ud800", "\u2028", "\\", '"', "/", "é", "😀"]
texts = st.text(alphabet=st.sampled_from(CHARACTERS), max_size=6)
values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=30,
)


def non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(non_finite(v) for v in value)
    return False


@given(values)
def test_dump_jsonb_reads_back_as_json_dumps_does_and_keeps_its_text_for_what_orjson_writes_otherwise(
    value: Any,
) -> None:
    text = dump_jsonb(value)
    if non_finite(value) or any(not -(2**63) <= n < 2**64 for n in ints(value)):
        assert text == json.dumps(value)  # NaN stays NaN: PostgreSQL refuses it, as before
    else:
        assert json.loads(text) == json.loads(json.dumps(value))


def ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in ints(v)]
    if isinstance(value, list):
        return [n for v in value for n in ints(v)]
    return []


def old_generation_params(generation: dict[str, Any]) -> list[Any]:
    """The parameters as `_open_postgresql` built them before (`_json_or_value`)."""
    return [
        json.dumps(generation.get(name))
        if name in ("request", "reservation", "tags", "metadata") and generation.get(name) is not None
        else generation.get(name)
        for name in openings._GENERATION_COLUMNS
    ]


def old_final_params(values: dict[str, Any]) -> list[Any]:
    return [
        json.dumps(values.get(name)) if name in ("result_message", "unit_prices") else values.get(name)
        for name, _, _ in finishes._FINAL_COLUMNS
    ]


def same_params(new: list[Any], old: list[Any], json_positions: tuple[int, ...]) -> None:
    assert len(new) == len(old)
    for i, (a, b) in enumerate(zip(new, old, strict=True)):
        if i in json_positions and b is not None:
            assert json.loads(a) == json.loads(b)
        else:
            assert a == b


finite = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=20,
).filter(lambda v: not non_finite(v))


@given(
    st.dictionaries(st.sampled_from([*openings._GENERATION_COLUMNS, "other"]), finite, max_size=12),
)
def test_the_openings_parameters_are_the_values_json_dumps_gave(generation: dict[str, Any]) -> None:
    same_params(openings._generation_params(generation), old_generation_params(generation), openings._JSON_POSITIONS)


@given(st.dictionaries(st.sampled_from(finishes._FINAL_NAMES), finite, max_size=12))
def test_the_finalize_parameters_are_the_values_json_dumps_gave(values: dict[str, Any]) -> None:
    same_params(finishes._final_params(values), old_final_params(values), finishes._JSON_POSITIONS)
    # No value: JSON null, not SQL NULL, as before
    assert finishes._final_params({})[finishes._JSON_POSITIONS[0]] == "null"


TRICKY = [
    1e16,
    1e-7,
    0.1,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    '\u2028\x00\x1f/\\"é😀',
    {"a": [1, 2.5, None, True, {"b": "c"}], "": {}},
    [],
]


@pytest.mark.postgres
async def test_postgresql_reads_the_same_jsonb_from_both_texts(pg_database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_database)
    try:
        for value in TRICKY:
            if value == '\u2028\x00\x1f/\\"é😀':
                value = value.replace("\x00", "")  # jsonb holds no NUL in either text
            new, old = dump_jsonb({"v": value}), json.dumps({"v": value})
            assert await conn.fetchval("SELECT $1::jsonb = $2::jsonb AND $1::jsonb::text = $2::jsonb::text", new, old)
    finally:
        await conn.close()
