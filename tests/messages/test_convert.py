from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from genvault.messages import DataPart, UIMessage, parse_ui_message, to_model_messages, tool_result_output

from .strategies import ui_messages

# Spec §4.2, the verified example (ai@5.0.244), input and exact output.
EXAMPLE_INPUT: list[dict[str, Any]] = [
    {"id": "s", "role": "system", "parts": [{"type": "text", "text": "sys1"}, {"type": "text", "text": "sys2"}]},
    {
        "id": "u",
        "role": "user",
        "parts": [
            {"type": "file", "mediaType": "image/png", "filename": "a.png", "url": "data:image/png;base64,AA"},
            {"type": "text", "text": "hi"},
            {"type": "data-x", "data": {"k": 1}},
        ],
    },
    {
        "id": "a",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "r"},
            {"type": "text", "text": "Let me check"},
            {
                "type": "tool-w",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "P"},
                "output": {"t": 1},
            },
            {"type": "tool-e", "toolCallId": "c2", "state": "output-error", "input": {}, "errorText": "bad"},
            {"type": "source-url", "sourceId": "s1", "url": "https://x"},
            {"type": "step-start"},
            {"type": "text", "text": "21C"},
            {"type": "tool-pending", "toolCallId": "c3", "state": "input-available", "input": {}},
        ],
    },
]

EXAMPLE_OUTPUT = [
    {"role": "system", "content": "sys1sys2"},
    {
        "role": "user",
        "content": [
            {"type": "file", "mediaType": "image/png", "filename": "a.png", "data": "data:image/png;base64,AA"},
            {"type": "text", "text": "hi"},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "reasoning", "text": "r"},
            {"type": "text", "text": "Let me check"},
            {"type": "tool-call", "toolCallId": "c1", "toolName": "w", "input": {"city": "P"}},
            {"type": "tool-call", "toolCallId": "c2", "toolName": "e", "input": {}},
        ],
    },
    {
        "role": "tool",
        "content": [
            {"type": "tool-result", "toolCallId": "c1", "toolName": "w", "output": {"type": "json", "value": {"t": 1}}},
            {
                "type": "tool-result",
                "toolCallId": "c2",
                "toolName": "e",
                "output": {"type": "error-text", "value": "bad"},
            },
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "21C"},
            {"type": "tool-call", "toolCallId": "c3", "toolName": "pending", "input": {}},
        ],
    },
    {"role": "tool", "content": []},
]


def _assistant(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"id": "a", "role": "assistant", "parts": list(parts)}


def test_the_verified_example_converts_to_the_exact_model_messages() -> None:
    assert to_model_messages(EXAMPLE_INPUT) == EXAMPLE_OUTPUT
    assert to_model_messages([parse_ui_message(m) for m in EXAMPLE_INPUT]) == EXAMPLE_OUTPUT


def test_ignoring_incomplete_tool_calls_drops_unfinished_and_preliminary_calls() -> None:
    message = _assistant(
        {"type": "tool-a", "toolCallId": "1", "state": "input-streaming"},
        {"type": "tool-b", "toolCallId": "2", "state": "input-available", "input": {}},
        {
            "type": "tool-c",
            "toolCallId": "3",
            "state": "output-available",
            "input": {},
            "output": "p",
            "preliminary": True,
        },
        {
            "type": "dynamic-tool",
            "toolName": "d",
            "toolCallId": "4",
            "state": "output-available",
            "input": {},
            "output": "ok",
        },
    )
    assert to_model_messages([message], ignore_incomplete_tool_calls=True) == [
        {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "4", "toolName": "d", "input": {}}]},
        {
            "role": "tool",
            "content": [
                {"type": "tool-result", "toolCallId": "4", "toolName": "d", "output": {"type": "text", "value": "ok"}}
            ],
        },
    ]
    # Without the option the streaming call disappears but the others stay.
    assert [m["role"] for m in to_model_messages([message])] == ["assistant", "tool"]
    assert len(to_model_messages([message])[0]["content"]) == 3


def test_provider_executed_results_stay_in_the_assistant_message() -> None:
    message = _assistant(
        {
            "type": "tool-web_search",
            "toolCallId": "s1",
            "state": "output-available",
            "providerExecuted": True,
            "input": {"q": "x"},
            "output": [{"url": "u"}],
            "callProviderMetadata": {"openai": {"itemId": "ws_1"}},
        },
        {
            "type": "tool-code",
            "toolCallId": "s2",
            "state": "output-error",
            "providerExecuted": True,
            "input": {},
            "errorText": "timeout",
        },
    )
    meta = {"openai": {"itemId": "ws_1"}}
    assert to_model_messages([message]) == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool-call",
                    "toolCallId": "s1",
                    "toolName": "web_search",
                    "input": {"q": "x"},
                    "providerExecuted": True,
                    "providerOptions": meta,
                },
                {
                    "type": "tool-result",
                    "toolCallId": "s1",
                    "toolName": "web_search",
                    "output": {"type": "json", "value": [{"url": "u"}]},
                    "providerOptions": meta,
                },
                {"type": "tool-call", "toolCallId": "s2", "toolName": "code", "input": {}, "providerExecuted": True},
                {
                    "type": "tool-result",
                    "toolCallId": "s2",
                    "toolName": "code",
                    "output": {"type": "error-json", "value": "timeout"},
                },
            ],
        }
    ]


def test_provider_metadata_becomes_provider_options() -> None:
    messages = [
        {
            "id": "s",
            "role": "system",
            "parts": [
                {
                    "type": "text",
                    "text": "a",
                    "providerMetadata": {"anthropic": {"cacheControl": {"type": "ephemeral"}}},
                },
                {"type": "text", "text": "b", "providerMetadata": {"openai": {"x": 1}}},
            ],
        },
        {
            "id": "u",
            "role": "user",
            "parts": [{"type": "file", "mediaType": "a/b", "url": "u", "providerMetadata": {"p": {"k": 1}}}],
        },
        _assistant(
            {"type": "reasoning", "text": "r", "providerMetadata": {"anthropic": {"signature": "sig"}}},
            {"type": "file", "mediaType": "image/png", "url": "u", "providerMetadata": {"p": {}}},
        ),
    ]
    assert to_model_messages(messages) == [
        {
            "role": "system",
            "content": "ab",
            "providerOptions": {"anthropic": {"cacheControl": {"type": "ephemeral"}}, "openai": {"x": 1}},
        },
        {
            "role": "user",
            "content": [{"type": "file", "mediaType": "a/b", "data": "u", "providerOptions": {"p": {"k": 1}}}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "r", "providerOptions": {"anthropic": {"signature": "sig"}}},
                {"type": "file", "mediaType": "image/png", "data": "u"},
            ],
        },
    ]


def test_data_parts_are_dropped_unless_a_converter_turns_them_into_content() -> None:
    def convert(part: DataPart) -> dict[str, Any] | None:
        return {"type": "text", "text": f"[{part.name}] {part.data}"} if part.name == "note" else None

    messages = [
        {"id": "u", "role": "user", "parts": [{"type": "data-note", "data": "u"}, {"type": "data-skip", "data": 1}]},
        _assistant({"type": "data-note", "data": "a"}),
    ]
    assert to_model_messages(messages) == [{"role": "user", "content": []}, {"role": "assistant", "content": []}]
    assert to_model_messages(messages, convert_data_part=convert) == [
        {"role": "user", "content": [{"type": "text", "text": "[note] u"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "[note] a"}]},
    ]


def test_a_tools_to_model_output_hook_shapes_successful_results_only() -> None:
    message = _assistant(
        {"type": "tool-img", "toolCallId": "1", "state": "output-available", "input": {}, "output": {"b64": "AA"}},
        {"type": "tool-img", "toolCallId": "2", "state": "output-error", "input": {}, "errorText": "no"},
    )
    hook = {
        "img": lambda out: {
            "type": "content",
            "value": [{"type": "media", "data": out["b64"], "mediaType": "image/png"}],
        }
    }
    tool_message = to_model_messages([message], tools_to_model_output=hook)[1]
    assert [r["output"] for r in tool_message["content"]] == [
        {"type": "content", "value": [{"type": "media", "data": "AA", "mediaType": "image/png"}]},
        {"type": "error-text", "value": "no"},
    ]


def test_an_invalid_static_call_sends_its_raw_input_as_the_call_input() -> None:
    message = _assistant(
        {"type": "tool-t", "toolCallId": "1", "state": "output-error", "rawInput": "{oops", "errorText": "invalid"},
        {"type": "tool-t", "toolCallId": "2", "state": "output-error", "input": None, "errorText": "invalid"},
    )
    calls = to_model_messages([message])[0]["content"]
    assert calls[0]["input"] == "{oops"
    assert "input" not in calls[1]  # JS `null ?? undefined` is undefined, which JSON drops


def test_string_outputs_are_text_and_absent_outputs_are_json_null() -> None:
    assert tool_result_output("done") == {"type": "text", "value": "done"}
    message = _assistant({"type": "tool-t", "toolCallId": "1", "state": "output-available", "input": {}})
    assert to_model_messages([message])[1]["content"][0]["output"] == {"type": "json", "value": None}


def test_an_assistant_message_without_step_starts_is_one_block() -> None:
    message = _assistant(
        {"type": "text", "text": "a"},
        {"type": "source-url", "sourceId": "s", "url": "u"},
        {"type": "text", "text": "b"},
    )
    assert to_model_messages([message]) == [
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_a_block_of_only_sources_produces_nothing_but_a_block_of_dropped_parts_produces_an_empty_message() -> None:
    assert (
        to_model_messages([_assistant({"type": "step-start"}, {"type": "source-url", "sourceId": "s", "url": "u"})])
        == []
    )
    assert to_model_messages([_assistant({"type": "tool-t", "toolCallId": "1", "state": "input-streaming"})]) == [
        {"role": "assistant", "content": []},
        {"role": "tool", "content": []},
    ]


@settings(max_examples=100, deadline=None)
@given(ui_messages())
def test_every_valid_message_converts_and_only_model_roles_come_out(message: UIMessage) -> None:
    for model_message in to_model_messages([message]):
        assert model_message["role"] in ("system", "user", "assistant", "tool")
        if model_message["role"] == "tool":
            assert all(part["type"] == "tool-result" for part in model_message["content"])
