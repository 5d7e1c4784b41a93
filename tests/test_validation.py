"""`genvault.validation`: the depth scan agrees with the parsed value's depth, whatever the strings
hold; the id rule; loads_json's messages."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genvault.errors import InvalidRequest
from genvault.validation import check_id, check_json_depth, check_message_ids, json_depth_exceeds, loads_json


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# Strings full of the characters the scan must not be fooled by.
tricky = st.text(alphabet='[]{}"\\\\,:ab\n\u00e9', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky, children, max_size=4),
    max_leaves=40,
)


@given(values, st.integers(min_value=0, max_value=8), st.booleans())
def test_the_scan_finds_exactly_the_parsed_depth(value: Any, limit: int, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_depth_exceeds(raw, limit) == (depth(value) > limit)


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b"[" * 100_000 + b"]" * 100_000, True),
        (b"[" * 100_000, True),  # unclosed: the parser would still recurse
        (b'{"a": "' + b"[" * 1000 + b'"}', False),
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
    ],
)
def test_the_scan_on_hostile_bodies(raw: bytes, deep: bool) -> None:
    assert json_depth_exceeds(raw) is deep


def test_loads_json_names_what_is_wrong() -> None:
    with pytest.raises(InvalidRequest, match="more than 64 deep"):
        loads_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InvalidRequest, match=r"not valid UTF-8 \(byte 0xff at offset 1\)"):
        loads_json(b'"\xff"')
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        loads_json(b"{nope")
    assert loads_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 BOM is allowed


@pytest.mark.parametrize("outer", [dict, list])
def test_check_json_depth_counts_dicts_and_lists(outer: type) -> None:
    def nested(levels: int) -> Any:
        value: Any = "x"
        for level in range(levels):
            value = {"k": value} if (level % 2 == 0) == (outer is dict) else [value, 1]
        return value

    check_json_depth(nested(64), "the message")
    with pytest.raises(InvalidRequest, match="the message nests arrays and objects more than 64 deep"):
        check_json_depth(nested(65), "the message")
    check_json_depth([("tuple", ("not", "walked"))] * 3, "the message", limit=1)


@pytest.mark.parametrize("good", ["c", "chat_01jd", "x" * 200, "a.b:c@d~e!f$g'h(i)j*k+l,m;n=o%p", "~"])
def test_ids_within_the_rule_pass(good: str) -> None:
    assert check_id(good, "chat id") == good


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("", "it is empty"),
        ("x" * 201, "it has 201 characters"),
        ("a b", "' '"),
        ("a\x00", "'\\x00'"),
        ("caf\u00e9", "é"),
    ],
)
def test_ids_outside_the_rule_name_the_problem(bad: str, said: str) -> None:
    with pytest.raises(InvalidRequest, match="chat id must be 1 to 200 visible ASCII characters") as info:
        check_id(bad, "chat id")
    assert said in str(info.value)


def test_a_minted_id_is_a_lower_case_ulid_of_now() -> None:
    """`new_id` writes the ULID's digits itself: the same text as python-ulid's for any value,
    with this millisecond's time and fresh randomness."""
    from ulid import ULID

    from genvault import ids

    for value in (0, 1, 2**128 - 1, 0x0123456789ABCDEF0123456789ABCDEF, int(ULID())):
        assert ids._encode(value) == str(ULID.from_int(value)).lower()
    before = time.time_ns() // 1_000_000
    minted = ids.new_id("gen")
    after = time.time_ns() // 1_000_000
    assert ids.ID_PATTERN.match(minted)
    stamp = int(ULID.from_str(minted.removeprefix("gen_").upper()).milliseconds)
    assert before <= stamp <= after
    assert minted != ids.new_id("gen")


@given(ms=st.integers(min_value=0, max_value=2**48 - 1), randomness=st.binary(min_size=10, max_size=10))
def test_a_minted_id_is_the_encoding_of_its_time_and_randomness(ms: int, randomness: bytes) -> None:
    """`new_id` writes the two halves' digits itself: the same text as `_encode(ms << 80 | r)`."""
    from unittest import mock

    from genvault import ids

    with (
        mock.patch.object(ids.time, "time_ns", return_value=ms * 1_000_000 + 999_999),
        mock.patch.object(ids.os, "urandom", return_value=randomness),
    ):
        minted = ids.new_id("msg")
    assert minted == "msg_" + ids._encode(ms << 80 | int.from_bytes(randomness))


_WIDTHS = [("toolCallId", 200), ("toolName", 200), ("type", 200), ("mediaType", 200), ("filename", 500)]
_WIDTHS += [("sourceId", 500), ("title", 500), ("state", 32), ("id", 200)]  # the order they are reported in


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from([key for key, _ in _WIDTHS] + ["text", "input"]),
            st.one_of(st.integers(0, 2), st.none(), st.just({"x": 1})),
            max_size=6,
        ),
        max_size=3,
    ),
    st.randoms(use_true_random=False),
)
def test_check_message_ids_reports_the_first_too_wide_field_in_the_limits_order(
    shapes: list[dict[str, Any]], rng: Any
) -> None:
    # Each string field is its limit -1, +0 or +1 characters long; the part's key order is shuffled.
    # The error names the first part with a too-wide field and, in it, the first such field in
    # the limits' order (as a walk of the limits, part by part, finds it), whatever the key order.
    limits = dict(_WIDTHS)
    parts = []
    expected = None
    for position, shape in enumerate(shapes):
        part = {
            key: "a" * (limits.get(key, 10) - 1 + over) if isinstance(over, int) else over
            for key, over in shape.items()
        }
        keys = list(part)
        rng.shuffle(keys)
        parts.append({key: part[key] for key in keys})
        wide = [(key, n) for key, n in _WIDTHS if isinstance(part.get(key), str) and len(part[key]) > n]
        if expected is None and wide:
            key, n = wide[0]
            expected = f"message 'm' parts[{position}].{key} has {n + 1} characters; the limit is {n}"
    message = {"id": "m", "parts": parts}
    if expected is None:
        check_message_ids(message)
    else:
        with pytest.raises(InvalidRequest) as raised:
            check_message_ids(message)
        assert str(raised.value) == expected


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _stdlib_loads(raw: bytes, checked: bool) -> tuple[str, Any]:
    """`loads_json` as it was: the same checks, then `json.loads`."""
    from unittest import mock

    from genvault import validation

    with mock.patch.object(validation, "load_json_bytes", json.loads):
        return _outcome(raw, checked)


def _outcome(raw: bytes, checked: bool) -> tuple[str, Any]:
    try:
        return "value", json.dumps(loads_json(raw, checked=checked), sort_keys=True)
    except InvalidRequest as exc:
        return "error", exc.message
    except ValueError as exc:  # `checked` with bytes the guard would have refused: json's own error
        return type(exc).__name__, str(exc)


@given(
    value=_json_values,
    cut=st.none() | st.integers(min_value=0, max_value=200),
    junk=st.binary(max_size=3),
    checked=st.booleans(),
)
def test_a_body_parses_as_json_loads_parses_it(value: Any, cut: int | None, junk: bytes, checked: bool) -> None:
    """orjson reads a body where it reads what `json.loads` reads; the rest (NaN, big integers,
    lone surrogates, broken JSON, bytes json reads as UTF-16) goes to `json.loads`: the same
    value or the same 400 message, whole and cut short."""
    raw = json.dumps(value, ensure_ascii=bool(cut is None)).encode("utf-8", "surrogatepass")
    if cut is not None:
        raw = raw[:cut] + junk
    assert _outcome(raw, checked) == _stdlib_loads(raw, checked)
