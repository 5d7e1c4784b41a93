from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genvault.errors import InvalidRequest
from genvault.messages import (
    ABSENT,
    DataPart,
    DynamicToolPart,
    MessageValidationError,
    TextPart,
    ToolPart,
    UIMessage,
    data_name_of,
    is_data_part,
    is_static_tool_part,
    is_tool_part,
    message_to_json,
    parse_part,
    parse_ui_message,
    part_to_json,
    tool_name_of,
)

from .strategies import ui_message_jsons

# Spec §1.3, verbatim.
SPEC_ASSISTANT = {
    "id": "msg_a1B2c3D4e5F6g7H8",
    "role": "assistant",
    "metadata": {"createdAt": 1735600000000},
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "text": "User wants weather…", "state": "done"},
        {
            "type": "tool-getWeather",
            "toolCallId": "call_1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"tempC": 21},
        },
        {"type": "step-start"},
        {"type": "text", "text": "It is 21°C in Paris.", "state": "done"},
        {"type": "data-weather", "id": "w1", "data": {"city": "Paris", "status": "done"}},
    ],
}


def _message(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "m", "role": "assistant", **extra, "parts": list(parts)}


class TestRoundTrip:
    def test_the_spec_example_message_comes_back_as_the_same_json(self) -> None:
        assert message_to_json(parse_ui_message(SPEC_ASSISTANT)) == SPEC_ASSISTANT

    def test_a_user_message_as_sent_by_send_message_round_trips(self) -> None:
        user = {
            "id": "u1",
            "role": "user",
            "parts": [
                {"type": "file", "mediaType": "image/png", "filename": "a.png", "url": "data:image/png;base64,AA"},
                {"type": "text", "text": "What is this?"},
            ],
        }
        assert message_to_json(parse_ui_message(user)) == user

    @settings(max_examples=300, deadline=None)
    @given(ui_message_jsons())
    def test_any_valid_message_json_round_trips_with_the_same_keys(self, message: dict[str, Any]) -> None:
        original = copy.deepcopy(message)
        parsed = parse_ui_message(message)
        assert message_to_json(parsed) == original
        assert json.dumps(message_to_json(parsed), sort_keys=True) == json.dumps(original, sort_keys=True)
        assert parse_ui_message(message_to_json(parsed)) == parsed

    def test_model_dump_and_model_dump_json_give_the_wire_json(self) -> None:
        message = parse_ui_message(SPEC_ASSISTANT)
        assert message.model_dump() == SPEC_ASSISTANT
        assert json.loads(message.model_dump_json()) == SPEC_ASSISTANT
        assert UIMessage.model_validate_json(json.dumps(SPEC_ASSISTANT)) == message


class TestAbsentAndNull:
    @pytest.mark.parametrize(
        ("part", "key"),
        [
            ({"type": "tool-x", "toolCallId": "c", "state": "input-available", "input": None}, "input"),
            ({"type": "tool-x", "toolCallId": "c", "state": "output-available", "output": None}, "output"),
            (
                {"type": "tool-x", "toolCallId": "c", "state": "output-error", "rawInput": None, "errorText": "e"},
                "rawInput",
            ),
            ({"type": "data-x", "data": None}, "data"),
            (
                {"type": "dynamic-tool", "toolName": "t", "toolCallId": "c", "state": "input-available", "input": None},
                "input",
            ),
        ],
    )
    def test_null_in_an_unknown_typed_field_is_kept_as_present_null(self, part: dict[str, Any], key: str) -> None:
        parsed = parse_part(part)
        assert part_to_json(parsed)[key] is None
        assert part_to_json(parsed) == part

    def test_an_absent_unknown_field_stays_absent_and_differs_from_null(self) -> None:
        absent = parse_part({"type": "tool-x", "toolCallId": "c", "state": "input-available"})
        null = parse_part({"type": "tool-x", "toolCallId": "c", "state": "input-available", "input": None})
        assert isinstance(absent, ToolPart)
        assert absent.input is ABSENT
        assert "input" not in part_to_json(absent)
        assert absent != null

    def test_message_metadata_distinguishes_absent_null_and_a_value(self) -> None:
        assert "metadata" not in message_to_json(parse_ui_message(_message()))
        assert message_to_json(parse_ui_message(_message(metadata=None)))["metadata"] is None
        assert parse_ui_message(_message(metadata=None)).metadata is None
        assert parse_ui_message(_message()).metadata is ABSENT
        assert message_to_json(parse_ui_message(_message(metadata=[1, "x"])))["metadata"] == [1, "x"]

    @pytest.mark.parametrize(
        ("part", "field"),
        [
            ({"type": "text", "text": "a", "state": None}, "state"),
            ({"type": "text", "text": "a", "providerMetadata": None}, "providerMetadata"),
            ({"type": "reasoning", "text": "a", "id": None}, "id"),
            ({"type": "file", "mediaType": "a/b", "url": "u", "filename": None}, "filename"),
            ({"type": "source-url", "sourceId": "s", "url": "u", "title": None}, "title"),
            (
                {"type": "source-document", "sourceId": "s", "mediaType": "m", "title": "t", "filename": None},
                "filename",
            ),
            ({"type": "data-x", "data": 1, "id": None}, "id"),
            ({"type": "data-x", "data": 1, "transient": None}, "transient"),
            (
                {"type": "tool-x", "toolCallId": "c", "state": "input-available", "providerExecuted": None},
                "providerExecuted",
            ),
            (
                {"type": "tool-x", "toolCallId": "c", "state": "input-available", "callProviderMetadata": None},
                "callProviderMetadata",
            ),
            ({"type": "tool-x", "toolCallId": "c", "state": "output-available", "preliminary": None}, "preliminary"),
            ({"type": "tool-x", "toolCallId": "c", "state": "output-error", "errorText": None}, "errorText"),
            (
                {"type": "dynamic-tool", "toolName": "t", "toolCallId": "c", "state": "input-available", "title": None},
                "title",
            ),
        ],
    )
    def test_null_for_an_optional_field_is_rejected_with_its_location(self, part: dict[str, Any], field: str) -> None:
        with pytest.raises(MessageValidationError) as info:
            parse_ui_message(_message({"type": "step-start"}, part))
        assert f"parts[1].{field}" in str(info.value)
        assert "omitted rather than null" in str(info.value)

    def test_python_constructors_take_none_as_absent(self) -> None:
        part = TextPart(text="hi", state=None, provider_metadata=None)
        assert part_to_json(part) == {"type": "text", "text": "hi"}
        tool = ToolPart(
            type="tool-x", tool_call_id="c", state="input-available", input=None, call_provider_metadata=None
        )
        assert part_to_json(tool) == {"type": "tool-x", "toolCallId": "c", "state": "input-available", "input": None}
        assert part_to_json(DataPart(type="data-x", data=ABSENT)) == {"type": "data-x"}


class TestStructure:
    def test_unknown_keys_in_messages_and_parts_are_stripped(self) -> None:
        message = {
            "id": "m",
            "role": "user",
            "createdAt": "2025-01-01",
            "content": "legacy",
            "parts": [
                {"type": "text", "text": "hi", "extra": 1},
                {"type": "file", "mediaType": "a/b", "url": "u", "name": "chatbot-template-field"},
                {"type": "dynamic-tool", "toolName": "t", "toolCallId": "c", "state": "input-streaming", "rawInput": 1},
            ],
        }
        assert message_to_json(parse_ui_message(message)) == {
            "id": "m",
            "role": "user",
            "parts": [
                {"type": "text", "text": "hi"},
                {"type": "file", "mediaType": "a/b", "url": "u"},
                {"type": "dynamic-tool", "toolName": "t", "toolCallId": "c", "state": "input-streaming"},
            ],
        }

    def test_tool_parts_keep_fields_the_client_reducer_writes_in_any_state(self) -> None:
        part = {
            "type": "tool-x",
            "toolCallId": "c",
            "state": "input-streaming",
            "callProviderMetadata": {"p": {"k": 1}},
            "preliminary": False,
            "rawInput": "{",
            "providerExecuted": True,
        }
        assert part_to_json(parse_part(part)) == part

    @pytest.mark.parametrize(
        ("part", "expected"),
        [
            (
                {"type": "tool-x", "toolCallId": "c", "state": "input-available", "output": 1},
                "parts[0].output: output is only allowed in state output-available",
            ),
            (
                {"type": "tool-x", "toolCallId": "c", "state": "output-available", "errorText": "e"},
                "parts[0].errorText: errorText is only allowed in state output-error",
            ),
            (
                {"type": "dynamic-tool", "toolName": "t", "toolCallId": "c", "state": "output-error"},
                "parts[0].errorText: errorText is required in state output-error",
            ),
            (
                {"type": "tool-x", "toolCallId": "c", "state": "approval-requested"},
                "parts[0].state: 'approval-requested' is an AI SDK v6 approval state",
            ),
            ({"type": "tool-x", "toolCallId": "c", "state": "done"}, "parts[0].state: must be 'input-streaming'"),
            ({"type": "tool-x", "state": "input-available"}, "parts[0].toolCallId: is required"),
            ({"type": "reasoning-file", "url": "u"}, "parts[0]: unknown part type"),
            ({"type": "text", "text": 5}, "parts[0].text: must be a string"),
            (
                {"type": "tool-x", "toolCallId": "c", "state": "input-available", "providerExecuted": "true"},
                "must be true or false",
            ),
            ({"type": "text", "text": "a", "providerMetadata": {"openai": 1}}, "parts[0].providerMetadata.openai"),
            ({"type": "source-document", "sourceId": "s", "mediaType": "m"}, "parts[0].title: is required"),
        ],
    )
    def test_invalid_parts_are_rejected_with_a_located_instruction(self, part: dict[str, Any], expected: str) -> None:
        with pytest.raises(MessageValidationError) as info:
            parse_ui_message({"id": "m", "role": "assistant", "parts": [part]})
        assert expected in str(info.value)
        assert isinstance(info.value, InvalidRequest)

    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            ({"role": "user", "parts": []}, "id: is required"),
            ({"id": "m", "role": "data", "parts": []}, "role: must be 'system', 'user' or 'assistant'"),
            ({"id": "m", "role": "user"}, "parts: is required"),
            ({"id": "m", "role": "user", "parts": {}}, "parts: must be an array"),
            ("not an object", "must be a JSON object"),
        ],
    )
    def test_invalid_message_envelopes_are_rejected(self, message: Any, expected: str) -> None:
        with pytest.raises(MessageValidationError, match=expected):
            parse_ui_message(message)

    def test_every_problem_of_a_message_is_reported_at_once(self) -> None:
        with pytest.raises(MessageValidationError) as info:
            parse_ui_message({"id": 1, "role": "user", "parts": [{"type": "text"}, {"type": "file", "url": "u"}]})
        locations = [issue.location for issue in info.value.issues]
        assert locations == ["id", "parts[0].text", "parts[1].mediaType"]
        assert [issue.part_index for issue in info.value.issues] == [None, 0, 1]


class TestHelpers:
    def test_the_tool_name_is_everything_after_the_first_dash(self) -> None:
        part = parse_part({"type": "tool-get-weather-now", "toolCallId": "c", "state": "input-streaming"})
        assert isinstance(part, ToolPart)
        assert tool_name_of(part) == "get-weather-now"
        dynamic = parse_part(
            {"type": "dynamic-tool", "toolName": "mcp-x", "toolCallId": "c", "state": "input-streaming"}
        )
        assert isinstance(dynamic, DynamicToolPart)
        assert tool_name_of(dynamic) == "mcp-x"

    def test_tool_predicates_tell_static_and_dynamic_parts_apart(self) -> None:
        static = parse_part({"type": "tool-x", "toolCallId": "c", "state": "input-streaming"})
        dynamic = parse_part({"type": "dynamic-tool", "toolName": "x", "toolCallId": "c", "state": "input-streaming"})
        text = parse_part({"type": "text", "text": ""})
        assert (is_tool_part(static), is_tool_part(dynamic), is_tool_part(text)) == (True, True, False)
        assert (is_static_tool_part(static), is_static_tool_part(dynamic)) == (True, False)

    def test_data_parts_know_their_bare_name(self) -> None:
        part = parse_part({"type": "data-weather-v2", "data": {}})
        assert isinstance(part, DataPart)
        assert is_data_part(part)
        assert data_name_of(part) == "weather-v2"

    def test_models_are_immutable_values(self) -> None:
        part = TextPart(text="a")
        with pytest.raises(ValueError, match="frozen"):
            part.text = "b"  # type: ignore[misc]
        assert part.model_copy(update={"text": "b"}).text == "b"

    def test_the_json_schema_describes_optional_keys_without_null_or_python_defaults(self) -> None:
        schema = json.dumps(UIMessage.model_json_schema())
        assert "ABSENT" not in schema
        tool = UIMessage.model_json_schema()["$defs"]["ToolPart"]["properties"]
        assert tool["errorText"] == {"title": "Errortext", "type": "string"}

    @settings(max_examples=50, deadline=None)
    @given(st.text())
    def test_any_unicode_text_survives(self, text: str) -> None:
        message = _message({"type": "text", "text": text})
        assert message_to_json(parse_ui_message(message)) == message
