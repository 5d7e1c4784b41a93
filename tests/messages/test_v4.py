from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genvault.errors import InvalidRequest
from genvault.messages import (
    V4ConversionError,
    convert_v4_messages,
    message_to_json,
    to_model_messages,
    validate_ui_messages,
)


def _json(messages: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    return [message_to_json(m) for m in convert_v4_messages(messages, **kwargs).messages]


def _call(call_id: str, state: str = "call", step: int | None = None, **extra: Any) -> dict[str, Any]:
    invocation = {"state": state, "toolCallId": call_id, "toolName": "weather", "args": {"city": "Paris"}, **extra}
    if step is not None:
        invocation["step"] = step
    return invocation


class TestSingleMessages:
    def test_content_becomes_a_text_part_and_created_at_moves_into_metadata(self) -> None:
        assert _json([{"id": "u1", "role": "user", "content": "Hi", "createdAt": "2025-01-02T03:04:05.000Z"}]) == [
            {
                "id": "u1",
                "role": "user",
                "metadata": {"createdAt": "2025-01-02T03:04:05.000Z"},
                "parts": [{"type": "text", "text": "Hi"}],
            }
        ]

    def test_attachments_become_file_parts_placed_before_the_text(self) -> None:
        message = {
            "id": "u1",
            "role": "user",
            "content": "What is this?",
            "experimental_attachments": [
                {"name": "a.png", "contentType": "image/png", "url": "https://x/a.png"},
                {"url": "data:text/plain;base64,aGk="},
                {"url": "https://x/blob"},
            ],
        }
        assert _json([message])[0]["parts"] == [
            {"type": "file", "mediaType": "image/png", "filename": "a.png", "url": "https://x/a.png"},
            {"type": "file", "mediaType": "text/plain", "url": "data:text/plain;base64,aGk="},
            {"type": "file", "mediaType": "application/octet-stream", "url": "https://x/blob"},
            {"type": "text", "text": "What is this?"},
        ]

    def test_annotations_move_into_metadata(self) -> None:
        message = {"id": "a", "role": "assistant", "content": "x", "annotations": [{"model": "gpt-4o"}]}
        assert _json([message])[0]["metadata"] == {"annotations": [{"model": "gpt-4o"}]}

    def test_tool_invocations_become_tool_parts_in_step_order_with_the_answer_in_a_new_step(self) -> None:
        message = {
            "id": "a",
            "role": "assistant",
            "content": "Sunny in Paris, rainy in Rome.",
            "reasoning": "Two cities.",
            "toolInvocations": [
                _call("c2", "result", step=1, result="rain"),
                _call("c1", "result", step=0, result="sun"),
            ],
        }
        assert _json([message])[0]["parts"] == [
            {
                "type": "tool-weather",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": "sun",
            },
            {"type": "step-start"},
            {
                "type": "tool-weather",
                "toolCallId": "c2",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": "rain",
            },
            {"type": "step-start"},
            {"type": "reasoning", "text": "Two cities."},
            {"type": "text", "text": "Sunny in Paris, rainy in Rome."},
        ]

    def test_text_beside_an_unanswered_call_stays_in_the_same_step(self) -> None:
        message = {
            "id": "a",
            "role": "assistant",
            "content": "Let me check.",
            "toolInvocations": [_call("c1", "partial-call", args={"ci": 1})],
        }
        conversion = convert_v4_messages([message])
        assert message_to_json(conversion.messages[0])["parts"] == [
            {"type": "tool-weather", "toolCallId": "c1", "state": "input-streaming", "input": {"ci": 1}},
            {"type": "text", "text": "Let me check."},
        ]
        assert "partial-call" in conversion.report[0].notes[0]

    def test_v4_parts_are_mapped_part_by_part(self) -> None:
        message = {
            "id": "a",
            "role": "assistant",
            "content": "ignored when parts exist",
            "parts": [
                {"type": "step-start"},
                {
                    "type": "reasoning",
                    "reasoning": "thinking",
                    "details": [
                        {"type": "text", "text": "thinking", "signature": "sig"},
                        {"type": "redacted", "data": "opaque"},
                    ],
                },
                {"type": "tool-invocation", "toolInvocation": _call("c1", "result", step=0, result={"t": 21})},
                {"type": "step-start"},
                {"type": "text", "text": "21°C"},
                {"type": "source", "source": {"sourceType": "url", "id": "s1", "url": "https://w", "title": "W"}},
                {"type": "file", "mimeType": "image/png", "data": "iVBOR"},
            ],
        }
        assert _json([message])[0]["parts"] == [
            {"type": "step-start"},
            {"type": "reasoning", "text": "thinking", "providerMetadata": {"anthropic": {"signature": "sig"}}},
            {"type": "reasoning", "text": "", "providerMetadata": {"anthropic": {"redactedData": "opaque"}}},
            {
                "type": "tool-weather",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"t": 21},
            },
            {"type": "step-start"},
            {"type": "text", "text": "21°C"},
            {"type": "source-url", "sourceId": "s1", "url": "https://w", "title": "W"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBOR"},
        ]

    def test_parts_without_step_starts_get_them_where_the_model_answered_results(self) -> None:
        message = {
            "id": "a",
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "Checking."},
                {"type": "tool-invocation", "toolInvocation": _call("c1", "result", result=1)},
                {"type": "reasoning", "reasoning": "ok", "details": []},
                {"type": "text", "text": "Done."},
            ],
        }
        assert [p["type"] for p in _json([message])[0]["parts"]] == [
            "text",
            "tool-weather",
            "step-start",
            "reasoning",
            "text",
        ]

    def test_parts_already_in_v5_shape_are_kept(self) -> None:
        parts = [
            {"type": "text", "text": "x", "state": "done"},
            {"type": "reasoning", "text": "r"},
            {"type": "file", "mediaType": "a/b", "url": "u"},
            {"type": "data-w", "id": "1", "data": {}},
            {"type": "tool-t", "toolCallId": "c", "state": "input-available", "input": {}},
        ]
        assert _json([{"id": "a", "role": "assistant", "parts": parts}])[0]["parts"] == parts

    def test_a_data_message_becomes_an_assistant_message_with_one_data_part_or_is_skipped(self) -> None:
        assert _json([{"id": "d", "role": "data", "content": "", "data": {"k": 1}}]) == [
            {"id": "d", "role": "assistant", "parts": [{"type": "data-custom", "data": {"k": 1}}]}
        ]
        assert _json([{"id": "d", "role": "data", "content": "c"}], data_part_type="data-legacy")[0]["parts"] == [
            {"type": "data-legacy", "data": "c"}
        ]
        skipped = convert_v4_messages([{"id": "d", "role": "data", "data": 1}], data_part_type=None)
        assert skipped.messages == []
        assert skipped.report[0].action == "skipped"

    def test_missing_ids_are_generated_without_colliding_with_existing_ids(self) -> None:
        conversion = convert_v4_messages(
            [
                {"role": "user", "content": "a"},
                {"id": "msg-0", "role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ]
        )
        assert [m.id for m in conversion.messages] == ["msg-0-2", "msg-0", "msg-2"]
        assert conversion.report[0].notes == ("no id in v4; generated msg-0-2",)
        assert conversion.report[0].source_id is None

    def test_empty_messages_are_skipped_and_reported(self) -> None:
        conversion = convert_v4_messages(
            [{"id": "u", "role": "user", "content": ""}, {"id": "a", "role": "assistant", "content": ""}]
        )
        assert conversion.messages == []
        assert [(e.action, e.reason) for e in conversion.report] == [
            ("skipped", "empty user message: no content, parts or attachments"),
            ("skipped", "empty assistant message: no content, parts or attachments"),
        ]

    def test_core_message_content_arrays_are_understood(self) -> None:
        message = {
            "id": "a",
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "t", "signature": "s"},
                {"type": "redacted-reasoning", "data": "d"},
                {"type": "text", "text": "Checking"},
                {"type": "tool-call", "toolCallId": "c1", "toolName": "weather", "args": {"city": "P"}},
            ],
        }
        assert _json([message])[0]["parts"] == [
            {"type": "reasoning", "text": "t", "providerMetadata": {"anthropic": {"signature": "s"}}},
            {"type": "reasoning", "text": "", "providerMetadata": {"anthropic": {"redactedData": "d"}}},
            {"type": "text", "text": "Checking"},
            {"type": "tool-weather", "toolCallId": "c1", "state": "input-available", "input": {"city": "P"}},
        ]


class TestMergingTurns:
    def test_a_later_assistant_message_carrying_the_result_merges_into_the_call(self) -> None:
        conversion = convert_v4_messages(
            [
                {"id": "u", "role": "user", "content": "weather?"},
                {"id": "a1", "role": "assistant", "content": "", "toolInvocations": [_call("c1", step=0)]},
                {
                    "id": "a2",
                    "role": "assistant",
                    "content": "",
                    "toolInvocations": [_call("c1", "result", step=0, result="sun")],
                },
                {"id": "a3", "role": "assistant", "content": "It is sunny.", "createdAt": "later"},
                {"id": "u2", "role": "user", "content": "thanks"},
            ]
        )
        assert [message_to_json(m) for m in conversion.messages][1] == {
            "id": "a1",
            "role": "assistant",
            "metadata": {"createdAt": "later"},
            "parts": [
                {
                    "type": "tool-weather",
                    "toolCallId": "c1",
                    "state": "output-available",
                    "input": {"city": "Paris"},
                    "output": "sun",
                },
                {"type": "step-start"},
                {"type": "text", "text": "It is sunny."},
            ],
        }
        assert [(e.action, e.source_id, e.target_id) for e in conversion.report] == [
            ("converted", "u", "u"),
            ("converted", "a1", "a1"),
            ("merged", "a2", "a1"),
            ("merged", "a3", "a1"),
            ("converted", "u2", "u2"),
        ]
        assert "shares tool call c1" in conversion.report[2].reason

    def test_tool_role_messages_merge_their_results_and_the_answer_follows_in_a_new_step(self) -> None:
        conversion = convert_v4_messages(
            [
                {
                    "id": "a1",
                    "role": "assistant",
                    "content": [
                        {"type": "tool-call", "toolCallId": "c1", "toolName": "w", "args": {}},
                        {"type": "tool-call", "toolCallId": "c2", "toolName": "w", "args": {}},
                    ],
                },
                {
                    "id": "t1",
                    "role": "tool",
                    "content": [
                        {"type": "tool-result", "toolCallId": "c1", "toolName": "w", "result": {"t": 1}},
                        {"type": "tool-result", "toolCallId": "c2", "toolName": "w", "result": "down", "isError": True},
                        {"type": "tool-result", "toolCallId": "zz", "toolName": "w", "result": 0},
                    ],
                },
                {"id": "a2", "role": "assistant", "content": "One worked."},
            ]
        )
        assert message_to_json(conversion.messages[0])["parts"] == [
            {"type": "tool-w", "toolCallId": "c1", "state": "output-available", "input": {}, "output": {"t": 1}},
            {"type": "tool-w", "toolCallId": "c2", "state": "output-error", "input": {}, "errorText": "down"},
            {"type": "step-start"},
            {"type": "text", "text": "One worked."},
        ]
        merged = conversion.report[1]
        assert (merged.action, merged.target_id) == ("merged", "a1")
        assert merged.notes == ("result for unknown call zz dropped",)

    def test_tool_results_without_a_matching_call_are_skipped(self) -> None:
        results = {
            "role": "tool",
            "content": [{"type": "tool-result", "toolCallId": "c9", "toolName": "w", "result": 1}],
        }
        conversion = convert_v4_messages([{"id": "u", "role": "user", "content": "x"}, results])
        assert conversion.report[1].action == "skipped"
        assert "no assistant message before them" in conversion.report[1].reason
        conversion = convert_v4_messages([{"id": "a", "role": "assistant", "content": "x"}, results])
        assert conversion.report[1].reason == "no tool call in a matches c9"

    def test_consecutive_assistant_messages_of_different_turns_stay_apart(self) -> None:
        conversion = convert_v4_messages(
            [{"id": "a1", "role": "assistant", "content": "one"}, {"id": "a2", "role": "assistant", "content": "two"}]
        )
        assert [m.id for m in conversion.messages] == ["a1", "a2"]

    def test_a_merged_history_validates_and_converts_like_a_native_v5_chat(self) -> None:
        conversion = convert_v4_messages(
            [
                {"id": "u", "role": "user", "content": "weather?"},
                {"id": "a1", "role": "assistant", "content": "", "toolInvocations": [_call("c1")]},
                {
                    "role": "tool",
                    "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "weather", "result": "sun"}],
                },
                {"role": "assistant", "content": "Sunny."},
            ]
        )
        messages = validate_ui_messages(conversion.messages)
        assert to_model_messages(messages) == [
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool-call", "toolCallId": "c1", "toolName": "weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "tool",
                "content": [
                    {
                        "type": "tool-result",
                        "toolCallId": "c1",
                        "toolName": "weather",
                        "output": {"type": "text", "value": "sun"},
                    }
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]},
        ]


class TestMalformedInput:
    @pytest.mark.parametrize(
        ("messages", "location"),
        [
            ({"id": "x"}, "messages"),
            ("text", "messages"),
            ([["not", "an", "object"]], "messages[0]"),
            ([{"id": "a", "content": "x"}], "messages[0].role"),
            ([{"role": "function", "content": "x"}], "messages[0].role"),
            ([{"role": "user", "id": 5, "content": "x"}], "messages[0].id"),
            (
                [{"role": "assistant", "toolInvocations": [{"state": "call", "toolName": "w"}]}],
                "messages[0].toolInvocations[0].toolCallId",
            ),
            (
                [{"role": "assistant", "toolInvocations": [{"state": "done", "toolCallId": "c", "toolName": "w"}]}],
                "messages[0].toolInvocations[0].state",
            ),
            ([{"role": "assistant", "toolInvocations": {"a": 1}}], "messages[0].toolInvocations"),
            ([{"role": "assistant", "parts": "text"}], "messages[0].parts"),
            ([{"role": "assistant", "parts": [{"type": "tool-invocation"}]}], "messages[0].parts[0].toolInvocation"),
            (
                [{"role": "assistant", "parts": [{"type": "reasoning", "reasoning": "r", "details": [{"type": "?"}]}]}],
                "messages[0].parts[0].details[0].type",
            ),
            ([{"role": "assistant", "parts": [{"type": "mystery"}]}], "messages[0].parts[0]"),
            ([{"role": "user", "content": 5}], "messages[0].content"),
            (
                [{"role": "user", "content": "x", "experimental_attachments": [{"name": "a"}]}],
                "messages[0].experimental_attachments[0].url",
            ),
            ([{"role": "user", "content": "x", "createdAt": {"$date": 1}}], "messages[0].createdAt"),
            ([{"role": "tool", "content": "result"}], "messages[0].content"),
            (
                [{"role": "tool", "content": [{"type": "tool-result", "result": 1}]}],
                "messages[0].content[0].toolCallId",
            ),
        ],
    )
    def test_malformed_input_raises_naming_the_message_and_field(self, messages: Any, location: str) -> None:
        with pytest.raises(V4ConversionError) as info:
            convert_v4_messages(messages)
        assert info.value.location == location
        assert str(info.value).startswith(location + ": ")
        assert isinstance(info.value, InvalidRequest)


_v4_messages = st.lists(
    st.one_of(
        st.builds(lambda t: {"role": "user", "content": t}, st.text(max_size=5)),
        st.builds(lambda t: {"role": "assistant", "content": t}, st.text(max_size=5)),
        st.builds(
            lambda i, s: {"role": "assistant", "content": "", "toolInvocations": [_call(f"c{i}", s)]},
            st.integers(0, 3),
            st.sampled_from(["partial-call", "call", "result"]),
        ),
        st.builds(
            lambda i: {
                "role": "tool",
                "content": [{"type": "tool-result", "toolCallId": f"c{i}", "toolName": "weather", "result": i}],
            },
            st.integers(0, 3),
        ),
        st.just({"role": "data", "data": 1}),
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(_v4_messages)
def test_every_v4_message_is_reported_exactly_once_and_the_output_is_valid(messages: list[dict[str, Any]]) -> None:
    conversion = convert_v4_messages(messages)
    assert [entry.index for entry in conversion.report] == list(range(len(messages)))
    converted = [entry.target_id for entry in conversion.entries("converted")]
    assert converted == [m.id for m in conversion.messages]
    assert len(set(converted)) == len(converted)
    for entry in conversion.entries("merged"):
        assert entry.target_id in converted
    if conversion.messages:
        validate_ui_messages(conversion.messages)


def test_every_malformed_message_is_reported_not_just_the_first() -> None:
    with pytest.raises(V4ConversionError) as info:
        convert_v4_messages(
            [
                {"id": "a", "content": "no role"},
                {"id": "b", "role": "user", "content": "fine"},
                {"id": "c", "role": "robot", "content": "x"},
            ]
        )
    assert [where for where, _ in info.value.problems] == ["messages[0].role", "messages[2].role"]
    assert info.value.location == "messages[0].role"
    assert str(info.value).startswith("2 problems with the v4 messages:")
    assert "  - messages[2].role: unknown role 'robot'" in str(info.value)
