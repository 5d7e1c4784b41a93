"""to_anthropic_messages: AI SDK ModelMessages → Messages API system and messages, as pure data."""

from __future__ import annotations

import pytest

from genvault.errors import InvalidRequest
from genvault.providers.anthropic_messages import to_anthropic_messages, to_anthropic_params, to_anthropic_tools
from genvault.providers.base import ToolSpec

PNG_B64 = "iVBORw0KGgo="


def user(*parts: dict) -> dict:
    return {"role": "user", "content": list(parts)}


def txt(value: str) -> dict:
    return {"type": "text", "text": value}


def test_the_spec_example_alternates_roles_with_tool_results_in_user_turns():
    messages = [
        {"role": "system", "content": "sys1sys2"},
        user(
            {"type": "file", "mediaType": "image/png", "filename": "a.png", "data": f"data:image/png;base64,{PNG_B64}"},
            txt("hi"),
        ),
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "r"},
                txt("Let me check"),
                {"type": "tool-call", "toolCallId": "c1", "toolName": "w", "input": {"city": "P"}},
                {"type": "tool-call", "toolCallId": "c2", "toolName": "e", "input": {}},
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "w",
                    "output": {"type": "json", "value": {"t": 1}},
                },
                {
                    "type": "tool-result",
                    "toolCallId": "c2",
                    "toolName": "e",
                    "output": {"type": "error-text", "value": "x"},
                },
            ],
        },
        {"role": "assistant", "content": [txt("21C")]},
        {"role": "tool", "content": []},
    ]

    system, converted = to_anthropic_messages(messages, "Be brief.")

    assert system == "Be brief.\n\nsys1sys2"
    assert converted == [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "text", "text": "hi"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                # unsigned reasoning is dropped: Anthropic rejects thinking it did not sign
                {"type": "text", "text": "Let me check"},
                {"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "P"}},
                {"type": "tool_use", "id": "c2", "name": "e", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": '{"t":1}'},
                {"type": "tool_result", "tool_use_id": "c2", "content": "x", "is_error": True},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "21C"}]},
    ]


def test_no_system_at_all_gives_none():
    system, converted = to_anthropic_messages([user(txt("hi"))], None)

    assert system is None
    assert converted == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_consecutive_user_messages_merge_into_one():
    _, converted = to_anthropic_messages([user(txt("a")), user(txt("b")), {"role": "user", "content": "c"}], None)

    assert converted == [{"role": "user", "content": [txt("a"), txt("b"), txt("c")]}]


def test_empty_text_and_empty_messages_are_not_sent():
    _, converted = to_anthropic_messages([user(txt("")), {"role": "assistant", "content": ""}, user(txt("x"))], None)

    assert converted == [{"role": "user", "content": [txt("x")]}]


def test_signed_reasoning_goes_back_as_a_thinking_block_and_redacted_as_redacted_thinking():
    assistant = {
        "role": "assistant",
        "content": [
            {"type": "reasoning", "text": "hmm", "providerOptions": {"anthropic": {"signature": "sig"}}},
            {"type": "reasoning", "text": "", "providerOptions": {"anthropic": {"redactedData": "opaque"}}},
            txt("Answer"),
        ],
    }

    _, converted = to_anthropic_messages([user(txt("q")), assistant], None)

    assert converted[1]["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Answer"},
    ]


class TestUserFiles:
    def convert(self, part: dict) -> dict:
        _, converted = to_anthropic_messages([user(part)], None)
        block: dict = converted[0]["content"][0]
        return block

    def test_an_image_url_becomes_a_url_source(self):
        part = {"type": "file", "mediaType": "image/jpeg", "data": "https://example.com/cat.jpg"}

        assert self.convert(part) == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}

    def test_a_pdf_becomes_a_document_titled_by_its_filename(self):
        part = {"type": "file", "mediaType": "application/pdf", "filename": "r.pdf", "data": "JVBERi0xLjQ="}

        assert self.convert(part) == {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
            "title": "r.pdf",
        }

    def test_a_text_file_becomes_a_plain_text_document(self):
        part = {"type": "file", "mediaType": "text/markdown", "data": "data:text/markdown;base64,IyBIaQ=="}

        assert self.convert(part) == {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "# Hi"},
        }

    def test_an_unsupported_file_type_is_refused_naming_it(self):
        with pytest.raises(InvalidRequest, match="audio/wav"):
            self.convert({"type": "file", "mediaType": "audio/wav", "data": "UklGRg=="})

    def test_file_data_that_is_not_a_url_or_base64_is_refused(self):
        with pytest.raises(InvalidRequest, match="base64"):
            self.convert({"type": "file", "mediaType": "image/png", "data": "not base64!"})


def test_content_tool_results_keep_text_and_images():
    output = {
        "type": "content",
        "value": [{"type": "text", "text": "chart:"}, {"type": "media", "data": PNG_B64, "mediaType": "image/png"}],
    }
    tool = {
        "role": "tool",
        "content": [{"type": "tool-result", "toolCallId": "c", "toolName": "plot", "output": output}],
    }

    _, converted = to_anthropic_messages([tool], None)

    assert converted == [
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c",
                    "content": [
                        {"type": "text", "text": "chart:"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    ],
                }
            ],
        }
    ]


def test_tools_use_input_schema():
    assert to_anthropic_tools([ToolSpec("w", "weather", {"type": "object"}), ToolSpec("bare")]) == [
        {"name": "w", "description": "weather", "input_schema": {"type": "object"}},
        {"name": "bare", "input_schema": {"type": "object", "properties": {}}},
    ]


def test_params_always_set_max_tokens_and_rename_stop():
    assert to_anthropic_params({}) == {"max_tokens": 4096}
    assert to_anthropic_params({"max_tokens": 10, "stop": ["a", "b"], "seed": 1, "top_k": 5}) == {
        "max_tokens": 10,
        "stop_sequences": ["a", "b"],
        "top_k": 5,
    }
