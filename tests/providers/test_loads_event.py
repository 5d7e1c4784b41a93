from __future__ import annotations

import json
import math

import pytest

from genvault._json import load_json_bytes as loads_event

CHUNKS = [
    b'{"id":"c1","object":"chat.completion.chunk","created":1733480000,"choices":[{"index":0,'
    b'"delta":{"content":" w\\u00f6rld \\"\\n"},"logprobs":null,"finish_reason":null}]}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"été 😀"}}'.encode(),
    b'{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":-0,"x":-0.0,"y":1.5e-7}}',
    b'{"a":1,"a":2}',
    b"[1, 2.0, true, null]",
]
# What orjson reads differently or not at all: each as `json.loads` reads it.
UNUSUAL = [
    b'{"usage":{"total_tokens":123456789012345678901234567890}}',
    b'{"x":NaN,"y":Infinity,"z":-Infinity}',
    b'{"text":"\\ud800"}',
    b'{"x":1e400}',
    "\ufeff{}".encode(),
]


@pytest.mark.parametrize("data", CHUNKS + UNUSUAL)
def test_a_stream_event_is_read_as_json_loads_reads_it(data: bytes) -> None:
    got, expected = loads_event(data), json.loads(data)
    assert repr(got) == repr(expected)  # types too: an int stays an int, NaN stays NaN
    if isinstance(expected, dict) and isinstance(expected.get("x"), float) and math.isnan(expected["x"]):
        assert math.isnan(got["x"])


@pytest.mark.parametrize("data", [b"\xff", b'{"a":', b""])
def test_a_broken_stream_event_raises_as_json_loads_raises(data: bytes) -> None:
    try:
        json.loads(data)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        expected = type(exc)
    with pytest.raises(expected):
        loads_event(data)
