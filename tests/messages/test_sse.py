from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genvault.messages import (
    SSE_DONE,
    UI_MESSAGE_STREAM_HEADERS,
    chunk_to_json,
    encode_sse,
    parse_chunk,
    parse_sse,
)
from genvault.messages.chunks import boundary_wire, downgrade_for_client, plain_delta
from genvault.messages.sse import delta_event, delta_prefix, encode_boundary_sse, encode_delta_sse

from .strategies import json_values

# Spec §2.4: the verified bytes of streamText(...).toUIMessageStreamResponse(...) on ai@5.0.244.
VERIFIED_BODY = (
    b'data: {"type":"start","messageMetadata":{"createdAt":1},"messageId":"msg-1"}\n\n'
    b'data: {"type":"start-step"}\n\n'
    b'data: {"type":"reasoning-start","id":"r0"}\n\n'
    b'data: {"type":"reasoning-delta","id":"r0","delta":"hmm"}\n\n'
    b'data: {"type":"reasoning-end","id":"r0"}\n\n'
    b'data: {"type":"text-start","id":"txt-0"}\n\n'
    b'data: {"type":"text-delta","id":"txt-0","delta":"Hello"}\n\n'
    b'data: {"type":"text-end","id":"txt-0"}\n\n'
    b'data: {"type":"finish-step"}\n\n'
    b'data: {"type":"finish","finishReason":"stop","messageMetadata":{"totalUsage":'
    b'{"inputTokens":12,"outputTokens":3,"totalTokens":15,"cachedInputTokens":4}}}\n\n'
    b"data: [DONE]\n\n"
)

VERIFIED_CHUNKS: list[dict[str, Any]] = [
    {"type": "start", "messageMetadata": {"createdAt": 1}, "messageId": "msg-1"},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r0"},
    {"type": "reasoning-delta", "id": "r0", "delta": "hmm"},
    {"type": "reasoning-end", "id": "r0"},
    {"type": "text-start", "id": "txt-0"},
    {"type": "text-delta", "id": "txt-0", "delta": "Hello"},
    {"type": "text-end", "id": "txt-0"},
    {"type": "finish-step"},
    {
        "type": "finish",
        "finishReason": "stop",
        "messageMetadata": {
            "totalUsage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15, "cachedInputTokens": 4}
        },
    },
]


def test_encoding_the_verified_chunks_gives_the_verified_bytes() -> None:
    body = b"".join(encode_sse(chunk_to_json(parse_chunk(chunk))) for chunk in VERIFIED_CHUNKS) + SSE_DONE
    assert body == VERIFIED_BODY


def test_parsing_the_verified_bytes_gives_the_chunks_and_done() -> None:
    assert parse_sse(VERIFIED_BODY) == [*VERIFIED_CHUNKS, "[DONE]"]


def test_non_ascii_is_written_as_utf8_not_escaped() -> None:
    assert encode_sse({"type": "text-delta", "id": "t", "delta": "21°C ☀"}) == (
        'data: {"type":"text-delta","id":"t","delta":"21°C ☀"}\n\n'.encode()
    )


def test_non_finite_numbers_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="JSON"):
        encode_sse({"type": "data-x", "data": float("nan")})


def test_the_five_default_headers_of_the_ui_message_stream() -> None:
    assert dict(UI_MESSAGE_STREAM_HEADERS) == {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "connection": "keep-alive",
        "x-vercel-ai-ui-message-stream": "v1",
        "x-accel-buffering": "no",
    }


class TestParse:
    def test_comment_lines_such_as_keepalive_pings_are_ignored(self) -> None:
        assert parse_sse(b': ping\n\ndata: {"type":"abort"}\n\n: ping\n\n') == [{"type": "abort"}]

    def test_several_data_lines_of_one_event_are_joined_with_a_newline(self) -> None:
        assert parse_sse('data: {"type":\ndata: "abort"}\n\n') == [{"type": "abort"}]

    def test_cr_crlf_and_lf_line_endings_are_all_accepted(self) -> None:
        body = 'data: {"type":"abort"}\r\n\r\ndata:{"type":"start-step"}\r\rdata: [DONE]\n\n'
        assert parse_sse(body) == [{"type": "abort"}, {"type": "start-step"}, "[DONE]"]

    def test_the_space_after_data_colon_is_optional(self) -> None:
        assert parse_sse(b'data:{"type":"abort"}\n\n') == [{"type": "abort"}]

    def test_other_fields_are_ignored_and_events_without_data_are_not_dispatched(self) -> None:
        assert parse_sse(b'event: x\nid: 1\nretry: 10\n\nevent: y\ndata: {"type":"abort"}\n\n') == [{"type": "abort"}]

    def test_an_event_without_its_blank_line_is_discarded(self) -> None:
        assert parse_sse(b'data: {"type":"abort"}\n\ndata: {"type":"start"}\n') == [{"type": "abort"}]

    def test_a_leading_byte_order_mark_is_skipped(self) -> None:
        assert parse_sse('\ufeffdata: {"type":"abort"}\n\n'.encode()) == [{"type": "abort"}]

    @pytest.mark.parametrize("body", [b"data: nope\n\n", b"data: [1]\n\n", b"data: NaN\n\n", b"data:\n\n"])
    def test_event_data_that_is_not_a_json_object_is_an_error(self, body: bytes) -> None:
        with pytest.raises(ValueError, match="SSE event"):
            parse_sse(body)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.dictionaries(st.text(max_size=5), json_values(), max_size=3).map(lambda d: {**d, "type": "x"})))
    def test_parse_reads_back_whatever_encode_wrote(self, chunks: list[dict[str, Any]]) -> None:
        body = b"".join(encode_sse(chunk) for chunk in chunks) + SSE_DONE
        assert parse_sse(body) == [*chunks, "[DONE]"]


# The hot path for deltas (`plain_delta` + `encode_delta_sse`) must give exactly the bytes of
# the general path (`downgrade_for_client` + `encode_sse`), for every client level.
@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["text-delta", "reasoning-delta"]),
    stream_id=st.text(),
    delta=st.text(),
    level=st.sampled_from(["5.0.0", "5.0.100", "latest"]),
)
def test_the_delta_fast_path_writes_the_general_paths_bytes(kind: str, stream_id: str, delta: str, level: str) -> None:
    chunk = {"type": kind, "id": stream_id, "delta": delta}
    found = plain_delta(chunk)
    assert found == (kind, stream_id, delta)
    general = encode_sse(parse_chunk(chunk).to_json())
    assert downgrade_for_client(chunk, level) == [parse_chunk(chunk).to_json()]
    try:
        fast = encode_delta_sse(*found)
    except UnicodeEncodeError:  # a lone surrogate: the general path fails the same way
        with pytest.raises(UnicodeEncodeError):
            encode_sse(chunk)
        return
    assert fast == general


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "text-delta", "id": "t1", "delta": "x", "providerMetadata": {"a": {}}},
        {"type": "text-delta", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": None},
        {"type": "text-delta", "id": 1, "delta": "x"},
        {"type": "text-start", "id": "t1", "delta": "x"},
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "x"},
    ],
)
def test_anything_but_a_plain_delta_takes_the_validating_path(chunk: dict[str, Any]) -> None:
    assert plain_delta(chunk) is None


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["text-start", "text-end", "reasoning-start", "reasoning-end", "start"]),
    value=st.text(),
)
def test_a_boundarys_event_is_the_validated_chunks_event(kind: str, value: str) -> None:
    """The boundaries' SSE bytes, written out (`encode_boundary_sse`), are `encode_sse` of the
    validated chunk's wire JSON, whatever the id holds (quotes, controls, non-ASCII)."""
    chunk = {"type": kind, "messageId" if kind == "start" else "id": value}
    wire = boundary_wire(chunk)
    assert wire is not None
    assert encode_boundary_sse(wire) == encode_sse(parse_chunk(chunk).to_json())


@pytest.mark.parametrize("kind", ["start-step", "finish-step"])
def test_a_bare_boundarys_event_is_the_validated_chunks_event(kind: str) -> None:
    wire = boundary_wire({"type": kind})
    assert wire is not None
    assert encode_boundary_sse(wire) == encode_sse(parse_chunk({"type": kind}).to_json())


_DELTA_KEYS = st.sampled_from(["type", "id", "delta", "providerMetadata"])
_DELTA_TYPES = st.sampled_from(["text-delta", "reasoning-delta", "text-start", "tool-input-delta"])


@settings(max_examples=300, deadline=None)
@given(
    chunk=st.one_of(
        st.fixed_dictionaries({"type": _DELTA_TYPES, "id": st.text(max_size=4), "delta": st.text(max_size=4)}),
        st.dictionaries(_DELTA_KEYS, st.one_of(_DELTA_TYPES, st.text(max_size=3), st.integers(), st.none())),
    )
)
def test_a_delta_event_is_the_plain_delta_encoded_or_none(chunk: dict[str, Any]) -> None:
    """`delta_event` (the hub sink's one call a token) is `encode_delta_sse(*plain_delta(chunk))`,
    the same bytes or the same encoding error, and None exactly when `plain_delta` is."""
    found = plain_delta(chunk)
    if found is None:
        assert delta_event(chunk) is None
        return
    try:
        expected = encode_delta_sse(*found)
    except UnicodeEncodeError:  # a lone surrogate
        with pytest.raises(UnicodeEncodeError):
            delta_event(chunk)
        return
    assert delta_event(chunk) == expected
    assert delta_event(dict(chunk)) == expected


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["text-delta", "reasoning-delta"]), st.text(max_size=6), st.text(max_size=6))
def test_a_delta_prefix_is_the_start_of_each_of_its_parts_events(kind: str, stream_id: str, delta: str) -> None:
    """`delta_prefix(kind, id)`, then the delta's JSON string and the event's end: the bytes of
    `encode_delta_sse`, or its encoding error (a lone surrogate)."""
    try:
        expected = encode_delta_sse(kind, stream_id, delta)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            f"{delta_prefix(kind, stream_id)}{encode_basestring(delta)}}}\n\n".encode()
        return
    assert f"{delta_prefix(kind, stream_id)}{encode_basestring(delta)}}}\n\n".encode() == expected


def test_a_delta_event_declines_what_is_not_a_dict_of_three_keys() -> None:
    assert delta_event([("type", "text-delta"), ("id", "t"), ("delta", "x")]) is None
    assert delta_event({"type": "text-delta", "id": "t", "delta": "x", "x": 1}) is None
    assert delta_event({"type": ["text-delta"], "id": "t", "delta": "x"}) is None  # no hash taken
    event = b'data: {"type":"text-delta","id":"t","delta":"x"}\n\n'
    assert delta_event({"type": "text-delta", "id": "t", "delta": "x"}) == event
