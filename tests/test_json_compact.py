"""`_json.dump_compact`, `dump_compact_bytes` and `dump_json_column`: orjson's text where it is
`json.dumps`'s, `json.dumps`'s (or its error) everywhere else."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genvault._json import dump_compact, dump_compact_bytes, dump_json_column
from genvault.messages.sse import encode_sse
from genvault.server.streaming import _encode_sse
from genvault.store.parts import dump_json
from genvault.store.schema import MISSING

texts = st.text(max_size=8) | st.sampled_from(["\ud800", "\u2028", "\x7f", "\x00", '"\\', "é😀"])
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(texts, children, max_size=3)
        | st.dictionaries(st.integers(), children, max_size=2)
    ),
    max_leaves=30,
)


def outcome(dump: Any, value: Any) -> Any:
    try:
        return dump(value)
    except Exception as exc:  # the same error type, or the same text
        return type(exc)


@given(values)
def test_the_compact_text_is_json_dumps_text_or_its_error(value: Any) -> None:
    assert outcome(dump_compact, value) == outcome(
        lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False), value
    )


@given(values)
def test_the_compact_bytes_are_json_dumps_bytes_or_its_error(value: Any) -> None:
    def reference(v: Any) -> bytes:
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

    assert outcome(dump_compact_bytes, value) == outcome(reference, value)


def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@given(values)
def test_a_json_columns_text_reads_back_as_json_dumps_value(value: Any) -> None:
    expected = outcome(json.dumps, value)
    got = outcome(dump_json_column, value)
    if isinstance(expected, type):
        assert got is expected
        return
    assert isinstance(got, str)
    assert same_json(json.loads(got), json.loads(expected))


@pytest.mark.parametrize(
    "value",
    [
        {"genvault": {"generationId": "gen_1", "model": "openai/gpt", "costUsd": None, "durationMs": 7}},
        {"a": 1.5, "b": [1e16, 1e-7]},  # floats: json's exponent
        {"n": 2**64},  # beyond orjson's integers
        {1: "int key"},
        [[[[["deep"]]]]],
        "lone \ud800",
    ],
)
def test_the_stored_text_and_the_wire_bytes_are_as_before(value: Any) -> None:
    assert dump_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert dump_json(MISSING) is None
    chunk = {"type": "message-metadata", "messageMetadata": value}
    assert outcome(_encode_sse, chunk) == outcome(encode_sse, chunk)


@given(values)
def test_the_servers_sse_events_are_encode_sses_bytes(value: Any) -> None:
    chunk = {"type": "message-metadata", "messageMetadata": value}
    assert outcome(_encode_sse, chunk) == outcome(encode_sse, chunk)


def test_nan_is_still_refused_on_the_wire() -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        _encode_sse({"type": "message-metadata", "messageMetadata": {"x": float("nan")}})


def test_deeper_than_the_walk_goes_to_json() -> None:
    value: Any = "x"
    for _ in range(40):
        value = {"k": [value]}
    assert dump_compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
