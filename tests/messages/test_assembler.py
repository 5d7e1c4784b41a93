from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings

from genvault.errors import InvalidRequest
from genvault.messages import (
    ChunkValidationError,
    MessageAssembler,
    StreamAssemblyError,
    UIMessage,
    assemble,
    encode_message,
    merge_metadata,
    message_to_json,
    parse_chunk,
    parse_ui_message,
)
from genvault.messages import assembler as assembler_module

from .strategies import assistant_messages, streamable_assistant_messages

START: dict[str, Any] = {"type": "start", "messageId": "m"}

# Spec §2.5.10, the worked example verified with readUIMessageStream on ai@5.0.244.
WORKED_CHUNKS: list[dict[str, Any]] = [
    {"type": "start", "messageId": "m1", "messageMetadata": {"a": {"b": 1}}},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r1"},
    {"type": "reasoning-delta", "id": "r1", "delta": "think"},
    {"type": "reasoning-end", "id": "r1"},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Hel"},
    {"type": "text-delta", "id": "t1", "delta": "lo"},
    {"type": "text-end", "id": "t1"},
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "weather"},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"city":"Par'},
    {
        "type": "tool-input-available",
        "toolCallId": "c1",
        "toolName": "weather",
        "input": {"city": "Paris"},
        "providerMetadata": {"x": {"y": 1}},
    },
    {"type": "tool-output-available", "toolCallId": "c1", "output": {"t": 1}, "preliminary": True},
    {"type": "tool-output-available", "toolCallId": "c1", "output": {"t": 2}},
    {"type": "tool-input-error", "toolCallId": "c2", "toolName": "bad", "input": "{oops", "errorText": "invalid"},
    {"type": "data-w", "id": "d1", "data": {"a": 1, "b": 2}},
    {"type": "data-w", "id": "d1", "data": {"c": 3}},
    {"type": "data-n", "data": {"x": 1}, "transient": True},
    {"type": "file", "url": "data:image/png;base64,AA", "mediaType": "image/png", "providerMetadata": {"p": {"q": 1}}},
    {"type": "source-url", "sourceId": "s1", "url": "https://x"},
    {"type": "finish-step"},
    {"type": "message-metadata", "messageMetadata": {"a": {"c": 2}}},
    {"type": "finish", "finishReason": "stop", "messageMetadata": {"u": 1}},
]

WORKED_RESULT = {
    "id": "m1",
    "metadata": {"a": {"b": 1, "c": 2}, "u": 1},
    "role": "assistant",
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "id": "r1", "text": "think", "state": "done"},
        {"type": "text", "text": "Hello", "state": "done"},
        {
            "type": "tool-weather",
            "toolCallId": "c1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"t": 2},
            "callProviderMetadata": {"x": {"y": 1}},
        },
        {"type": "tool-bad", "toolCallId": "c2", "state": "output-error", "rawInput": "{oops", "errorText": "invalid"},
        {"type": "data-w", "id": "d1", "data": {"c": 3}},
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA"},
        {"type": "source-url", "sourceId": "s1", "url": "https://x"},
    ],
}


def _parts(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = message_to_json(assemble([START, *chunks]))["parts"]
    return parts


class TestSpecExamples:
    def test_the_worked_example_assembles_to_the_verified_json(self) -> None:
        assembler = MessageAssembler()
        for chunk in WORKED_CHUNKS:
            assembler.feed(chunk)
        assert message_to_json(assembler.message) == WORKED_RESULT
        assert assembler.finish_reason == "stop"
        assert assembler.finished
        assert assembler.error_text is None

    def test_mid_stream_the_tool_part_holds_the_partially_parsed_input(self) -> None:
        assembler = MessageAssembler()
        for chunk in WORKED_CHUNKS[:11]:
            assembler.feed(chunk)
        assert message_to_json(assembler.message)["parts"][-1] == {
            "type": "tool-weather",
            "toolCallId": "c1",
            "state": "input-streaming",
            "input": {"city": "Par"},
        }

    def test_the_official_server_example_assembles_to_its_on_finish_response_message(self) -> None:
        from .test_sse import VERIFIED_CHUNKS

        assembler = MessageAssembler()
        for chunk in VERIFIED_CHUNKS:
            assembler.feed(chunk)
        assert message_to_json(assembler.message) == {
            "id": "msg-1",
            "metadata": {
                "createdAt": 1,
                "totalUsage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15, "cachedInputTokens": 4},
            },
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "id": "r0", "text": "hmm", "state": "done"},
                {"type": "text", "text": "Hello", "state": "done"},
            ],
        }

    def test_the_spec_tool_sequence_assembles_a_finished_tool_call(self) -> None:
        parts = _parts(
            [
                {"type": "start-step"},
                {"type": "tool-input-start", "toolCallId": "call-1", "toolName": "tool1"},
                {"type": "tool-input-delta", "toolCallId": "call-1", "inputTextDelta": '{ "value":'},
                {"type": "tool-input-delta", "toolCallId": "call-1", "inputTextDelta": ' "value" }'},
                {
                    "type": "tool-input-available",
                    "toolCallId": "call-1",
                    "toolName": "tool1",
                    "input": {"value": "value"},
                },
                {"type": "tool-output-available", "toolCallId": "call-1", "output": "value-result"},
                {"type": "finish-step"},
            ]
        )
        assert parts[1] == {
            "type": "tool-tool1",
            "toolCallId": "call-1",
            "state": "output-available",
            "input": {"value": "value"},
            "output": "value-result",
        }


class TestClientErrors:
    @pytest.mark.parametrize(
        ("chunks", "message"),
        [
            ([{"type": "text-delta", "id": "t", "delta": "x"}], "no open text part with id 't'"),
            ([{"type": "text-end", "id": "t"}], "no open text part"),
            ([{"type": "reasoning-delta", "id": "r", "delta": "x"}], "no open reasoning part with id 'r'"),
            (
                [
                    {"type": "text-start", "id": "t"},
                    {"type": "finish-step"},
                    {"type": "text-delta", "id": "t", "delta": "x"},
                ],
                "forgotten at finish-step",
            ),
            (
                [{"type": "text-start", "id": "t"}, {"type": "text-end", "id": "t"}, {"type": "text-end", "id": "t"}],
                "text-end",
            ),
            (
                [{"type": "reasoning-start", "id": "t"}, {"type": "text-delta", "id": "t", "delta": "x"}],
                "no open text part",
            ),
            ([{"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "{"}], "send tool-input-start"),
            (
                [{"type": "tool-output-available", "toolCallId": "c", "output": 1}],
                "tool-output-error must be preceded by a tool-input-available",
            ),
            ([{"type": "tool-output-error", "toolCallId": "c", "errorText": "e"}], "must be preceded"),
            (
                [
                    {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 1},
                    {"type": "tool-output-available", "toolCallId": "c", "output": 1, "dynamic": True},
                ],
                "no dynamic-tool part",
            ),
        ],
    )
    def test_chunks_the_client_throws_on_raise_a_located_error(
        self, chunks: list[dict[str, Any]], message: str
    ) -> None:
        assembler = MessageAssembler()
        for chunk in chunks[:-1]:
            assembler.feed(chunk)
        with pytest.raises(StreamAssemblyError, match=message) as info:
            assembler.feed(chunks[-1])
        assert isinstance(info.value, InvalidRequest)
        assert info.value.chunk_index == len(chunks) - 1
        assert str(info.value).startswith(f"chunk {len(chunks) - 1} ({chunks[-1]['type']})")

    def test_a_failed_chunk_leaves_the_message_unchanged(self) -> None:
        assembler = MessageAssembler()
        for chunk in WORKED_CHUNKS[:9]:
            assembler.feed(chunk)
        before = assembler.message
        with pytest.raises(StreamAssemblyError):
            assembler.feed({"type": "text-delta", "id": "t1", "delta": "!"})
        assert assembler.message == before
        assembler.feed({"type": "text-start", "id": "t1"})  # and it keeps working
        assert len(assembler.message.parts) == len(before.parts) + 1

    def test_an_invalid_chunk_is_rejected_with_its_position(self) -> None:
        assembler = MessageAssembler()
        assembler.feed(START)
        with pytest.raises(ChunkValidationError, match=r"chunk 1: invalid text-start chunk"):
            assembler.feed({"type": "text-start", "id": "a", "providerMetadata": None})

    def test_an_error_chunk_is_recorded_and_assembly_continues(self) -> None:
        assembler = MessageAssembler()
        for chunk in [
            START,
            {"type": "start-step"},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "partial"},
            {"type": "error", "errorText": "An error occurred."},
            {"type": "finish-step"},
            {"type": "finish", "finishReason": "error"},
        ]:
            assembler.feed(chunk)
        assert assembler.error_text == "An error occurred."
        assert assembler.finish_reason == "error"
        assert message_to_json(assembler.message)["parts"][1] == {
            "type": "text",
            "text": "partial",
            "state": "streaming",
        }

    def test_an_abort_chunk_is_recorded_without_changing_the_message(self) -> None:
        assembler = MessageAssembler()
        assembler.feed(START)
        before = assembler.message
        assembler.feed({"type": "abort"})
        assert assembler.aborted
        assert not assembler.finished
        assert assembler.message == before


class TestMessageIdentity:
    def test_without_a_start_message_id_the_given_default_id_is_used(self) -> None:
        assert assemble([{"type": "start"}]).id == ""
        assembler = MessageAssembler(message_id="gen_1")
        assembler.feed({"type": "start-step"})
        assert assembler.message.id == "gen_1"

    def test_start_message_id_overwrites_the_id_even_when_continuing(self) -> None:
        previous = parse_ui_message({"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "old"}]})
        message = assemble([{"type": "start", "messageId": "NEW"}], start=previous)
        assert message.id == "NEW"
        assert message_to_json(message)["parts"] == [{"type": "text", "text": "old"}]

    def test_continuing_an_assistant_message_appends_to_its_parts_and_merges_metadata(self) -> None:
        previous = parse_ui_message(
            {
                "id": "a1",
                "role": "assistant",
                "metadata": {"createdAt": 1, "n": {"x": 1}},
                "parts": [
                    {"type": "step-start"},
                    {"type": "tool-ask", "toolCallId": "c1", "state": "output-available", "input": {}, "output": "yes"},
                ],
            }
        )
        chunks: list[dict[str, Any]] = [
            {"type": "start", "messageId": "a1", "messageMetadata": {"n": {"y": 2}}},
            {"type": "start-step"},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "new"},
            {"type": "text-end", "id": "t"},
        ]
        assert message_to_json(assemble(chunks, start=previous)) == {
            "id": "a1",
            "role": "assistant",
            "metadata": {"createdAt": 1, "n": {"x": 1, "y": 2}},
            "parts": [
                {"type": "step-start"},
                {"type": "tool-ask", "toolCallId": "c1", "state": "output-available", "input": {}, "output": "yes"},
                {"type": "step-start"},
                {"type": "text", "text": "new", "state": "done"},
            ],
        }

    def test_only_an_assistant_message_can_be_continued(self) -> None:
        user = parse_ui_message({"id": "u", "role": "user", "parts": [{"type": "text", "text": "hi"}]})
        with pytest.raises(ValueError, match="assistant"):
            MessageAssembler(user)


class TestMetadata:
    def test_objects_merge_deeply_while_arrays_and_primitives_are_replaced(self) -> None:
        base = {"a": {"b": 1, "list": [1, 2]}, "s": "x", "keep": True}
        override = {"a": {"c": 2, "list": [3]}, "s": {"now": "object"}, "n": None}
        assert merge_metadata(base, override) == {
            "a": {"b": 1, "c": 2, "list": [3]},
            "s": {"now": "object"},
            "keep": True,
            "n": None,
        }

    def test_prototype_pollution_keys_are_ignored_when_merging(self) -> None:
        merged = merge_metadata({"a": 1}, {"__proto__": {"x": 1}, "constructor": 1, "prototype": 2, "b": 2})
        assert merged == {"a": 1, "b": 2}

    def test_merging_never_mutates_earlier_values(self) -> None:
        base = {"a": {"b": 1}}
        snapshot = copy.deepcopy(base)
        merge_metadata(base, {"a": {"c": 2}})
        assert base == snapshot

    def test_null_metadata_in_chunks_is_ignored_and_first_metadata_is_taken_as_is(self) -> None:
        message = assemble(
            [
                {"type": "start", "messageMetadata": None},
                {"type": "message-metadata", "messageMetadata": {"__proto__": 1}},
                {"type": "finish", "messageMetadata": None},
            ]
        )
        assert message.metadata == {"__proto__": 1}

    def test_a_non_object_on_either_side_replaces_the_other(self) -> None:
        assert assemble(
            [{"type": "start", "messageMetadata": [1]}, {"type": "finish", "messageMetadata": {"a": 1}}]
        ).metadata == {"a": 1}
        assert (
            assemble(
                [{"type": "start", "messageMetadata": {"a": 1}}, {"type": "finish", "messageMetadata": "x"}]
            ).metadata
            == "x"
        )


class TestTextAndReasoning:
    def test_provider_metadata_is_replaced_by_the_last_chunk_that_carries_it(self) -> None:
        parts = _parts(
            [
                {"type": "text-start", "id": "t", "providerMetadata": {"p": {"v": 1}}},
                {"type": "text-delta", "id": "t", "delta": "a"},
                {"type": "text-delta", "id": "t", "delta": "b", "providerMetadata": {"p": {"v": 2}}},
                {"type": "text-end", "id": "t"},
                {"type": "reasoning-start", "id": "r"},
                {"type": "reasoning-end", "id": "r", "providerMetadata": {"anthropic": {"signature": "s"}}},
            ]
        )
        assert parts == [
            {"type": "text", "text": "ab", "state": "done", "providerMetadata": {"p": {"v": 2}}},
            {
                "type": "reasoning",
                "id": "r",
                "text": "",
                "state": "done",
                "providerMetadata": {"anthropic": {"signature": "s"}},
            },
        ]

    def test_reusing_an_id_after_its_end_starts_a_new_part(self) -> None:
        parts = _parts(
            [
                {"type": "text-start", "id": "t"},
                {"type": "text-end", "id": "t"},
                {"type": "text-start", "id": "t"},
                {"type": "text-delta", "id": "t", "delta": "again"},
            ]
        )
        assert parts == [
            {"type": "text", "text": "", "state": "done"},
            {"type": "text", "text": "again", "state": "streaming"},
        ]

    def test_interleaved_text_parts_grow_independently(self) -> None:
        parts = _parts(
            [
                {"type": "text-start", "id": "a"},
                {"type": "text-start", "id": "b"},
                {"type": "text-delta", "id": "b", "delta": "B"},
                {"type": "text-delta", "id": "a", "delta": "A"},
                {"type": "text-end", "id": "a"},
            ]
        )
        assert parts == [
            {"type": "text", "text": "A", "state": "done"},
            {"type": "text", "text": "B", "state": "streaming"},
        ]

    def test_earlier_snapshots_do_not_change_when_more_chunks_arrive(self) -> None:
        assembler = MessageAssembler()
        assembler.feed({"type": "start", "messageMetadata": {"a": {"b": 1}}})
        assembler.feed({"type": "text-start", "id": "t"})
        assembler.feed({"type": "text-delta", "id": "t", "delta": "one"})
        first = assembler.message
        first_json = copy.deepcopy(message_to_json(first))
        assembler.feed({"type": "text-delta", "id": "t", "delta": " two"})
        assembler.feed({"type": "message-metadata", "messageMetadata": {"a": {"c": 2}}})
        assert message_to_json(first) == first_json
        assert message_to_json(assembler.message)["parts"][0]["text"] == "one two"


class TestTools:
    def test_provider_executed_once_set_is_kept_until_a_chunk_says_otherwise(self) -> None:
        parts = _parts(
            [
                {"type": "tool-input-start", "toolCallId": "c", "toolName": "search", "providerExecuted": True},
                {"type": "tool-input-available", "toolCallId": "c", "toolName": "search", "input": {}},
                {"type": "tool-output-available", "toolCallId": "c", "output": []},
            ]
        )
        assert parts[0]["providerExecuted"] is True

    def test_call_metadata_is_only_copied_onto_an_existing_part_by_input_available(self) -> None:
        parts = _parts(
            [
                {"type": "tool-input-start", "toolCallId": "c", "toolName": "t"},
                {
                    "type": "tool-input-error",
                    "toolCallId": "c",
                    "toolName": "t",
                    "input": 1,
                    "errorText": "e",
                    "providerMetadata": {"p": {}},
                },
                {
                    "type": "tool-input-error",
                    "toolCallId": "d",
                    "toolName": "t",
                    "input": 1,
                    "errorText": "e",
                    "providerMetadata": {"p": {}},
                },
            ]
        )
        assert "callProviderMetadata" not in parts[0]
        assert parts[1]["callProviderMetadata"] == {"p": {}}

    def test_an_invalid_static_call_keeps_its_input_in_raw_input_and_an_output_error_keeps_it(self) -> None:
        parts = _parts(
            [
                {"type": "tool-input-start", "toolCallId": "c", "toolName": "t"},
                {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"a":'},
                {
                    "type": "tool-input-error",
                    "toolCallId": "c",
                    "toolName": "t",
                    "input": '{"a":',
                    "errorText": "bad json",
                },
                {"type": "tool-output-error", "toolCallId": "c", "errorText": "still bad"},
            ]
        )
        assert parts == [
            {
                "type": "tool-t",
                "toolCallId": "c",
                "state": "output-error",
                "rawInput": '{"a":',
                "errorText": "still bad",
            }
        ]

    def test_a_later_chunk_clears_every_field_it_does_not_carry(self) -> None:
        parts = _parts(
            [
                {"type": "tool-input-error", "toolCallId": "c", "toolName": "t", "input": "{", "errorText": "bad"},
                {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": {"fixed": True}},
            ]
        )
        assert parts == [{"type": "tool-t", "toolCallId": "c", "state": "input-available", "input": {"fixed": True}}]
        parts = _parts(
            [
                {"type": "tool-input-error", "toolCallId": "c", "toolName": "t", "input": "{", "errorText": "bad"},
                {"type": "tool-output-available", "toolCallId": "c", "output": 1, "preliminary": True},
                {"type": "tool-output-error", "toolCallId": "c", "errorText": "late"},
            ]
        )
        assert parts == [{"type": "tool-t", "toolCallId": "c", "state": "output-error", "errorText": "late"}]

    def test_an_invalid_dynamic_call_keeps_its_input_in_input(self) -> None:
        parts = _parts(
            [
                {
                    "type": "tool-input-error",
                    "toolCallId": "c",
                    "toolName": "mcp",
                    "input": "x",
                    "errorText": "e",
                    "dynamic": True,
                }
            ]
        )
        assert parts == [
            {
                "type": "dynamic-tool",
                "toolName": "mcp",
                "toolCallId": "c",
                "state": "output-error",
                "input": "x",
                "errorText": "e",
            }
        ]

    def test_a_final_output_clears_preliminary_and_replaces_the_output(self) -> None:
        parts = _parts(
            [
                {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 1, "dynamic": True},
                {
                    "type": "tool-output-available",
                    "toolCallId": "c",
                    "output": "1/2",
                    "preliminary": True,
                    "dynamic": True,
                },
            ]
        )
        assert parts[0]["preliminary"] is True
        assert parts[0]["output"] == "1/2"
        parts = _parts(
            [
                {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 1, "dynamic": True},
                {
                    "type": "tool-output-available",
                    "toolCallId": "c",
                    "output": "1/2",
                    "preliminary": True,
                    "dynamic": True,
                },
                {"type": "tool-output-available", "toolCallId": "c", "output": "done", "dynamic": True},
            ]
        )
        assert parts == [
            {
                "type": "dynamic-tool",
                "toolName": "t",
                "toolCallId": "c",
                "state": "output-available",
                "input": 1,
                "output": "done",
            }
        ]

    def test_a_call_id_reused_in_a_later_step_makes_a_new_part_and_outputs_go_to_the_latest(self) -> None:
        parts = _parts(
            [
                {"type": "start-step"},
                {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 1},
                {"type": "finish-step"},
                {"type": "start-step"},
                {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 2},
                {"type": "finish-step"},
                {"type": "start-step"},
                {"type": "tool-output-available", "toolCallId": "c", "output": "for 2"},
            ]
        )
        assert [p.get("input") for p in parts if p["type"] == "tool-t"] == [1, 2]
        assert [p.get("output") for p in parts if p["type"] == "tool-t"] == [None, "for 2"]

    def test_an_output_may_answer_a_call_from_a_continued_message(self) -> None:
        previous = parse_ui_message(
            {
                "id": "a",
                "role": "assistant",
                "parts": [{"type": "tool-t", "toolCallId": "c", "state": "input-available", "input": 1}],
            }
        )
        message = assemble(
            [{"type": "start-step"}, {"type": "tool-output-available", "toolCallId": "c", "output": 2}], start=previous
        )
        assert message_to_json(message)["parts"][0]["output"] == 2

    def test_streamed_input_is_parsed_best_effort_and_unparsable_text_leaves_no_input(self) -> None:
        assembler = MessageAssembler()
        assembler.feed({"type": "tool-input-start", "toolCallId": "c", "toolName": "t"})
        assembler.feed({"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "nope"})
        assert "input" not in message_to_json(assembler.message)["parts"][0]
        assembler.feed({"type": "tool-input-start", "toolCallId": "c", "toolName": "t"})  # starts over
        assembler.feed({"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '[1, {"a": "b'})
        assert message_to_json(assembler.message)["parts"] == [
            {"type": "tool-t", "toolCallId": "c", "state": "input-streaming", "input": [1, {"a": "b"}]}
        ]


class TestDataSourcesFiles:
    def test_data_parts_with_the_same_type_and_id_are_replaced_wherever_they_are(self) -> None:
        parts = _parts(
            [
                {"type": "data-w", "id": "1", "data": {"a": 1}},
                {"type": "start-step"},
                {"type": "data-w", "id": "1", "data": {"b": 2}},
                {"type": "data-v", "id": "1", "data": "other type"},
                {"type": "data-w", "data": "no id"},
                {"type": "data-w", "data": "no id"},
            ]
        )
        assert parts == [
            {"type": "data-w", "id": "1", "data": {"b": 2}},
            {"type": "step-start"},
            {"type": "data-v", "id": "1", "data": "other type"},
            {"type": "data-w", "data": "no id"},
            {"type": "data-w", "data": "no id"},
        ]

    def test_transient_data_never_becomes_a_part_but_transient_false_is_kept(self) -> None:
        parts = _parts(
            [
                {"type": "data-status", "data": "thinking", "transient": True},
                {"type": "data-status", "data": "kept", "transient": False},
            ]
        )
        assert parts == [{"type": "data-status", "data": "kept", "transient": False}]

    def test_files_and_sources_are_appended_and_a_file_drops_the_chunk_metadata(self) -> None:
        parts = _parts(
            [
                {"type": "file", "url": "https://f", "mediaType": "image/png", "providerMetadata": {"p": {}}},
                {
                    "type": "source-document",
                    "sourceId": "s",
                    "mediaType": "application/pdf",
                    "title": "T",
                    "filename": "t.pdf",
                },
                {"type": "source-url", "sourceId": "s", "url": "https://x", "title": "X"},
                {"type": "source-url", "sourceId": "s", "url": "https://x", "title": "X"},
            ]
        )
        assert parts == [
            {"type": "file", "mediaType": "image/png", "url": "https://f"},
            {
                "type": "source-document",
                "sourceId": "s",
                "mediaType": "application/pdf",
                "title": "T",
                "filename": "t.pdf",
            },
            {"type": "source-url", "sourceId": "s", "url": "https://x", "title": "X"},
            {"type": "source-url", "sourceId": "s", "url": "https://x", "title": "X"},
        ]


class TestEncodeMessage:
    def test_the_worked_example_result_encodes_to_chunks_that_assemble_back(self) -> None:
        message = parse_ui_message(WORKED_RESULT)
        chunks = encode_message(message, finish_reason="stop")
        assert chunks[0] == {"type": "start", "messageMetadata": {"a": {"b": 1, "c": 2}, "u": 1}, "messageId": "m1"}
        assert chunks[-1] == {"type": "finish", "finishReason": "stop"}
        assert assemble(chunks) == message

    def test_only_assistant_messages_are_encoded(self) -> None:
        with pytest.raises(ValueError, match="assistant"):
            encode_message(parse_ui_message({"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}]}))

    def test_messages_outside_the_stream_image_come_back_normalized(self) -> None:
        message = parse_ui_message(
            {
                "id": "m",
                "role": "assistant",
                "metadata": None,
                "parts": [
                    {"type": "text", "text": "no state"},
                    {"type": "reasoning", "text": "no id", "state": "done"},
                    {"type": "file", "mediaType": "a/b", "url": "u", "filename": "f", "providerMetadata": {"p": {}}},
                ],
            }
        )
        assert message_to_json(assemble(encode_message(message))) == {
            "id": "m",
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "no state", "state": "done"},
                {"type": "reasoning", "id": "r1", "text": "no id", "state": "done"},
                {"type": "file", "mediaType": "a/b", "url": "u"},
            ],
        }

    @settings(max_examples=300, deadline=None)
    @given(streamable_assistant_messages())
    def test_assembling_the_encoding_of_a_streamable_message_gives_it_back(self, message: UIMessage) -> None:
        assert assemble(encode_message(message)) == message

    @settings(max_examples=150, deadline=None)
    @given(assistant_messages())
    def test_encoding_normalizes_any_assistant_message_idempotently(self, message: UIMessage) -> None:
        once = assemble(encode_message(message))
        assert assemble(encode_message(once)) == once

    @settings(max_examples=100, deadline=None)
    @given(streamable_assistant_messages())
    def test_a_snapshot_after_each_chunk_equals_assembling_that_prefix_afresh(self, message: UIMessage) -> None:
        chunks = encode_message(message)
        assembler = MessageAssembler()
        for end, chunk in enumerate(chunks, start=1):
            assembler.feed(chunk)
            if end % 3 == 0 or end == len(chunks):  # snapshots are cached; take them at varying points
                assert assembler.message == assemble(chunks[:end])

    @settings(max_examples=100, deadline=None)
    @given(streamable_assistant_messages())
    def test_the_checkpoint_json_after_each_chunk_is_the_json_of_the_message_snapshot(self, message: UIMessage) -> None:
        chunks = encode_message(message)
        assembler = MessageAssembler()
        for end, chunk in enumerate(chunks, start=1):
            assembler.feed(chunk)
            if end % 2 == 0 or end == len(chunks):  # the JSON is cached too: at varying points
                expected = message_to_json(assemble(chunks[:end]))
                assert assembler.message_json() == expected
                assert json.dumps(assembler.message_json()) == json.dumps(expected)  # same keys, same order
                if end % 4 == 0:  # the model's cache and the JSON's agree whichever is taken first
                    assert message_to_json(assembler.message) == expected

    def test_the_checkpoint_json_keeps_a_continued_messages_metadata_and_parts(self) -> None:
        start = parse_ui_message(
            {"id": "m1", "role": "assistant", "metadata": {"a": 1}, "parts": [{"type": "text", "text": "hi"}]}
        )
        assembler = MessageAssembler(start)
        for chunk in ({"type": "reasoning-start", "id": "r1"}, {"type": "reasoning-delta", "id": "r1", "delta": "x"}):
            assembler.feed(chunk)
        assert assembler.message_json() == message_to_json(assembler.message)
        assert [json.dumps(p) for p in assembler.message_json()["parts"]] == [
            json.dumps(p) for p in message_to_json(assembler.message)["parts"]
        ]


# Plain deltas (dicts from the engine) skip chunk validation; the message and the errors must be
# those of the validating path, which a parsed model or any other mapping still takes.
def _feed_all(
    chunks: list[dict[str, Any]], wrap: Any, *, texts: bool = False
) -> tuple[dict[str, Any] | None, str | None, int | None]:
    """The message `chunks` assemble to (each through `wrap`), or the error and its chunk's index;
    with `texts`, each plain text delta goes to `feed_text` as the engine gives its own."""
    assembler = MessageAssembler(message_id="m1")
    try:
        for chunk in chunks:
            if texts and chunk["type"] == "text-delta" and len(chunk) == 3:
                assembler.feed_text(chunk["id"], chunk["delta"])
            else:
                assembler.feed(wrap(chunk))
    except StreamAssemblyError as exc:
        return None, str(exc), exc.chunk_index
    return message_to_json(assembler.message), None, None


@pytest.mark.parametrize(
    "chunks",
    [
        [
            {"type": "start-step"},
            {"type": "reasoning-start", "id": "r1"},
            {"type": "reasoning-delta", "id": "r1", "delta": "think"},
            {"type": "reasoning-end", "id": "r1"},
            {"type": "text-start", "id": "t1"},
            {"type": "text-delta", "id": "t1", "delta": "Hel"},
            {"type": "text-delta", "id": "t1", "delta": "lo"},
            {"type": "text-delta", "id": "t1", "delta": "", "providerMetadata": {"p": {"k": 1}}},
        ],
        [{"type": "start-step"}, {"type": "text-delta", "id": "t1", "delta": "no start"}],
        [
            {"type": "start-step"},
            {"type": "text-start", "id": "t1"},
            {"type": "reasoning-delta", "id": "t1", "delta": "wrong kind"},
        ],
    ],
)
def test_plain_deltas_assemble_like_validated_chunks(chunks: list[dict[str, Any]]) -> None:
    class NotPlain(dict[str, Any]):
        """A dict subclass: `plain_delta` declines it, so it is validated."""

    fast = _feed_all(chunks, dict)
    assert fast == _feed_all(chunks, NotPlain)
    assert fast == _feed_all(chunks, parse_chunk)


@pytest.mark.parametrize(
    "chunks",
    [
        [
            {"type": "start", "messageId": "m2"},
            {"type": "start-step"},
            {"type": "reasoning-start", "id": "r1"},
            {"type": "reasoning-delta", "id": "r1", "delta": "think"},
            {"type": "reasoning-end", "id": "r1"},
            {"type": "text-start", "id": "t1"},
            {"type": "text-delta", "id": "t1", "delta": "Hi"},
            {"type": "text-end", "id": "t1"},
            {"type": "finish-step"},
            {"type": "start-step"},
            {"type": "text-start", "id": "t1"},
            {"type": "text-delta", "id": "t1", "delta": "again: ids are per step"},
        ],
        [{"type": "start-step"}, {"type": "text-end", "id": "t1"}],
        [{"type": "start-step"}, {"type": "reasoning-start", "id": "r1"}, {"type": "text-end", "id": "r1"}],
        [
            {"type": "start-step"},
            {"type": "text-start", "id": "t1"},
            {"type": "finish-step"},
            {"type": "text-end", "id": "t1"},
        ],
    ],
)
def test_boundaries_assemble_like_validated_chunks_without_a_model(
    chunks: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message, or the error and the chunk it names, as the validated chunks give them.
    validated = _feed_all(chunks, parse_chunk)
    monkeypatch.setattr(assembler_module, "parse_chunk", _boundaries_unvalidated)
    assert _feed_all(chunks, dict) == validated


def _boundaries_unvalidated(obj: Any, *, strict: bool = False) -> Any:
    if obj["type"] not in ("text-delta", "reasoning-delta"):
        raise AssertionError(f"validated: {obj}")
    return parse_chunk(obj, strict=strict)


@pytest.mark.parametrize(
    "finish",
    [
        {"type": "finish"},
        {"type": "finish", "finishReason": "length"},
        {"type": "finish", "messageMetadata": None},
        {"type": "finish", "finishReason": "stop", "messageMetadata": {"genvault": {"costUsd": None, "n": [1, 2.5]}}},
    ],
)
@pytest.mark.parametrize("start", [START, {"type": "start", "messageId": "m", "messageMetadata": {"a": {"b": 1}}}])
def test_a_plain_finish_assembles_like_the_validated_chunk(
    finish: dict[str, Any], start: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fed(wrap: Any) -> tuple[Any, ...]:
        assembler = MessageAssembler()
        for chunk in (start, {"type": "start-step"}, {"type": "finish-step"}, finish):
            assembler.feed(wrap(chunk))
        return message_to_json(assembler.message), assembler.finish_reason, assembler.finished

    validated = fed(parse_chunk)
    monkeypatch.setattr(assembler_module, "parse_chunk", _finish_unvalidated)
    assert fed(dict) == validated


def _finish_unvalidated(obj: Any, *, strict: bool = False) -> Any:
    if obj["type"] == "finish":
        raise AssertionError(f"validated: {obj}")
    return parse_chunk(obj, strict=strict)


@pytest.mark.parametrize(
    "chunks",
    [
        [
            {"type": "start-step"},
            {"type": "text-start", "id": "t1"},
            {"type": "text-delta", "id": "t1", "delta": "Hel"},
            {"type": "text-delta", "id": "t1", "delta": "lo"},
            {"type": "text-end", "id": "t1"},
            {"type": "text-start", "id": "t2"},
            {"type": "text-delta", "id": "t2", "delta": "again"},
            {"type": "finish-step"},
        ],
        [{"type": "start-step"}, {"type": "text-delta", "id": "t1", "delta": "no start"}],
        [
            {"type": "start-step"},
            {"type": "reasoning-start", "id": "r1"},
            {"type": "text-delta", "id": "r1", "delta": "wrong kind"},
        ],
        [
            {"type": "start-step"},
            {"type": "text-start", "id": "t1"},
            {"type": "text-delta", "id": "t1", "delta": "a"},
            {"type": "text-delta", "id": "t1", "delta": "b"},
            {"type": "text-end", "id": "t1"},
            {"type": "text-end", "id": "t1"},  # an error: its index counts the deltas before it
        ],
    ],
)
def test_a_text_delta_given_as_id_and_text_assembles_like_its_chunk(chunks: list[dict[str, Any]]) -> None:
    assert _feed_all(chunks, dict, texts=True) == _feed_all(chunks, dict)
