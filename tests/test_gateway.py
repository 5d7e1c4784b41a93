"""The `/v1` gateway through the official `openai` and `anthropic` SDKs (no mocks of them), against a
real server socket, with the offline test model and with a scripted fake upstream speaking each
API's wire format. Every call is an ordinary generation record."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import func, select

from bench.fake_upstream import Answer, FakeUpstream
from genvault.providers import testmodel as tm
from genvault.providers.anthropic import AnthropicProvider
from genvault.providers.openai import OpenAIProvider
from genvault.server import create_app
from genvault.settings import Settings
from genvault.store import Store
from genvault.store.keys import create_key
from genvault.store.schema import generations
from genvault.vault import Vault
from live_server import free_port, serve
from test_aisdk_client import CLIENT_DIR, node  # noqa: F401 - `node` is a fixture

TRANSCRIPTS = Path(__file__).parent / "providers" / "transcripts"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def database(request: pytest.FixtureRequest, database_maker: Any) -> tuple[str, str | None]:
    """SQLite for most tests (the record path below the gateway is the engine's, whose suites run
    on both backends); PostgreSQL too for the tests marked `BOTH_DATABASES`. Migrated copies, as
    conftest's `database` gives."""
    made: tuple[str, str | None] = database_maker(getattr(request, "param", "sqlite"))
    return made


BOTH_DATABASES = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream(chunks=5)


@pytest.fixture
async def upstream_url(upstream: FakeUpstream) -> AsyncIterator[str]:
    async with serve(upstream.app()) as url:
        yield url


@pytest.fixture
async def vault(vault_factory: Any, provider: tm.TestProvider, upstream_url: str) -> AsyncIterator[Vault]:
    to_openai = OpenAIProvider("openai", api_key="sk-upstream", base_url=f"{upstream_url}/v1", max_retries=0)
    to_anthropic = AnthropicProvider(api_key="sk-ant-upstream", base_url=upstream_url, max_retries=0)
    providers: dict[str, Any] = {"offline": provider, "openai": to_openai, "anthropic": to_anthropic}
    vault: Vault = await vault_factory(providers=providers)
    yield vault
    await vault.aclose(grace_seconds=0)
    await to_openai.aclose()
    await to_anthropic.aclose()


@pytest.fixture
async def base_url(vault: Vault) -> AsyncIterator[str]:
    async with serve(create_app(vault=vault)) as url:
        yield url


@pytest.fixture
async def oai(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key="unused", base_url=f"{base_url}/v1", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
async def claude(base_url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key="unused", base_url=base_url, max_retries=0, timeout=60) as client:
        yield client


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Poll `condition` (a ceiling, not a pause: it returns as soon as it holds)."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def count_generations(vault: Vault) -> int:
    async with vault.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(generations))).scalar_one())


# -- OpenAI Chat Completions ----------------------------------------------------------------------------


@BOTH_DATABASES
async def test_chat_completion_with_the_offline_model_is_a_complete_record(
    oai: openai.AsyncOpenAI, vault: Vault
) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="offline/test-model", messages=[{"role": "user", "content": "Say hello"}], max_tokens=4
    )
    completion = raw.parse()
    generation_id = raw.headers["x-genvault-generation-id"]
    assert completion.id == f"chatcmpl-{generation_id}"
    assert completion.choices[0].finish_reason == "length"
    record = await vault.wait(generation_id)
    assert record.status == "complete"
    assert record.kind == "text"
    assert completion.choices[0].message.content == record.result_text
    assert completion.usage is not None
    assert completion.usage.completion_tokens == record.usage.output_tokens == 4
    assert record.request["api"] == "openai.chat"
    assert record.request["body"]["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_a_non_streamed_reply_longer_than_the_hubs_recent_window_is_whole(
    oai: openai.AsyncOpenAI, vault: Vault, provider: tm.TestProvider
) -> None:
    # More deltas than the in-process hub keeps as published (64): the older ones are kept packed,
    # and the non-streamed answer, read from the hub's chunks, must unpack them.
    words = [f"w{i}:" for i in range(150)]
    provider.enqueue(tm.delay(0.3), tm.text(" ".join(words)))  # still running when the route reads it
    raw = await oai.chat.completions.with_raw_response.create(
        model="offline/test-model", messages=[{"role": "user", "content": "Count"}]
    )
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.status == "complete"
    assert raw.parse().choices[0].message.content == record.result_text == " ".join(words)


async def test_streamed_tool_calls_and_usage_reach_the_sdk_and_the_record(
    oai: openai.AsyncOpenAI, vault: Vault, provider: tm.TestProvider
) -> None:
    provider.enqueue(
        tm.reasoning("Need the weather."), tm.text("Checking."), tm.tool_call("get_weather", {"city": "Paris"})
    )
    stream = await oai.chat.completions.create(
        model="offline/test-model",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, arguments, names, finish, usage = "", "", [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert text == "Checking."
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"
    assert usage is not None
    assert usage.completion_tokens > 0
    generation_id = chunk.id.removeprefix("chatcmpl-")
    record = await vault.wait(generation_id)
    assert record.result_message is not None
    kinds = [p["type"] for p in record.result_message["parts"]]
    assert "reasoning" in kinds
    assert "tool-get_weather" in kinds
    assert record.finish_reason == "tool-calls"
    # The tool definition is part of the model request (and so of the cache key).
    assert provider.calls[-1].tools[0].name == "get_weather"


async def test_the_sync_openai_client_works_too(base_url: str, provider: tm.TestProvider) -> None:
    provider.enqueue(tm.text("sync hello"))
    with openai.OpenAI(api_key="unused", base_url=f"{base_url}/v1", max_retries=0, timeout=60) as client:
        # In a thread: the server runs on this test's event loop.
        completion = await asyncio.to_thread(
            client.chat.completions.create, model="offline/test-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "sync hello"


async def test_multimodal_parts_become_model_message_files(oai: openai.AsyncOpenAI, provider: tm.TestProvider) -> None:
    provider.enqueue(tm.text("a red pixel"))
    png = (
        "data:image/png;base64,"
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    await oai.chat.completions.create(
        model="offline/test-model",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            },
        ],
        response_format={"type": "json_object"},
    )
    call = provider.calls[-1]
    assert call.messages[0] == {"role": "system", "content": "Be brief."}
    assert call.messages[1]["content"][1] == {"type": "file", "mediaType": "image/png", "data": png}
    assert call.wire is not None
    assert call.wire.body["response_format"] == {"type": "json_object"}


# -- errors in the endpoint's shape, nothing written -------------------------------------------------


@BOTH_DATABASES
async def test_bad_requests_raise_the_sdks_own_errors_and_write_nothing(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, vault: Vault, base_url: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(model="no-provider", messages=[{"role": "user", "content": "x"}])
    assert "names no provider" in caught.value.message
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="offline/test-model", messages=[])
    with pytest.raises(anthropic.BadRequestError) as anthropic_caught:
        await claude.messages.create(
            model="offline/test-model", max_tokens=5, messages=[{"role": "robot", "content": "x"}]
        )
    assert anthropic_caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    # The SDK clients' ceiling (60 s), not httpx's default 5 s: a connect timed out at load 13.
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        raw = await http.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert raw.status_code == 400
        assert set(raw.json()["error"]) == {"message", "type", "param", "code"}
        nul = await http.post(
            "/v1/messages",
            json={"model": "offline/test-model", "max_tokens": 5, "messages": [{"role": "user", "content": "a\x00b"}]},
        )
        assert nul.status_code == 400
        assert nul.json()["type"] == "error"
    assert await count_generations(vault) == 0


async def test_api_keys_are_read_from_each_sdks_own_header(vault_factory: Any, provider: tm.TestProvider) -> None:
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"auth": "api_key"})
    await vault.ensure_user("ada")
    async with vault.store.write() as conn:
        _key_id, secret = await create_key(conn, "ada", "sdk")
    async with serve(create_app(vault=vault)) as url:  # noqa: SIM117 - the clients need the server's URL
        async with (
            openai.AsyncOpenAI(api_key="wrong", base_url=f"{url}/v1", max_retries=0, timeout=60) as bad_openai,
            anthropic.AsyncAnthropic(api_key="wrong", base_url=url, max_retries=0, timeout=60) as bad_anthropic,
            openai.AsyncOpenAI(api_key=secret, base_url=f"{url}/v1", timeout=60) as good_openai,
            anthropic.AsyncAnthropic(api_key=secret, base_url=url, timeout=60) as good_anthropic,
        ):
            with pytest.raises(openai.AuthenticationError):
                await bad_openai.chat.completions.create(
                    model="offline/test-model", messages=[{"role": "user", "content": "x"}]
                )
            with pytest.raises(anthropic.AuthenticationError):
                await bad_anthropic.messages.create(
                    model="offline/test-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
            assert await count_generations(vault) == 0
            raw = await good_openai.chat.completions.with_raw_response.create(
                model="offline/test-model", messages=[{"role": "user", "content": "x"}]
            )
            message = await good_anthropic.messages.with_raw_response.create(
                model="offline/test-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    for response in (raw, message):
        record = await vault.wait(response.headers["x-genvault-generation-id"], user_id="ada")
        assert record.user_id == "ada"


# -- idempotency and dedup ----------------------------------------------------------------------------


async def test_an_idempotency_key_returns_the_same_record(oai: openai.AsyncOpenAI, vault: Vault) -> None:
    ask: dict[str, Any] = {"model": "offline/test-model", "messages": [{"role": "user", "content": "once"}]}
    headers = {"Idempotency-Key": "retry-1", "X-Genvault-Cache": "off"}
    first = await oai.chat.completions.with_raw_response.create(**ask, extra_headers=headers)
    second = await oai.chat.completions.with_raw_response.create(**ask, extra_headers=headers)
    assert first.headers["x-genvault-generation-id"] == second.headers["x-genvault-generation-id"]
    assert first.parse().choices[0].message.content == second.parse().choices[0].message.content
    assert await count_generations(vault) == 1
    with pytest.raises(openai.ConflictError):
        await oai.chat.completions.create(
            model="offline/test-model", messages=[{"role": "user", "content": "other"}], extra_headers=headers
        )


@BOTH_DATABASES
async def test_an_identical_request_joins_the_running_one_with_one_upstream_call(
    oai: openai.AsyncOpenAI, vault: Vault, upstream: FakeUpstream
) -> None:
    gate = asyncio.Event()
    upstream.enqueue(Answer(sse=(TRANSCRIPTS / "openai_text_usage.sse").read_bytes(), gate=gate))
    ask: dict[str, Any] = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "same"}]}
    first = asyncio.create_task(oai.chat.completions.with_raw_response.create(**ask))
    await until(lambda: bool(upstream.requests))
    second = asyncio.create_task(oai.chat.completions.with_raw_response.create(**ask))
    await until(lambda: len(vault.engine._runs) == 2)  # the second is running, as a copy of the first
    gate.set()
    one, two = await first, await second
    assert one.parse().choices[0].message.content == two.parse().choices[0].message.content
    assert len(upstream.requests) == 1
    copy = await vault.wait(two.headers["x-genvault-generation-id"])
    assert copy.cached_from == one.headers["x-genvault-generation-id"]
    # A cache hit answers in the client's format too, and `X-Genvault-Cache: off` calls again.
    hit = await oai.chat.completions.create(**ask)
    assert hit.choices[0].message.content == one.parse().choices[0].message.content
    assert len(upstream.requests) == 1
    upstream.enqueue(Answer(sse=(TRANSCRIPTS / "openai_text_usage.sse").read_bytes()))
    await oai.chat.completions.create(**ask, extra_headers={"X-Genvault-Cache": "off"})
    assert len(upstream.requests) == 2


# -- a real upstream -------------------------------------------------------------------------------------


async def test_an_openai_upstream_receives_the_body_as_sent_and_its_answer_is_kept(
    oai: openai.AsyncOpenAI, vault: Vault, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Answer(sse=(TRANSCRIPTS / "openai_tool_calls.sse").read_bytes(), pieces=20))
    raw = await oai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        logit_bias={"42": 1},
        extra_body={"some_future_field": {"kept": True}},
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["tool_choice"] == "required"
    assert sent["logit_bias"] == {"42": 1}
    assert sent["some_future_field"] == {"kept": True}
    assert sent["stream"] is False  # as the client asked: one answer, not a stream
    assert "stream_options" not in sent
    completion = raw.parse()
    calls = completion.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.status == "complete"
    assert record.provider == "openai"
    assert record.usage.input_tokens == completion.usage.prompt_tokens  # type: ignore[union-attr]


async def test_a_non_streamed_call_is_answered_by_the_upstreams_whole_completion(
    oai: openai.AsyncOpenAI, vault: Vault, upstream: FakeUpstream
) -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
    ]
    message = {"role": "assistant", "content": "Checking.", "reasoning_content": "Two tools.", "tool_calls": calls}
    completion = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    upstream.enqueue(Answer(body=completion))
    raw = await oai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Weather and time in Paris?"}]
    )
    assert upstream.requests[-1]["stream"] is False
    answer = raw.parse()
    assert answer.choices[0].message.content == "Checking."
    assert answer.choices[0].finish_reason == "tool_calls"
    got = answer.choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in got] == [  # type: ignore[union-attr]
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"tz":"CET"}'),
    ]
    assert answer.usage is not None
    assert answer.usage.total_tokens == 18
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.status == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (11, 7)
    assert record.result_message is not None
    types = [part["type"] for part in record.result_message["parts"]]
    assert types.count("reasoning") == types.count("text") == types.count("tool-get_weather") == 1


async def test_n_choices_from_the_offline_model_reach_the_sdk_and_are_all_recorded(
    oai: openai.AsyncOpenAI, vault: Vault
) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="offline/test-model", messages=[{"role": "user", "content": "Three ways"}], n=3, max_tokens=20
    )
    completion = raw.parse()
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    texts = [choice.message.content for choice in completion.choices]
    assert len(set(texts)) == 3  # each choice its own reply
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.result_text == texts[0]
    assert record.result_message is not None
    kept = [part["data"] for part in record.result_message["parts"] if part["type"] == "data-choice"]
    assert [(c["index"], c["message"]["content"]) for c in kept] == [(1, texts[1]), (2, texts[2])]
    assert record.usage.output_tokens == completion.usage.completion_tokens == 60  # type: ignore[union-attr]

    stream = await oai.chat.completions.create(
        model="offline/test-model",
        messages=[{"role": "user", "content": "Three ways"}],
        n=3,
        max_tokens=20,
        stream=True,
        extra_headers={"X-Genvault-Cache": "off"},
    )
    streamed: dict[int, str] = {}
    async for chunk in stream:
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
    assert [streamed[i] for i in range(3)] == texts


async def test_n_is_passed_to_the_upstream_and_every_choice_it_answers_is_kept(
    base_url: str, oai: openai.AsyncOpenAI, vault: Vault, upstream: FakeUpstream
) -> None:
    def choice(index: int, content: str) -> dict[str, Any]:
        return {"index": index, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}

    usage = {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    completion = {"id": "up", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini", "usage": usage}
    upstream.enqueue(Answer(body={**completion, "choices": [choice(0, "Yes."), choice(1, "No.")]}))
    answer = await oai.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Yes or no?"}], n=2
    )
    assert upstream.requests[-1]["n"] == 2
    assert [c.message.content for c in answer.choices] == ["Yes.", "No."]

    # Streamed: the upstream's chunks (each with its choice's `index`) reach the client unchanged.
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Ye"}}]},
        {"choices": [{"index": 1, "delta": {"role": "assistant", "content": "N"}}]},
        {"choices": [{"index": 0, "delta": {"content": "s."}, "finish_reason": "stop"}]},
        {"choices": [{"index": 1, "delta": {"content": "o."}, "finish_reason": "stop"}]},
        {"choices": [], "usage": usage},
    ]
    head = {"id": "up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    sse = b"".join(b"data: " + json.dumps({**head, **e}).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    upstream.enqueue(Answer(sse=sse, pieces=3))
    raw = await oai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Yes or no?"}],
        n=2,
        stream=True,
        extra_headers={"X-Genvault-Cache": "off"},
    )
    streamed: dict[int, str] = {}
    async for chunk in raw.parse():
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + (c.delta.content or "")
    assert streamed == {0: "Yes.", 1: "No."}
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.result_text == "Yes."
    assert record.result_message is not None
    kept = [part["data"] for part in record.result_message["parts"] if part["type"] == "data-choice"]
    assert kept == [{"index": 1, "message": {"role": "assistant", "content": "No."}, "finish_reason": "stop"}]


async def test_n_out_of_range_or_for_an_anthropic_model_is_the_sdks_bad_request(
    oai: openai.AsyncOpenAI, vault: Vault
) -> None:
    for model, n in (("offline/test-model", 0), ("offline/test-model", 129), ("anthropic/claude-x", 2)):
        with pytest.raises(openai.BadRequestError, match="n "):
            await oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], n=n)
    assert await count_generations(vault) == 0


@BOTH_DATABASES
async def test_a_streamed_pass_through_call_relays_the_upstreams_own_bytes(
    base_url: str, vault: Vault, upstream: FakeUpstream
) -> None:
    transcript = (TRANSCRIPTS / "openai_tool_calls.sse").read_bytes()
    body = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Weather in Paris and the time?"}],
    }

    async def call(request_body: dict[str, Any]) -> tuple[bytes, str]:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=request_body) as response,
        ):
            assert response.status_code == 200
            return await response.aread(), response.headers["x-genvault-generation-id"]

    upstream.enqueue(Answer(sse=transcript, pieces=20))
    received, generation_id = await call(body)
    # Byte for byte what the upstream sent, but for its `[DONE]`: genvault's own comes last, once
    # the record is committed.
    expected = transcript.replace(b"data: [DONE]\n", b"") + b"data: [DONE]\n\n"
    assert received == expected
    record = await vault.wait(generation_id)
    assert record.status == "complete"
    assert record.finish_reason == "tool-calls"
    assert record.usage.input_tokens is not None

    # A client that did not ask for usage does not get the upstream's usage-only chunk.
    upstream.enqueue(Answer(sse=transcript, pieces=20))
    plain = {**body, "stream_options": None, "messages": [{"role": "user", "content": "Again, no usage"}]}
    received, _ = await call(plain)
    events = [json.loads(line[6:]) for line in received.split(b"\n") if line.startswith(b"data: {")]
    assert events
    assert all(event["choices"] for event in events)

    # An identical request is a copy of the first: rendered from its chunks, in the same format.
    received, copy_id = await call(body)
    assert len(upstream.requests) == 2
    assert f"chatcmpl-{copy_id}".encode() in received
    assert received.endswith(b"data: [DONE]\n\n")
    assert (await vault.wait(copy_id)).cached_from == generation_id


async def test_an_upstream_error_comes_back_with_its_status_in_the_clients_shape_and_ends_the_record_in_error(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, vault: Vault, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Answer(status=429, body=json.loads((TRANSCRIPTS / "openai_429.json").read_text())))
    with pytest.raises(openai.RateLimitError) as caught:  # the upstream's status
        await oai.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    generation_id = caught.value.response.headers["x-genvault-generation-id"]
    record = await vault.wait(generation_id)
    assert record.status == "error"
    assert record.error is not None
    assert record.error in caught.value.message
    upstream.enqueue(
        Answer(status=529, body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    with pytest.raises(anthropic.APIStatusError) as anthropic_caught:
        await claude.messages.create(
            model="anthropic/claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert anthropic_caught.value.status_code == 529
    assert "Overloaded" in anthropic_caught.value.message


# -- Anthropic Messages ---------------------------------------------------------------------------------


async def test_messages_create_and_stream_with_thinking_and_tools(
    claude: anthropic.AsyncAnthropic, vault: Vault, provider: tm.TestProvider
) -> None:
    message = await claude.messages.create(
        model="offline/test-model", max_tokens=3, system="Be brief.", messages=[{"role": "user", "content": "hello"}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    provider.enqueue(
        tm.reasoning("Think.", provider_metadata={"anthropic": {"signature": "sig-1"}}),
        tm.text("Let me look."),
        tm.tool_call("get_weather", {"city": "Paris"}),
    )
    async with claude.messages.stream(
        model="offline/test-model",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    ) as stream:
        final = await stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert final.content[0].signature == "sig-1"  # type: ignore[union-attr]
    assert final.content[2].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    record = await vault.wait(final.id.removeprefix("msg_"))
    assert record.status == "complete"
    assert record.request["api"] == "anthropic.messages"
    # A follow-up with the tool result and the signed thinking block is understood.
    provider.enqueue(tm.text("Sunny."))
    reply = await claude.messages.create(
        model="offline/test-model",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in final.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": final.content[2].id, "content": "sunny"}],
            },  # type: ignore[union-attr]
        ],
    )
    assert reply.content[0].text == "Sunny."  # type: ignore[union-attr]
    sent = provider.calls[-1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["content"][0]["providerOptions"] == {"anthropic": {"signature": "sig-1"}}
    assert sent[2]["content"][0]["toolName"] == "get_weather"


async def test_an_anthropic_upstream_receives_the_body_as_sent(
    claude: anthropic.AsyncAnthropic, vault: Vault, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Answer(sse=(TRANSCRIPTS / "anthropic_thinking_tool_use.sse").read_bytes(), pieces=30))
    async with claude.messages.stream(
        model="anthropic/claude-fake-1",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        extra_body={"future_option": 7},
    ) as stream:
        final = await stream.get_final_message()
        generation_id = stream.response.headers["x-genvault-generation-id"]
    sent = upstream.requests[-1]
    assert sent["model"] == "claude-fake-1"
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["future_option"] == 7
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    record = await vault.wait(generation_id)
    assert record.status == "complete"
    assert record.usage.input_tokens is not None
    assert record.usage.input_tokens > 0


async def test_a_non_streamed_anthropic_call_is_answered_by_the_upstreams_whole_message(
    claude: anthropic.AsyncAnthropic, vault: Vault, upstream: FakeUpstream
) -> None:
    content = [
        {"type": "thinking", "thinking": "Need the weather.", "signature": "sig-9"},
        {"type": "text", "text": "Checking Paris."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    usage = {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 9}
    whole = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake-1",
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": usage,
    }
    upstream.enqueue(Answer(body=whole))
    raw = await claude.messages.with_raw_response.create(
        model="anthropic/claude-fake-1",
        max_tokens=64000,  # would need a stream by the SDK's rule; the client's SDK allowed it
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        timeout=60,
    )
    assert upstream.requests[-1]["stream"] is False  # as the client asked: one message, not a stream
    message = await raw.parse()
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == "sig-9"  # type: ignore[union-attr]
    assert message.content[2].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.status == "complete"
    assert record.result_text == "Checking Paris."
    assert (record.usage.input_tokens, record.usage.cached_input_tokens, record.usage.output_tokens) == (15, 3, 9)


async def test_a_streamed_anthropic_call_relays_the_upstreams_own_events(
    base_url: str, vault: Vault, upstream: FakeUpstream
) -> None:
    transcript = (TRANSCRIPTS / "anthropic_text.sse").read_bytes()
    upstream.enqueue(Answer(sse=transcript, pieces=30))
    body = {
        "model": "anthropic/claude-fake-1",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
        http.stream("POST", "/v1/messages", json=body) as response,
    ):
        assert response.status_code == 200
        received = await response.aread()
        generation_id = response.headers["x-genvault-generation-id"]
    # The upstream's events as it sent them; its `message_stop` comes from genvault, after the
    # record's commit (the same bytes the API sends).
    events = [e + b"\n\n" for e in transcript.split(b"\n\n") if e.strip()]
    assert events[-1].startswith(b"event: message_stop")
    assert received == b"".join(events[:-1]) + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    record = await vault.wait(generation_id)
    assert record.status == "complete"
    assert record.result_text


# -- OpenAI Responses -------------------------------------------------------------------------------------


async def test_responses_create_and_stream_have_the_real_event_types(
    oai: openai.AsyncOpenAI, vault: Vault, provider: tm.TestProvider
) -> None:
    response = await oai.responses.create(model="offline/test-model", input="hello", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    record = await vault.wait(response.id.removeprefix("resp_"))
    assert response.output_text == record.result_text
    provider.enqueue(tm.reasoning("Hmm."), tm.text("Looking."), tm.tool_call("get_weather", {"city": "Paris"}))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    async with oai.responses.stream(
        model="offline/test-model",
        instructions="Be brief.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}],
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    for expected in ("response.reasoning_summary_text.delta", "response.output_text.delta"):
        assert expected in types
    assert "response.function_call_arguments.done" in types
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output_text == "Looking."
    assert provider.calls[-1].system == "Be brief."


async def test_previous_response_id_continues_the_conversation_from_the_records(
    oai: openai.AsyncOpenAI, provider: tm.TestProvider
) -> None:
    provider.enqueue(tm.text("Paris."))
    first = await oai.responses.create(model="offline/test-model", instructions="Be brief.", input="Capital of France?")
    provider.enqueue(tm.text("About two million."))
    second = await oai.responses.create(
        model="offline/test-model", input="Its population?", previous_response_id=first.id
    )
    assert second.output_text == "About two million."
    sent = provider.calls[-1]
    assert sent.system is None  # an earlier request's instructions are not carried over
    assert [(m["role"], [p.get("text") for p in m["content"]]) for m in sent.messages] == [
        ("user", ["Capital of France?"]),
        ("assistant", ["Paris."]),
        ("user", ["Its population?"]),
    ]
    # A chain reaches back through each earlier response.
    provider.enqueue(tm.text("Yes."))
    await oai.responses.create(
        model="offline/test-model",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Sure?"}]}],
        previous_response_id=second.id,
    )
    assert [m["role"] for m in provider.calls[-1].messages] == ["user", "assistant", "user", "assistant", "user"]
    for unknown in ("resp_gen_00000000000000000000000000", "nonsense"):
        with pytest.raises(openai.BadRequestError, match="no such response"):
            await oai.responses.create(model="offline/test-model", input="more", previous_response_id=unknown)
    for bad in ("r" * 100_000, "resp_\x00x", ""):
        with pytest.raises(openai.BadRequestError, match="previous_response_id must be") as refused:
            await oai.responses.create(model="offline/test-model", input="more", previous_response_id=bad)
        assert len(str(refused.value)) < 1_000  # said what is wrong without echoing the id back


# -- the AI SDK in Node ----------------------------------------------------------------------------------


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("api", ["chat", "responses", "anthropic"])
async def test_the_ai_sdk_providers_generate_and_stream_through_the_gateway(
    api: str,
    base_url: str,
    vault: Vault,
    provider: tm.TestProvider,
    node: Path,  # noqa: F811 - the fixture imported above
) -> None:
    for call in ("generate", "stream"):
        provider.enqueue(tm.reasoning("Hmm."), tm.text("Calling it."), tm.tool_call("get_weather", {"city": "Paris"}))
        spec = {"baseUrl": base_url, "api": api, "call": call, "model": "offline/test-model", "tool": "get_weather"}
        spec["prompt"] = f"Weather in Paris? ({call})"  # not identical: each is its own model call
        process = await asyncio.create_subprocess_exec(
            str(node),
            str(CLIENT_DIR / "gateway-scenario.mjs"),
            json.dumps(spec),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["errors"] == []
        assert result["text"] == "Calling it."
        assert result["finishReason"] == "tool-calls"
        assert result["toolCalls"] == [{"toolName": "get_weather", "input": {"city": "Paris"}}]
        if api != "chat":  # Chat Completions has no reasoning field the AI SDK reads
            assert result["reasoning"] == "Hmm."
        assert result["usage"]["outputTokens"] > 0
        record = await vault.wait(result["headers"]["x-genvault-generation-id"])
        assert record.status == "complete"
        assert record.result_text == "Calling it."


# -- disconnects and crashes ------------------------------------------------------------------------------


async def test_a_client_that_disconnects_mid_stream_does_not_stop_the_upstream_call(
    base_url: str, vault: Vault, upstream: FakeUpstream
) -> None:
    gate = asyncio.Event()
    upstream.enqueue(Answer(sse=(TRANSCRIPTS / "openai_text_usage.sse").read_bytes(), gate=gate, gate_after=2))
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        generation_id = response.headers["x-genvault-generation-id"]
        async for line in response.aiter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # one token seen: hang up
    gate.set()
    record = await vault.wait(generation_id)
    assert record.status == "complete"
    expected = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in (TRANSCRIPTS / "openai_text_usage.sse").read_text().splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    )
    assert record.result_text == expected


async def test_a_non_streamed_call_whose_client_leaves_still_completes_its_record(
    base_url: str, vault: Vault, provider: tm.TestProvider
) -> None:
    called, gate = asyncio.Event(), asyncio.Event()

    async def hold(_request: Any) -> None:
        called.set()
        await gate.wait()

    provider.on_request = hold
    body = {"model": "offline/test-model", "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        call = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        await asyncio.wait_for(called.wait(), 30)
        call.cancel()  # hang up while the server waits for the model's answer
        with pytest.raises(asyncio.CancelledError):
            await call
    gate.set()
    async with vault.store.read() as conn:
        (generation_id,) = (await conn.execute(select(generations.c.id))).scalars().all()
    record = await vault.wait(generation_id)
    assert record.status == "complete"
    assert record.result_text


@pytest.mark.long
@pytest.mark.slow
async def test_a_killed_server_leaves_the_gateway_call_interrupted_with_its_checkpointed_text(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'genvault.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")},
        "GENVAULT_DATABASE_URL": url,
        "GENVAULT_DATA_DIR": str(tmp_path),
        "GENVAULT_TEST_MODEL_TPS": "15",
        "GENVAULT_CHECKPOINT_MS": "50",
    }
    log = (tmp_path / "server.err").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant
        [sys.executable, "-m", "genvault", "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    store = Store(url)
    shown = saved = ""
    try:
        body = {"model": "offline/test-model", "messages": [{"role": "user", "content": "Tell me a long story."}]}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            # A ceiling, not a pause: on a loaded machine the start (imports, migrations) can take
            # well over 30 s.
            for _ in range(1800):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
                generation_id = response.headers["x-genvault-generation-id"]
                killed = False
                # After the kill, the lines the server sent before it died are still read: the
                # checkpoint may hold a token the client had not read yet when it was killed.
                with contextlib.suppress(httpx.TransportError):
                    async for line in response.aiter_lines():
                        if line.startswith("data: {"):
                            shown += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                        if not killed and len(shown.split()) >= 8:
                            async with store.read() as conn:
                                saved = (
                                    await conn.scalar(
                                        select(generations.c.result_text).where(generations.c.id == generation_id)
                                    )
                                    or ""
                                )
                            if saved:
                                os.kill(proc.pid, signal.SIGKILL)
                                killed = True
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        await store.aclose()
    async with Vault(Settings(database_url=url, data_dir=tmp_path)) as vault:  # its start-up sweep
        record = await vault.get_generation(generation_id)
    assert record.status == "interrupted"
    # Every checkpointed token is kept, and what is kept and what was shown are one reply: the
    # server may have checkpointed a token it had not sent yet, or sent one not yet checkpointed.
    assert saved
    assert record.result_text.startswith(saved)
    assert shown.startswith(record.result_text) or record.result_text.startswith(shown)


# -- models and images ----------------------------------------------------------------------------------


async def test_models_lists_the_configured_models_with_their_prices(
    vault_factory: Any, provider: tm.TestProvider
) -> None:
    overrides = {"price_overrides": {"openai/house-model": {"input_mtok": "1.5", "output_mtok": "6"}}}
    vault = await vault_factory(providers={"offline": provider}, settings_overrides=overrides)
    async with (
        serve(create_app(vault=vault)) as url,
        openai.AsyncOpenAI(api_key="x", base_url=f"{url}/v1", timeout=60) as client,
    ):
        listed = {model.id: model async for model in client.models.list()}
        one = await client.models.retrieve("openai/house-model")
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("openai/no-such-model")
    assert one.id == "openai/house-model"
    assert one.pricing == listed["openai/house-model"].pricing  # type: ignore[attr-defined]
    assert {"offline/test-model", "offline/test-image", "openai/house-model"} <= set(listed)
    assert listed["openai/house-model"].pricing == {  # type: ignore[attr-defined]
        "input": "1.5",
        "output": "6",
        "currency": "USD",
        "per": "1M tokens",
        "source": "override",
    }


async def test_images_generations_keeps_the_image_and_answers_urls_or_base64(
    oai: openai.AsyncOpenAI, vault: Vault, base_url: str
) -> None:
    raw = await oai.images.with_raw_response.generate(model="offline/test-image", prompt="a red fox", n=2)
    images = raw.parse()
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert record.kind == "image"
    assert [image.url for image in images.data or []] == [base_url + url for url in record.image_urls]
    inline = await oai.images.generate(model="offline/test-image", prompt="a blue fox", response_format="b64_json")
    assert inline.data
    assert base64.b64decode(inline.data[0].b64_json or "")[:4] == b"\x89PNG"
    with pytest.raises(openai.BadRequestError):
        await oai.images.generate(model="offline/test-image", prompt="")


async def test_a_mid_stream_upstream_error_reaches_the_client_as_the_apis_error_event(
    claude: anthropic.AsyncAnthropic, vault: Vault, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Answer(sse=(TRANSCRIPTS / "anthropic_overloaded_midstream.sse").read_bytes(), pieces=20))
    shown: list[str] = []

    async def read() -> None:
        async with claude.messages.stream(
            model="anthropic/claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            async for text in stream.text_stream:
                shown.append(text)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await read()
    assert "Overloaded" in caught.value.message
    records = await vault.list_generations()
    record = records.items[0]
    assert record.status == "error"
    assert record.result_text == "".join(shown)
