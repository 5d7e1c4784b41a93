"""AnthropicProvider against recorded Messages API streams, served by httpx.MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.errors import ProviderError
from genvault.providers.anthropic import AnthropicProvider, map_stop_reason
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

SIGNATURE = (
    "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds3P1bW1FXS2wLvyJ3CCCYKDgB+T7h8jJZS3fQ9pIh0a3aT1gYZ0Uq"
    "jBmh1r5e1xVZqKXs3JAgRfc3dGhxqz3F6w5K0Zr6E3yYtlT8UtGkZyAHF8iFWbhJcS0S/vSJNFB8w=="
)
REDACTED = (
    "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3"
    "qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj2pabJBcFsAcbPDQnBbSMWb"
)
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def ask(text: str = "Weather in Paris?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model=kwargs.pop("model", "claude-sonnet-4-6"),
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
        **kwargs,
    )


@pytest.fixture
async def provider(http_client: httpx.AsyncClient):
    provider = AnthropicProvider(api_key="sk-ant-test", http_client=http_client, max_retries=0)
    yield provider
    await provider.aclose()


async def collect(provider: AnthropicProvider, request: ModelRequest) -> list[ProviderEvent]:
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
    async def test_thinking_with_signature_text_and_tool_use_stream_in_wire_order(self, provider, server):
        server.sse("anthropic_thinking_tool_use.sse")

        events = await collect(provider, ask(tools=[WEATHER]))

        call_id = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
        assert events == [
            StreamReasoningDelta("The user wants the weather in Paris."),
            StreamReasoningDelta(" I should call get_weather."),
            StreamReasoningDelta("", provider_metadata={"anthropic": {"signature": SIGNATURE}}),
            StreamTextDelta("I'll check"),
            StreamTextDelta(" the weather."),
            StreamToolInputStart(call_id, "get_weather"),
            StreamToolInputDelta(call_id, '{"city": "Pa'),
            StreamToolInputDelta(call_id, 'ris", "unit": "celsius"}'),
            StreamToolCall(call_id, "get_weather", {"city": "Paris", "unit": "celsius"}),
            StreamUsage(
                input_tokens=372 + 2048 + 1200,
                output_tokens=121,
                cached_input_tokens=2048,
                cache_write_tokens=1200,
                reasoning_tokens=None,
                total_tokens=372 + 2048 + 1200 + 121,
            ),
            StreamFinish("tool-calls"),
        ]

    async def test_redacted_thinking_keeps_its_data_and_end_turn_is_stop(self, provider, server):
        server.sse("anthropic_text.sse")

        events = await collect(provider, ask("Hi", model="claude-haiku-4-5"))

        assert events[0] == StreamReasoningDelta("", provider_metadata={"anthropic": {"redactedData": REDACTED}})
        assert events[1:] == [
            StreamTextDelta("Hello"),
            StreamTextDelta("!"),
            StreamUsage(25, 15, 0, 0, None, 40),
            StreamFinish("stop"),
        ]


class TestRequestBody:
    async def test_sends_system_merged_messages_tools_and_a_default_max_tokens(self, provider, server):
        server.sse("anthropic_text.sse")
        request = ModelRequest(
            model="claude-sonnet-4-6",
            system="Be brief.",
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "reasoning",
                            "text": "call it",
                            "providerOptions": {"anthropic": {"signature": "sig"}},
                        },
                        {"type": "tool-call", "toolCallId": "t1", "toolName": "get_weather", "input": {"city": "P"}},
                    ],
                },
                {
                    "role": "tool",
                    "content": [
                        {
                            "type": "tool-result",
                            "toolCallId": "t1",
                            "toolName": "get_weather",
                            "output": {"type": "text", "value": "21C"},
                        }
                    ],
                },
                {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
            ],
            tools=[WEATHER],
            params={"temperature": 0.5, "stop": "END", "seed": 3},
        )

        await collect(provider, request)

        sent = server.last
        assert sent.url == "https://api.anthropic.com/v1/messages"
        assert sent.headers["authorization"] == "Bearer sk-ant-test"
        assert sent.json == {
            "model": "claude-sonnet-4-6",
            "stream": True,
            "max_tokens": 4096,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "call it", "signature": "sig"},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "P"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "21C"},
                        {"type": "text", "text": "Thanks"},
                    ],
                },
            ],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "input_schema": WEATHER.input_schema,
                }
            ],
            "temperature": 0.5,
            "stop_sequences": ["END"],
        }

    async def test_max_tokens_from_params_replaces_the_default(self, provider, server):
        server.sse("anthropic_text.sse")

        await collect(provider, ask(params={"max_tokens": 64}))

        assert server.last.json["max_tokens"] == 64


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "fixture", "message"),
        [
            (401, "anthropic_401.json", "invalid x-api-key"),
            (429, "anthropic_429.json", "This request would exceed the rate limit for your organization"),
        ],
    )
    async def test_http_error_before_streaming_is_a_provider_error_with_status_and_message(
        self, provider, server, status, fixture, message
    ):
        server.error(status, fixture)

        with pytest.raises(ProviderError) as caught:
            await collect(provider, ask())

        assert caught.value.status == status
        assert caught.value.provider == "anthropic"
        assert caught.value.message.startswith(message)

    async def test_overloaded_error_event_mid_stream_raises_after_the_text_before_it(self, provider, server):
        server.sse("anthropic_overloaded_midstream.sse")
        received: list[ProviderEvent] = []

        with pytest.raises(ProviderError) as caught:
            await consume(provider.stream(ask()), received)

        assert received == [StreamTextDelta("Once upon"), StreamTextDelta(" a time")]
        assert caught.value.message == "Overloaded"
        assert caught.value.status == 529

    async def test_connection_failure_is_a_provider_error(self):
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            provider = AnthropicProvider(api_key="k", http_client=client, max_retries=0)
            with pytest.raises(ProviderError) as caught:
                await collect(provider, ask())
            await provider.aclose()

        assert caught.value.status is None
        assert "connection refused" in caught.value.message


class TestCancellation:
    async def test_cancelling_the_consumer_closes_the_http_response(self, provider, server, blocking_stream):
        first = (
            b"event: content_block_delta\n"
            b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
        )
        stream = blocking_stream(first)
        server.stream(stream)
        received: list[ProviderEvent] = []

        seen = asyncio.Event()
        task = asyncio.create_task(consume(provider.stream(ask()), received, seen))
        await seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert received == [StreamTextDelta("Hi")]
        assert stream.closed


@pytest.mark.parametrize(
    ("wire", "mapped"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool-calls"),
        ("refusal", "content-filter"),
        ("pause_turn", "other"),
        (None, "unknown"),
    ],
)
def test_stop_reasons_map_to_ai_sdk_finish_reasons(wire, mapped):
    assert map_stop_reason(wire) == mapped


async def test_closing_the_provider_leaves_an_injected_http_client_open(http_client):
    provider = AnthropicProvider(api_key="k", http_client=http_client)

    await provider.aclose()

    assert not http_client.is_closed
