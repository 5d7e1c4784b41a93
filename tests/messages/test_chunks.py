from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genvault.errors import InvalidRequest
from genvault.messages import (
    CLIENT_5_0_0,
    CLIENT_LATEST,
    ChunkValidationError,
    assemble,
    chunk_to_json,
    downgrade_for_client,
    message_to_json,
    parse_chunk,
)
from genvault.messages import chunks as chunks_module
from genvault.messages.chunks import (
    FinishChunk,
    TextDeltaChunk,
    ToolOutputAvailableChunk,
    boundary_wire,
    plain_finish,
)

# One example of every v5 chunk type, with optional keys present.
EVERY_CHUNK: list[dict[str, Any]] = [
    {"type": "start", "messageMetadata": {"createdAt": 1}, "messageId": "msg-1"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t", "providerMetadata": {"openai": {"itemId": "x"}}},
    {"type": "text-delta", "id": "t", "delta": "Hé", "providerMetadata": {"p": {}}},
    {"type": "text-end", "id": "t", "providerMetadata": {"p": {"k": [1]}}},
    {"type": "reasoning-start", "id": "r"},
    {"type": "reasoning-delta", "id": "r", "delta": "hmm"},
    {"type": "reasoning-end", "id": "r", "providerMetadata": {"anthropic": {"signature": "sig"}}},
    {"type": "tool-input-start", "toolCallId": "c", "toolName": "t", "providerExecuted": True, "dynamic": True},
    {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"a":'},
    {
        "type": "tool-input-available",
        "toolCallId": "c",
        "toolName": "t",
        "input": {"a": 1},
        "providerExecuted": False,
        "providerMetadata": {"p": {"k": 1}},
        "dynamic": False,
    },
    {
        "type": "tool-input-error",
        "toolCallId": "c",
        "toolName": "t",
        "input": "{oops",
        "providerExecuted": False,
        "providerMetadata": {"p": {}},
        "dynamic": True,
        "errorText": "invalid",
    },
    {
        "type": "tool-output-available",
        "toolCallId": "c",
        "output": None,
        "providerExecuted": True,
        "dynamic": True,
        "preliminary": True,
    },
    {"type": "tool-output-error", "toolCallId": "c", "errorText": "boom", "providerExecuted": True, "dynamic": False},
    {"type": "source-url", "sourceId": "s", "url": "https://x", "title": "X", "providerMetadata": {"p": {}}},
    {"type": "source-document", "sourceId": "s", "mediaType": "application/pdf", "title": "Doc", "filename": "d.pdf"},
    {"type": "file", "url": "data:image/png;base64,AA", "mediaType": "image/png", "providerMetadata": {"p": {}}},
    {"type": "data-weather", "id": "w", "data": {"t": 1}, "transient": False},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"u": 1}},
    {"type": "error", "errorText": "An error occurred."},
    {"type": "abort"},
    {"type": "message-metadata", "messageMetadata": None},
]


@pytest.mark.parametrize("chunk", EVERY_CHUNK, ids=lambda c: c["type"])
def test_every_chunk_type_round_trips_exactly_including_key_order(chunk: dict[str, Any]) -> None:
    out = chunk_to_json(parse_chunk(chunk))
    assert out == chunk
    assert list(out) == list(chunk)


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "start"},
        {"type": "finish"},
        {"type": "data-x", "data": None},
        {"type": "tool-output-available", "toolCallId": "c"},
        {"type": "tool-input-available", "toolCallId": "c", "toolName": "t"},
    ],
)
def test_absent_optional_and_unknown_keys_stay_absent(chunk: dict[str, Any]) -> None:
    assert chunk_to_json(parse_chunk(chunk)) == chunk


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        # The verified rejections of spec §2.2.
        ({"type": "text-start", "id": "a", "providerMetadata": None}, "must be omitted rather than null"),
        ({"type": "start", "messageId": None}, "must be omitted rather than null"),
        ({"type": "tool-approval-request", "approvalId": "a", "toolCallId": "c"}, "not a v5 UI message stream chunk"),
        ({"type": "reasoning-file", "url": "u", "mediaType": "m"}, "not a v5 UI message stream chunk"),
        ({"type": "text-delta", "id": "a"}, "delta is required"),
        ({"type": "finish", "finishReason": "done"}, "finishReason"),
        ({"type": "source-document", "sourceId": "s", "mediaType": "m"}, "title is required"),
        ({"type": "tool-output-available", "toolCallId": "c", "preliminary": "yes"}, "preliminary"),
        ({"delta": "x"}, "not a v5 UI message stream chunk"),
    ],
)
def test_chunks_a_v5_client_rejects_are_rejected(chunk: dict[str, Any], message: str) -> None:
    with pytest.raises(ChunkValidationError, match=message) as info:
        parse_chunk(chunk)
    assert isinstance(info.value, InvalidRequest)


def test_unknown_keys_are_stripped_by_default_and_rejected_in_strict_mode() -> None:
    chunk = {"type": "text-start", "id": "a", "foo": 1}
    assert chunk_to_json(parse_chunk(chunk)) == {"type": "text-start", "id": "a"}
    with pytest.raises(ChunkValidationError, match="foo"):
        parse_chunk(chunk, strict=True)


def test_a_parsed_chunk_passes_through_parse_chunk_unchanged() -> None:
    chunk = TextDeltaChunk(id="a", delta="x")
    assert parse_chunk(chunk) is chunk


class TestDowngrade:
    def test_finish_reason_is_dropped_for_clients_older_than_5_0_92(self) -> None:
        finish = {"type": "finish", "finishReason": "stop", "messageMetadata": {"u": 1}}
        assert downgrade_for_client(finish) == [{"type": "finish", "messageMetadata": {"u": 1}}]
        assert downgrade_for_client(finish, "5.0.91") == [{"type": "finish", "messageMetadata": {"u": 1}}]
        assert downgrade_for_client(finish, "5.0.92") == [finish]
        assert downgrade_for_client(finish, CLIENT_LATEST) == [finish]

    def test_preliminary_outputs_are_withheld_from_clients_that_cannot_mark_them(self) -> None:
        preliminary = {"type": "tool-output-available", "toolCallId": "c", "output": 1, "preliminary": True}
        final = {"type": "tool-output-available", "toolCallId": "c", "output": 2, "preliminary": False}
        assert downgrade_for_client(preliminary) == []
        assert downgrade_for_client(final) == [{"type": "tool-output-available", "toolCallId": "c", "output": 2}]
        assert downgrade_for_client(preliminary, "5.0.11") == [preliminary]
        assert downgrade_for_client(final, "5.0.11") == [final]

    def test_tool_input_error_becomes_a_call_and_an_error_for_clients_older_than_5_0_7(self) -> None:
        error = {
            "type": "tool-input-error",
            "toolCallId": "c",
            "toolName": "weather",
            "input": "{oops",
            "providerMetadata": {"p": {"k": 1}},
            "errorText": "invalid",
        }
        old = downgrade_for_client(error, "5.0.6")
        assert old == [
            {
                "type": "tool-input-available",
                "toolCallId": "c",
                "toolName": "weather",
                "input": "{oops",
                "providerMetadata": {"p": {"k": 1}},
            },
            {"type": "tool-output-error", "toolCallId": "c", "errorText": "invalid"},
        ]
        assert downgrade_for_client(error, "5.0.7") == [error]
        # The old client ends with the same error part, the invalid input in `input`.
        part = message_to_json(assemble([{"type": "start", "messageId": "m"}, *old]))["parts"][0]
        assert part == {
            "type": "tool-weather",
            "toolCallId": "c",
            "state": "output-error",
            "input": "{oops",
            "errorText": "invalid",
            "callProviderMetadata": {"p": {"k": 1}},
        }

    def test_dynamic_tool_input_errors_stay_dynamic_when_downgraded(self) -> None:
        error = {
            "type": "tool-input-error",
            "toolCallId": "c",
            "toolName": "t",
            "input": 1,
            "dynamic": True,
            "errorText": "e",
        }
        chunks = downgrade_for_client(error)
        assert [c.get("dynamic") for c in chunks] == [True, True]
        assert message_to_json(assemble(chunks))["parts"][0]["type"] == "dynamic-tool"

    def test_chunks_every_client_accepts_pass_unchanged(self) -> None:
        for chunk in EVERY_CHUNK:
            if chunk["type"] in ("finish", "tool-output-available", "tool-input-error"):
                continue
            assert downgrade_for_client(chunk) == [chunk]

    def test_extra_keys_never_reach_any_client(self) -> None:
        chunk = {"type": "tool-input-start", "toolCallId": "c", "toolName": "t", "title": "v6 field"}
        assert downgrade_for_client(chunk, CLIENT_LATEST) == [
            {"type": "tool-input-start", "toolCallId": "c", "toolName": "t"}
        ]

    def test_models_are_accepted_as_input(self) -> None:
        assert downgrade_for_client(FinishChunk(finish_reason="stop")) == [{"type": "finish"}]
        assert downgrade_for_client(ToolOutputAvailableChunk(tool_call_id="c", output=1, preliminary=True)) == []

    @pytest.mark.parametrize("level", ["5", "6.0.0", "5.0", "newest", "5.0.x"])
    def test_an_unknown_client_level_is_a_programming_error(self, level: str) -> None:
        with pytest.raises(ValueError, match=r"5\.0\.x version"):
            downgrade_for_client({"type": "abort"}, level)

    def test_v6_chunk_types_are_refused_rather_than_downgraded(self) -> None:
        with pytest.raises(ChunkValidationError):
            downgrade_for_client({"type": "tool-output-denied", "toolCallId": "c"}, CLIENT_LATEST)

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(EVERY_CHUNK), st.integers(min_value=0, max_value=300))
    def test_downgraded_chunks_validate_against_the_strict_schema_of_that_client(
        self, chunk: dict[str, Any], patch: int
    ) -> None:
        level = f"5.0.{patch}"
        for out in downgrade_for_client(chunk, level):
            parse_chunk(out, strict=True)
            if patch < 7:
                assert out["type"] != "tool-input-error"
            if patch < 11:
                assert "preliminary" not in out
            if patch < 92:
                assert "finishReason" not in out
        assert CLIENT_5_0_0 == "5.0.0"


class TestBoundaryWire:
    """The start, step and text boundaries the assembler and the response take without
    validation are exactly what `parse_chunk` gives for them; anything else is left to it."""

    @pytest.mark.parametrize(
        "chunk",
        [
            {"type": "start-step"},
            {"type": "finish-step"},
            {"type": "text-start", "id": "t1"},
            {"type": "text-end", "id": "t1"},
            {"type": "reasoning-start", "id": "r1"},
            {"type": "reasoning-end", "id": "r1"},
            {"type": "start", "messageId": "m"},
        ],
    )
    def test_a_bare_boundary_is_the_validated_chunk(self, chunk: dict[str, Any]) -> None:
        fast, validated = boundary_wire(chunk), parse_chunk(chunk).to_json()
        assert fast == validated == chunk
        assert fast is not None
        assert list(fast) == list(validated)  # key order

    @pytest.mark.parametrize(
        "chunk",
        [
            {"type": "start-step", "extra": 1},
            {"type": "text-start", "id": 1},
            {"type": "text-start"},
            {"type": "text-end", "id": "t1", "providerMetadata": {"x": {}}},
            {"type": "start"},
            {"type": "start", "messageId": None},
            {"type": "start", "messageId": 1},
            {"type": "start", "messageId": "m", "messageMetadata": {"a": 1}},
            {"type": "start", "id": "m"},
            {"type": "text-delta", "id": "t1", "delta": "a"},
        ],
    )
    def test_anything_else_is_left_to_validation(self, chunk: dict[str, Any]) -> None:
        assert boundary_wire(chunk) is None

    @pytest.mark.parametrize(
        "chunk",
        [
            {"type": "start", "messageId": "m"},
            {"messageId": "m", "type": "start"},
            {"type": "start-step"},
            {"id": "t1", "type": "text-start"},
            {"type": "text-end", "id": "t1"},
        ],
    )
    @pytest.mark.parametrize("level", ["5.0.0", "latest"])
    def test_a_boundarys_downgrade_needs_no_validation(
        self, chunk: dict[str, Any], level: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        expected = downgrade_for_client(parse_chunk(chunk), level)
        monkeypatch.setattr(chunks_module, "parse_chunk", _no_validation)
        got = downgrade_for_client(chunk, level)
        assert got == expected
        assert [list(wire) for wire in got] == [list(wire) for wire in expected]  # key order: the wire bytes


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
_FINISHES = st.fixed_dictionaries(
    {"type": st.just("finish")},
    optional={"finishReason": st.sampled_from(["stop", "length", "tool-calls", "other"]), "messageMetadata": _JSON},
)
_LEVELS = ["5.0.0", "5.0.91", "5.0.92", "latest"]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


class TestPlainFinish:
    """A finish chunk of plain JSON values (the engine's, once a reply) is taken without model
    validation by the assembler and the downgrade: the same fields, the same wire JSON."""

    @given(_FINISHES)
    def test_a_plain_finish_is_the_validated_chunk(self, chunk: dict[str, Any]) -> None:
        validated = parse_chunk(chunk)
        assert isinstance(validated, FinishChunk)
        fast = plain_finish(chunk)
        assert fast == (validated.finish_reason, validated.message_metadata)
        if isinstance(chunk.get("messageMetadata"), dict | list):
            assert fast[1] is not chunk["messageMetadata"]  # a copy, as validation's

    @given(_FINISHES, st.sampled_from(_LEVELS))
    def test_its_downgrade_is_the_validated_ones_without_validation(self, chunk: dict[str, Any], level: str) -> None:
        expected = downgrade_for_client(parse_chunk(chunk), level)
        original = chunks_module.parse_chunk
        chunks_module.parse_chunk = _no_validation  # (no monkeypatch fixture under @given)
        try:
            got = downgrade_for_client(chunk, level)
        finally:
            chunks_module.parse_chunk = original
        assert got == expected
        assert [list(wire) for wire in got] == [list(wire) for wire in expected]  # key order: the wire bytes

    class Text(str):
        """A str subclass: validation gives a plain str for it, so it is left to validation."""

    @pytest.mark.parametrize(
        "chunk",
        [
            {"type": "finish", "finishReason": None},
            {"type": "finish", "finishReason": "done"},
            {"type": "finish", "finishReason": 1},
            {"type": "finish", "extra": 1},
            {"type": "finish", "messageMetadata": (1, 2)},
            {"type": "finish", "messageMetadata": {1: "a"}},
            {"type": "finish", "messageMetadata": {"a": b"x"}},
            {"type": "finish", "messageMetadata": {"a": Text("x")}},
            {"type": "finish", "messageMetadata": _nested(40)},
            {"type": "finish-step"},
        ],
    )
    def test_anything_else_is_left_to_validation(self, chunk: dict[str, Any]) -> None:
        assert plain_finish(chunk) is None


def _no_validation(obj: Any, *, strict: bool = False) -> Any:
    raise AssertionError(f"validated: {obj}")


def _json_copy_by_calls(value: Any, depth: int) -> Any:
    """`chunks._json_copy` as it was written first (a call per value, leaves included)."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth == 0:
        return chunks_module._NOT_PLAIN
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            item = _json_copy_by_calls(item, depth - 1)
            if type(key) is not str or item is chunks_module._NOT_PLAIN:
                return chunks_module._NOT_PLAIN
            copied[key] = item
        return copied
    if kind is list:
        items = [_json_copy_by_calls(item, depth - 1) for item in value]
        return chunks_module._NOT_PLAIN if any(item is chunks_module._NOT_PLAIN for item in items) else items
    return chunks_module._NOT_PLAIN


_ODD_VALUES = st.one_of(
    st.binary(max_size=2), st.tuples(st.integers()), st.just(TestPlainFinish.Text("x")), st.sets(st.integers())
)
_ANY_KEYS = st.one_of(st.text(max_size=3), st.integers(), st.just(TestPlainFinish.Text("k")))
_NEARLY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3) | _ODD_VALUES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_KEYS, inner, max_size=4),
    max_leaves=16,
)


@given(_NEARLY_JSON, st.integers(0, 5))
def test_a_json_copy_takes_leaves_without_a_call_and_gives_the_same_copy(value: Any, depth: int) -> None:
    expected = _json_copy_by_calls(value, depth)
    got = chunks_module._json_copy(value, depth)
    if expected is chunks_module._NOT_PLAIN:
        assert got is chunks_module._NOT_PLAIN
    else:
        assert got == expected or (got != got and expected != expected)  # NaN
        assert repr(got) == repr(expected)
