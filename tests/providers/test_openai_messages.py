"""to_openai_messages: AI SDK ModelMessages → Chat Completions messages, as pure data."""

from __future__ import annotations

import pytest

from genvault.errors import InvalidRequest
from genvault.providers.base import ToolSpec
from genvault.providers.openai_messages import to_openai_messages, to_openai_params, to_openai_tools

PNG = "data:image/png;base64,iVBORw0KGgo="

# The verified convertToModelMessages output from the spec (§4.2), with a real PNG data URL.
SPEC_EXAMPLE = [
    {"role": "system", "content": "sys1sys2"},
    {
        "role": "user",
        "content": [
            {"type": "file", "mediaType": "image/png", "filename": "a.png", "data": PNG},
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


def test_the_spec_example_converts_to_chat_messages():
    assert to_openai_messages(SPEC_EXAMPLE, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "sys1sys2"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "text", "text": "hi"},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city":"P"}'}},
                {"id": "c2", "type": "function", "function": {"name": "e", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"t":1}'},
        {"role": "tool", "tool_call_id": "c2", "content": "bad"},
        {
            "role": "assistant",
            "content": "21C",
            "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "pending", "arguments": "{}"}}],
        },
    ]


def test_no_system_prompt_adds_no_system_message():
    assert to_openai_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], None) == [
        {"role": "user", "content": "hi"}
    ]


def test_system_message_parts_are_concatenated():
    messages = [{"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]

    assert to_openai_messages(messages, None) == [{"role": "system", "content": "ab"}]


def test_several_user_text_parts_stay_parts():
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]

    assert to_openai_messages(messages, None)[0]["content"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]


class TestUserFiles:
    def convert(self, part: dict) -> list:
        return to_openai_messages([{"role": "user", "content": [part]}], None)[0]["content"]

    def test_an_image_url_is_passed_by_url(self):
        part = {"type": "file", "mediaType": "image/jpeg", "data": "https://example.com/cat.jpg"}

        assert self.convert(part) == [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]

    def test_bare_base64_image_becomes_a_data_url(self):
        part = {"type": "file", "mediaType": "image/png", "data": "iVBORw0KGgo="}

        assert self.convert(part) == [{"type": "image_url", "image_url": {"url": PNG}}]

    def test_a_wildcard_media_type_takes_the_data_urls_type(self):
        part = {"type": "file", "mediaType": "image/*", "data": PNG}

        assert self.convert(part) == [{"type": "image_url", "image_url": {"url": PNG}}]

    def test_a_pdf_becomes_a_file_part_with_its_filename(self):
        pdf = "data:application/pdf;base64,JVBERi0xLjQ="
        part = {"type": "file", "mediaType": "application/pdf", "filename": "report.pdf", "data": pdf}

        assert self.convert(part) == [{"type": "file", "file": {"filename": "report.pdf", "file_data": pdf}}]

    def test_wav_audio_becomes_input_audio(self):
        part = {"type": "file", "mediaType": "audio/wav", "data": "data:audio/wav;base64,UklGRg=="}

        assert self.convert(part) == [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]

    def test_a_text_file_is_inlined_as_text(self):
        part = {"type": "file", "mediaType": "text/plain", "data": "data:text/plain,hello%20there"}

        assert self.convert(part) == "hello there"

    def test_a_pdf_by_url_is_refused(self):
        part = {"type": "file", "mediaType": "application/pdf", "data": "https://example.com/a.pdf"}

        with pytest.raises(InvalidRequest, match="PDF"):
            self.convert(part)

    def test_an_unsupported_file_type_is_refused_naming_it(self):
        part = {"type": "file", "mediaType": "application/zip", "data": "UEsDBA=="}

        with pytest.raises(InvalidRequest, match="application/zip"):
            self.convert(part)


class TestToolResults:
    @pytest.mark.parametrize(
        ("output", "content"),
        [
            ({"type": "text", "value": "sunny"}, "sunny"),
            ({"type": "json", "value": {"t": 21, "ciel": "dégagé"}}, '{"t":21,"ciel":"dégagé"}'),
            ({"type": "json", "value": None}, "null"),
            ({"type": "error-text", "value": "boom"}, "boom"),
            ({"type": "error-json", "value": {"code": 1}}, '{"code":1}'),
            ({"type": "content", "value": [{"type": "text", "text": "x"}]}, '[{"type":"text","text":"x"}]'),
        ],
    )
    def test_each_output_kind_becomes_tool_message_text(self, output, content):
        messages = [
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c", "toolName": "t", "output": output}]}
        ]

        assert to_openai_messages(messages, None) == [{"role": "tool", "tool_call_id": "c", "content": content}]


def test_assistant_reasoning_only_message_is_dropped():
    messages = [{"role": "assistant", "content": [{"type": "reasoning", "text": "hmm"}]}]

    assert to_openai_messages(messages, None) == []


def test_provider_executed_tool_calls_are_not_replayed():
    messages = [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool-call",
                    "toolCallId": "s",
                    "toolName": "web_search",
                    "input": {},
                    "providerExecuted": True,
                },
                {"type": "tool-result", "toolCallId": "s", "toolName": "web_search", "output": {"type": "json"}},
                {"type": "text", "text": "Found it."},
            ],
        }
    ]

    assert to_openai_messages(messages, None) == [{"role": "assistant", "content": "Found it."}]


def test_an_unknown_role_is_refused():
    with pytest.raises(InvalidRequest, match="'robot'"):
        to_openai_messages([{"role": "robot", "content": []}], None)


def test_tools_become_function_tools():
    tools = [ToolSpec("w", "weather", {"type": "object"}), ToolSpec("bare")]

    assert to_openai_tools(tools) == [
        {"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "bare", "parameters": {"type": "object", "properties": {}}}},
    ]


def test_params_keep_known_sampling_fields_and_rename_max_tokens():
    params = {"temperature": 0, "top_p": 1, "max_tokens": 9, "seed": 1, "stop": "x", "top_k": 5, "bogus": None}

    assert to_openai_params(params) == {
        "temperature": 0,
        "top_p": 1,
        "max_completion_tokens": 9,
        "seed": 1,
        "stop": "x",
    }
    assert to_openai_params({"max_tokens": 9}, max_tokens_field="max_tokens") == {"max_tokens": 9}
