from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from genvault.errors import InvalidRequest
from genvault.messages import (
    MessageValidationError,
    ToolSchemas,
    UIMessage,
    message_to_json,
    validate_ui_messages,
)

WEATHER_INPUT = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}


class WeatherOutput(BaseModel):
    temp_c: float


def _user(text: str = "hi") -> dict[str, Any]:
    return {"id": "u", "role": "user", "parts": [{"type": "text", "text": text}]}


def _assistant(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "a", "role": "assistant", **extra, "parts": list(parts)}


def _weather(state: str, **fields: Any) -> dict[str, Any]:
    return {"type": "tool-weather", "toolCallId": "c1", "state": state, **fields}


def _issues(messages: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(MessageValidationError) as info:
        validate_ui_messages(messages, **kwargs)
    assert isinstance(info.value, InvalidRequest)
    return [str(issue) for issue in info.value.issues]


class TestStructure:
    def test_valid_messages_come_back_as_ui_messages_without_unknown_keys(self) -> None:
        result = validate_ui_messages([{**_user(), "createdAt": "x"}, _assistant()])
        assert all(isinstance(m, UIMessage) for m in result)
        assert [message_to_json(m) for m in result] == [_user(), _assistant()]

    @pytest.mark.parametrize(
        ("messages", "expected"),
        [
            (None, "messages: messages must be provided"),
            ([], "messages: Messages array must not be empty"),
            ({"id": "u"}, "messages: messages must be an array"),
            ("hello", "messages: messages must be an array"),
        ],
    )
    def test_a_missing_empty_or_non_list_messages_value_is_rejected(self, messages: Any, expected: str) -> None:
        (issue,) = _issues(messages)
        assert issue.startswith(expected)

    def test_user_and_system_messages_need_a_part_but_assistant_messages_do_not(self) -> None:
        assert _issues([{"id": "s", "role": "system", "parts": []}, _user(), _assistant()]) == [
            "messages[0].parts: Message must contain at least one part"
        ]

    def test_every_structural_problem_is_listed_with_its_message_and_part(self) -> None:
        issues = _issues(
            [
                _user(),
                {"id": "x", "role": "bot", "parts": []},
                _assistant(
                    {"type": "text", "text": "ok"},
                    {"type": "tool-w", "toolCallId": "c", "state": "input-available", "output": 1},
                ),
            ]
        )
        assert issues == [
            "messages[1].role: must be 'system', 'user' or 'assistant'",
            "messages[2].parts[1].output: output is only allowed in state output-available (state is input-available); "
            "remove it or fix the state",
        ]

    def test_the_error_message_is_readable_and_names_each_location(self) -> None:
        with pytest.raises(MessageValidationError) as info:
            validate_ui_messages([_user(), {"id": 1, "role": "user", "parts": [{"type": "text"}]}])
        assert str(info.value) == (
            "2 problems with the messages:\n"
            "  - messages[1].id: must be a string\n"
            "  - messages[1].parts[0].text: is required"
        )
        first = info.value.issues[1]
        assert (first.message_index, first.part_index, first.field) == (1, 0, "text")

    def test_already_parsed_messages_are_accepted(self) -> None:
        parsed = validate_ui_messages([_user()])
        assert validate_ui_messages(parsed) == parsed


@dataclass
class _Spec:  # the shape of genvault.providers.base.ToolSpec
    name: str
    input_schema: dict[str, Any] = field(default_factory=lambda: WEATHER_INPUT)


class TestToolSchemas:
    def test_an_input_that_misses_a_required_property_points_at_that_property(self) -> None:
        messages = [
            _user(),
            _user(),
            _assistant({"type": "step-start"}, _weather("input-available", input={"town": "Paris"})),
        ]
        messages[2]["parts"].insert(0, {"type": "text", "text": "x"})
        issues = _issues(messages, tools={"weather": ToolSchemas(input_schema=WEATHER_INPUT)})
        assert issues == ["messages[2].parts[2].input.city: is required (input schema of tool 'weather')"]

    def test_a_wrong_nested_value_is_located_inside_the_input(self) -> None:
        messages = [_assistant(_weather("input-available", input={"city": "P", "days": 0}))]
        assert _issues(messages, tools={"weather": ToolSchemas(WEATHER_INPUT)}) == [
            "messages[0].parts[0].input.days: 0 is less than the minimum of 1 (input schema of tool 'weather')"
        ]

    def test_outputs_are_checked_against_the_output_schema_when_there_is_one(self) -> None:
        tools = {"weather": ToolSchemas(WEATHER_INPUT, output_schema=WeatherOutput)}
        bad = [_assistant(_weather("output-available", input={"city": "P"}, output={"temp_c": "warm"}))]
        assert _issues(bad, tools=tools) == [
            "messages[0].parts[0].output.temp_c: must be a valid number, unable to parse string as a number "
            "(output schema of tool 'weather')"
        ]
        without_output_schema = {"weather": ToolSchemas(WEATHER_INPUT)}
        assert validate_ui_messages(bad, tools=without_output_schema)

    def test_streaming_and_error_states_are_not_checked(self) -> None:
        messages = [
            _assistant(
                _weather("input-streaming", input={"ci": 1}),
                {**_weather("output-error", input={"x": 1}, errorText="bad"), "toolCallId": "c2"},
            )
        ]
        assert validate_ui_messages(messages, tools={"weather": ToolSchemas(WEATHER_INPUT)})

    def test_a_tool_part_without_a_schema_is_an_error_but_dynamic_tools_are_not_checked(self) -> None:
        messages = [
            _assistant(
                {"type": "tool-unknown", "toolCallId": "c", "state": "input-available", "input": {}},
                {"type": "dynamic-tool", "toolName": "mcp", "toolCallId": "d", "state": "input-available", "input": 1},
            )
        ]
        assert _issues(messages, tools={}) == [
            "messages[0].parts[0].type: No tool schema found for tool part unknown; "
            "add 'unknown' to tools or drop the part"
        ]

    @pytest.mark.parametrize(
        ("tool", "tool_input", "expected"),
        [
            ({"inputSchema": WEATHER_INPUT}, {}, "input.city: is required"),
            ({"input_schema": WEATHER_INPUT, "output_schema": None}, {}, "input.city: is required"),
            (_Spec("weather"), {}, "input.city: is required"),
            (ToolSchemas(TypeAdapter(dict[str, int])), {"city": "x"}, "input.city: must be a valid integer"),
        ],
    )
    def test_tools_can_be_mappings_spec_objects_or_tool_schemas(
        self, tool: Any, tool_input: Any, expected: str
    ) -> None:
        messages = [_assistant(_weather("input-available", input=tool_input))]
        assert _issues(messages, tools={"weather": tool})[0].startswith(f"messages[0].parts[0].{expected}")

    def test_a_tool_entry_without_an_input_schema_is_a_programming_error(self) -> None:
        with pytest.raises(TypeError, match="input_schema"):
            validate_ui_messages(
                [_assistant(_weather("input-available", input={}))], tools={"weather": {"description": "x"}}
            )


class TestDataAndMetadataSchemas:
    def test_data_parts_are_checked_by_their_name_without_the_prefix(self) -> None:
        schemas = {"weather": {"type": "object", "required": ["city"]}}
        good = [_assistant({"type": "data-weather", "data": {"city": "P"}})]
        assert validate_ui_messages(good, data_schemas=schemas)
        bad = [_assistant({"type": "data-weather", "data": {}}, {"type": "data-weather"})]
        assert _issues(bad, data_schemas=schemas) == [
            "messages[0].parts[0].data.city: is required (data schema 'weather')",
            "messages[0].parts[1].data: None is not of type 'object' (data schema 'weather')",
        ]

    def test_a_data_part_without_a_schema_is_an_error_once_schemas_are_given(self) -> None:
        assert _issues([_assistant({"type": "data-x", "data": 1})], data_schemas={}) == [
            "messages[0].parts[0].type: No data schema found for data part x; add 'x' to data_schemas or drop the part"
        ]

    def test_metadata_of_every_message_is_checked_and_missing_metadata_fails_a_required_schema(self) -> None:
        schema = {"type": "object", "properties": {"createdAt": {"type": "integer"}}}
        messages = [{**_user(), "metadata": {"createdAt": 1}}, _assistant(metadata={"createdAt": "yesterday"}), _user()]
        messages[2]["id"] = "u2"
        assert _issues(messages, metadata_schema=schema) == [
            "messages[1].metadata.createdAt: 'yesterday' is not of type 'integer'",
            "messages[2].metadata: is missing, but the metadata schema requires a value",
        ]

    def test_a_pydantic_model_works_as_a_metadata_schema(self) -> None:
        class Meta(BaseModel):
            created_at: int

        assert validate_ui_messages([_user() | {"metadata": {"created_at": 1}}], metadata_schema=Meta)
        assert _issues([_user() | {"metadata": {}}], metadata_schema=Meta) == [
            "messages[0].metadata.created_at: is required"
        ]

    def test_schemas_only_check_and_do_not_coerce_the_returned_values(self) -> None:
        class Meta(BaseModel):
            n: int

        (message,) = validate_ui_messages([_user() | {"metadata": {"n": 1, "extra": True}}], metadata_schema=Meta)
        assert message.metadata == {"n": 1, "extra": True}

    def test_a_broken_json_schema_is_a_programming_error(self) -> None:
        import jsonschema  # type: ignore[import-untyped, unused-ignore]

        with pytest.raises(jsonschema.SchemaError):
            validate_ui_messages([_user()], metadata_schema={"type": 5})
