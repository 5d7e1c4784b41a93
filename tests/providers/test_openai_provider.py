"""OpenAIProvider against recorded Chat Completions streams, served by httpx.MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.errors import ProviderError
from genvault.providers.base import (
    ModelRequest,
    ProviderEvent,
    StreamFinish,
    StreamReasoningDelta,
    StreamTextDelta,
    StreamToolCall,
    StreamToolInputDelta,
    StreamToolInputStart,
    StreamUsage,
    ToolSpec,
)
from genvault.providers.openai import OpenAIProvider, map_finish_reason

WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def ask(text: str = "What is the capital of France?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model=kwargs.pop("model", "gpt-4o-mini"),
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
        **kwargs,
    )


@pytest.fixture
async def provider(http_client: httpx.AsyncClient) -> OpenAIProvider:
    return OpenAIProvider(api_key="sk-test", http_client=http_client, max_retries=0)


async def collect(provider: OpenAIProvider, request: ModelRequest) -> list[ProviderEvent]:
    return [event async for event in provider.stream(request)]


async def consume(
    events: AsyncIterator[ProviderEvent],
    received: list[ProviderEvent],
    seen: asyncio.Event | None = None,
    count: int = 1,
) -> None:
    """Append every event to `received`; set `seen` once `count` events arrived."""
    async for event in events:
        received.append(event)
        if seen is not None and len(received) >= count:
            seen.set()


class TestStreaming:
    async def test_text_deltas_then_usage_with_cached_and_reasoning_tokens_then_finish(self, provider, server):
        server.sse("openai_text_usage.sse")

        events = await collect(provider, ask(model="o4-mini"))

        assert events == [
            StreamTextDelta("Paris"),
            StreamTextDelta(" is the capital"),
            StreamTextDelta(" of France."),
            StreamUsage(
                input_tokens=1843,
                output_tokens=214,
                cached_input_tokens=1536,
                cache_write_tokens=None,
                reasoning_tokens=192,
                total_tokens=2057,
            ),
            StreamFinish("stop"),
        ]

    async def test_tool_call_arguments_split_across_chunks_become_one_parsed_call_each(self, provider, server):
        server.sse("openai_tool_calls.sse")

        events = await collect(provider, ask("Weather and time in Paris?", tools=[WEATHER]))

        first, second = "call_Vt3q8yW0dL5gG0m1JhZk2RfA", "call_2mX9PcqkF4n8Yb3sTg6Hd1Lw"
        assert events == [
            StreamToolInputStart(first, "get_weather"),
            StreamToolInputDelta(first, '{"ci'),
            StreamToolInputDelta(first, 'ty": "Par'),
            StreamToolInputDelta(first, 'is"}'),
            StreamToolInputStart(second, "get_time"),
            StreamToolInputDelta(second, '{"tz": "Europe/Paris"}'),
            StreamToolCall(first, "get_weather", {"city": "Paris"}),
            StreamToolCall(second, "get_time", {"tz": "Europe/Paris"}),
            StreamUsage(112, 48, 0, None, 0, 160),
            StreamFinish("tool-calls"),
        ]

    async def test_reasoning_content_from_deepseek_style_servers_becomes_reasoning_deltas(self, http_client, server):
        provider = OpenAIProvider("deepseek", api_key="k", base_url="https://api.deepseek.com", http_client=http_client)
        server.sse("deepseek_reasoning_content.sse")

        events = await collect(provider, ask("2+2?", model="deepseek-reasoner"))

        assert events == [
            StreamReasoningDelta("The user asks"),
            StreamReasoningDelta(" for 2+2."),
            StreamTextDelta("4"),
            StreamUsage(14, 9, 0, None, 7, 23),
            StreamFinish("stop"),
        ]

    async def test_reasoning_field_from_ollama_becomes_reasoning_deltas(self, http_client, server):
        provider = OpenAIProvider("ollama", base_url="http://localhost:11434/v1", http_client=http_client)
        server.sse("ollama_reasoning.sse")

        events = await collect(provider, ask("Hi", model="qwen3:0.6b"))

        assert events == [
            StreamReasoningDelta("Greet back."),
            StreamTextDelta("Hello!"),
            StreamUsage(11, 6, None, None, None, 17),
            StreamFinish("stop"),
        ]
        assert server.last.url == "http://localhost:11434/v1/chat/completions"


class TestRequestBody:
    async def test_sends_model_converted_messages_tools_and_asks_for_usage(self, provider, server):
        server.sse("openai_text_usage.sse")
        request = ModelRequest(
            model="gpt-4o-mini",
            system="Be brief.",
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "reasoning", "text": "use the tool"},
                        {"type": "tool-call", "toolCallId": "c1", "toolName": "get_weather", "input": {"city": "P"}},
                    ],
                },
                {
                    "role": "tool",
                    "content": [
                        {
                            "type": "tool-result",
                            "toolCallId": "c1",
                            "toolName": "get_weather",
                            "output": {"type": "json", "value": {"t": 21}},
                        }
                    ],
                },
            ],
            tools=[WEATHER],
            params={"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "seed": 7, "stop": ["\n\n"], "top_k": 3},
        )

        await collect(provider, request)

        sent = server.last
        assert sent.method == "POST"
        assert sent.url == "https://api.openai.com/v1/chat/completions"
        assert sent.headers["authorization"] == "Bearer sk-test"
        assert sent.json == {
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"P"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": '{"t":21}'},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parameters": WEATHER.input_schema,
                    },
                }
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 50,
            "seed": 7,
            "stop": ["\n\n"],
        }

    async def test_compatible_servers_get_max_tokens_and_no_openai_account_headers(
        self, http_client, server, monkeypatch
    ):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
        monkeypatch.setenv("OPENAI_ORG_ID", "org-real")
        monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-real")
        provider = OpenAIProvider("ollama", base_url="http://localhost:11434/v1", http_client=http_client)
        server.sse("ollama_reasoning.sse")

        await collect(provider, ask(model="qwen3:0.6b", params={"max_tokens": 20}))

        sent = server.last
        assert sent.json["max_tokens"] == 20
        assert "max_completion_tokens" not in sent.json
        assert "sk-real-openai-key" not in sent.headers.get("authorization", "")
        assert "openai-organization" not in sent.headers
        assert "openai-project" not in sent.headers


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "fixture", "message"),
        [
            (401, "openai_401.json", "Incorrect API key provided: sk-test."),
            (429, "openai_429.json", "Rate limit reached for gpt-4o-mini"),
        ],
    )
    async def test_http_error_before_streaming_is_a_provider_error_with_status_and_message(
        self, provider, server, status, fixture, message
    ):
        server.error(status, fixture)

        with pytest.raises(ProviderError) as caught:
            await collect(provider, ask())

        assert caught.value.status == status
        assert caught.value.provider == "openai"
        assert caught.value.message.startswith(message)
        assert "Error code" not in caught.value.message

    async def test_error_event_mid_stream_raises_after_the_text_before_it(self, provider, server):
        server.sse("openai_midstream_error.sse")
        received: list[ProviderEvent] = []

        with pytest.raises(ProviderError) as caught:
            await consume(provider.stream(ask()), received)

        assert received == [StreamTextDelta("Once upon"), StreamTextDelta(" a time")]
        assert caught.value.message == "The server had an error while processing your request. Sorry about that!"
        assert caught.value.provider == "openai"

    async def test_connection_failure_is_a_provider_error(self):
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            provider = OpenAIProvider(api_key="sk-test", http_client=client, max_retries=0)
            with pytest.raises(ProviderError) as caught:
                await collect(provider, ask())

        assert caught.value.status is None
        assert "connection refused" in caught.value.message


class TestCancellation:
    async def test_cancelling_the_consumer_closes_the_http_response(self, provider, server, blocking_stream):
        first = (
            b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        )
        stream = blocking_stream(first)
        server.stream(stream)
        received: list[ProviderEvent] = []

        seen = asyncio.Event()
        task = asyncio.create_task(consume(provider.stream(ask()), received, seen))
        await stream.sent_first.wait()
        await seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert received == [StreamTextDelta("Hi")]
        assert stream.closed


@pytest.mark.parametrize(
    ("wire", "mapped"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool-calls"),
        ("content_filter", "content-filter"),
        ("something_new", "other"),
        (None, "unknown"),
    ],
)
def test_finish_reasons_map_to_ai_sdk_names(wire, mapped):
    assert map_finish_reason(wire) == mapped


async def test_closing_the_provider_leaves_an_injected_http_client_open(http_client):
    provider = OpenAIProvider(api_key="sk-test", http_client=http_client)

    await provider.aclose()

    assert not http_client.is_closed
