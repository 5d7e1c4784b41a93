from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from genvault.messages import ABSENT
from genvault.messages._partial_json import fix_json, parse_partial_json

from .strategies import json_values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"city":"Par', {"city": "Par"}),  # the spec's mid-stream example
        ('{ "value":', {}),
        ('{ "value": "value" }', {"value": "value"}),
        ('[1, 2, {"a": tr', [1, 2, {"a": True}]),
        ('{"a": nul', {"a": None}),
        ('{"a": 12.', {"a": 12}),
        ('{"a": -', {}),
        ('{"a":1,"b', {"a": 1}),
        ('{"a":"x\\', {"a": "x"}),
        ('{"a":"\\u00e9', {"a": "é"}),
        ('"abc', "abc"),
        ("[", []),
    ],
)
def test_incomplete_json_is_repaired_like_the_ai_sdk_does(text: str, expected: Any) -> None:
    assert parse_partial_json(text) == expected


# A unicode escape cut in half stays invalid after repair, as in the AI SDK.
@pytest.mark.parametrize(
    "text", ["", "nope", "}", '{"a":"\\u00', '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": {}}}', "NaN"]
)
def test_text_that_cannot_be_parsed_or_repaired_gives_no_input(text: str) -> None:
    assert parse_partial_json(text) is ABSENT


def test_fix_json_closes_strings_objects_and_arrays_in_order() -> None:
    assert fix_json('{"a": [1, {"b": "x') == '{"a": [1, {"b": "x"}]}'


@settings(max_examples=200, deadline=None)
@given(json_values())
def test_complete_json_parses_to_itself_and_every_prefix_parses_or_is_absent(value: Any) -> None:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "__proto__" not in text and "prototype" not in text:
        assert parse_partial_json(text) == value
    for end in range(len(text)):
        parse_partial_json(text[:end])  # never raises
