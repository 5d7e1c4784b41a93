"""`store.text.plain_json`, the one-encode shortcut of the append's checks: whenever it says yes,
both exact checks (`check_json_depth`, `check_storable`) pass; it says no for what they refuse."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genvault.errors import InvalidRequest
from genvault.store.text import check_storable, plain_json
from genvault.validation import check_json_depth

# Text with the characters the checks are about: NUL, a lone surrogate, a literal backslash-u.
texts = st.text(alphabet=st.sampled_from(["a", "\x00", "\ud800", "\\", "u", "0", "[", "{", '"', "é"]), max_size=6)
values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | texts,
    lambda children: (
        st.lists(children, max_size=3) | st.tuples(children, children) | st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=30,
)


def passes_both(value: Any, limit: int) -> bool:
    try:
        check_json_depth(value, "v", limit=limit)
        check_storable(value, "v")
    except InvalidRequest:
        return False
    return True


@given(values, st.integers(min_value=0, max_value=6))
def test_a_yes_means_both_exact_checks_pass(value: Any, limit: int) -> None:
    if plain_json(value, limit=limit):
        assert passes_both(value, limit)


@pytest.mark.parametrize(
    "value",
    [
        [{"id": "m", "parts": [{"type": "text", "text": "a\x00b"}]}],  # NUL
        [{"id": "m", "parts": [{"type": "text", "text": "a\ud800"}]}],  # lone surrogate
        [{"k\x00": 1}],  # in a key
        {1: "non-string key"},  # orjson refuses: the exact checks decide
    ],
)
def test_what_it_cannot_vouch_for_is_left_to_the_exact_checks(value: Any) -> None:
    assert not plain_json(value)


def test_the_depth_limit_is_the_exact_checks() -> None:
    def nested(levels: int) -> Any:
        value: Any = "x"
        for _ in range(levels):
            value = [value]
        return value

    assert plain_json(nested(64))
    assert not plain_json(nested(65))
    # Tuples are not walked by check_json_depth but are arrays to orjson: a no, never a wrong yes.
    assert not plain_json([("tuple", ("deeper",))], limit=1)
    check_json_depth([("tuple", ("deeper",))], "v", limit=1)
