"""The offline test model: deterministic by default, scriptable, observable, cancellable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genvault.errors import ProviderError
from genvault.providers.base import (
    ModelRequest,
    Provider,
    ProviderEvent,
    StreamFile,
    StreamFinish,
    StreamReasoningDelta,
    StreamSource,
    StreamTextDelta,
    StreamToolCall,
    StreamToolInputDelta,
    StreamToolInputStart,
    StreamUsage,
)
from genvault.providers.testmodel import (
    TestProvider,
    count_tokens,
    delay,
    error,
    file,
    finish,
    reasoning,
    source,
    split_tokens,
    text,
    tool_call,
    usage,
)


def ask(prompt: str = "Tell me about rivers.", **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model="test-model", messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}], **kwargs
    )


async def collect(provider: TestProvider, request: ModelRequest) -> list[ProviderEvent]:
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


def reply_text(events: list[ProviderEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, StreamTextDelta))


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def fast() -> TestProvider:
    return TestProvider(tokens_per_second=0)


def test_is_a_provider_named_offline():
    provider = TestProvider()

    assert isinstance(provider, Provider)
    assert provider.name == "offline"


class TestDefaultReply:
    async def test_the_same_prompt_gets_the_same_reply(self, fast):
        first = await collect(fast, ask())
        second = await collect(TestProvider(tokens_per_second=0), ask())

        assert first == second

    async def test_a_different_prompt_gets_a_different_reply(self, fast):
        assert reply_text(await collect(fast, ask("one"))) != reply_text(await collect(fast, ask("two")))

    async def test_a_different_system_prompt_gets_a_different_reply(self, fast):
        plain = reply_text(await collect(fast, ask()))
        with_system = reply_text(await collect(fast, ask(system="Be terse.")))

        assert plain != with_system

    @pytest.mark.parametrize("prompt", ["a", "Tell me about rivers.", "x" * 500, "żółw 🐢", ""])
    async def test_reply_is_40_to_80_tokens_streamed_as_token_deltas(self, fast, prompt):
        events = await collect(fast, ask(prompt))

        deltas = [event for event in events if isinstance(event, StreamTextDelta)]
        assert 40 <= len(deltas) <= 80
        assert reply_text(events).startswith("This is the offline test model")
        assert all(len(split_tokens(delta.text)) == 1 for delta in deltas)

    async def test_ends_with_usage_counting_prompt_and_reply_tokens_then_stop(self, fast):
        events = await collect(fast, ask("Tell me about rivers."))

        *deltas, reported, finished = events
        assert reported == StreamUsage(input_tokens=5, output_tokens=len(deltas), total_tokens=5 + len(deltas))
        assert finished == StreamFinish("stop")

    async def test_max_tokens_truncates_the_reply_and_finishes_with_length(self, fast):
        events = await collect(fast, ask(params={"max_tokens": 7}))

        deltas = [event for event in events if isinstance(event, StreamTextDelta)]
        assert len(deltas) == 7
        assert events[-2] == StreamUsage(input_tokens=5, output_tokens=7, total_tokens=12)
        assert events[-1] == StreamFinish("length")

    async def test_input_tokens_count_system_and_every_message(self, fast):
        request = ModelRequest(
            model="test-model",
            system="Be terse.",  # 3
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Hi there"}]},  # 2
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},  # 1
                {"role": "user", "content": "Bye"},  # 1
            ],
        )

        events = await collect(fast, request)

        assert isinstance(events[-2], StreamUsage)
        assert events[-2].input_tokens == 7


class TestPacing:
    async def test_sleeps_one_over_tps_before_each_token(self):
        sleep = RecordingSleep()
        provider = TestProvider(tokens_per_second=50, sleep=sleep)

        events = await collect(provider, ask())

        tokens = [event for event in events if isinstance(event, StreamTextDelta)]
        assert sleep.delays == [pytest.approx(1 / 50)] * len(tokens)

    async def test_zero_tps_still_yields_to_the_event_loop_without_waiting(self):
        sleep = RecordingSleep()
        provider = TestProvider(tokens_per_second=0, sleep=sleep)

        await collect(provider, ask())

        assert sleep.delays
        assert set(sleep.delays) == {0}

    async def test_default_pacing_really_sleeps(self):
        provider = TestProvider(tokens_per_second=1000)
        other_task_ran = asyncio.Event()

        async def other() -> None:
            other_task_ran.set()

        task = asyncio.create_task(other())
        stream = provider.stream(ask())
        await anext(stream)
        await stream.aclose()
        await task

        assert other_task_ran.is_set()

    def test_negative_tps_is_refused(self):
        with pytest.raises(ValueError, match="tokens_per_second"):
            TestProvider(tokens_per_second=-1)


class TestScripts:
    async def test_text_streams_in_token_sized_deltas_that_rebuild_the_text(self, fast):
        fast.enqueue(text("Hello there,\n  world! "))

        events = await collect(fast, ask())

        assert [event for event in events if isinstance(event, StreamTextDelta)] == [
            StreamTextDelta("Hello"),
            StreamTextDelta(" there,"),
            StreamTextDelta("\n  world!"),
            StreamTextDelta(" "),
        ]

    async def test_a_plain_string_step_means_text(self, fast):
        fast.enqueue("Just this")

        assert reply_text(await collect(fast, ask())) == "Just this"

    async def test_every_step_kind_in_order_with_computed_usage(self, fast):
        fast.enqueue(
            reasoning("Think first.", provider_metadata={"anthropic": {"signature": "sig"}}),
            text("Checking."),
            tool_call("weather", {"city": "Paris"}, call_id="c1"),
            source("https://example.com/paris", "Paris"),
            file("image/png", b"\x89PNG"),
        )

        events = await collect(fast, ask("Weather?"))

        assert events == [
            StreamReasoningDelta("Think"),
            StreamReasoningDelta(" first."),
            StreamReasoningDelta("", provider_metadata={"anthropic": {"signature": "sig"}}),
            StreamTextDelta("Checking."),
            StreamToolInputStart("c1", "weather"),
            StreamToolInputDelta("c1", '{"city":'),
            StreamToolInputDelta("c1", ' "Paris"}'),
            StreamToolCall("c1", "weather", {"city": "Paris"}),
            StreamSource("src_1_3", "https://example.com/paris", "Paris"),
            StreamFile("image/png", b"\x89PNG"),
            StreamUsage(input_tokens=2, output_tokens=5, reasoning_tokens=2, total_tokens=7),
            StreamFinish("tool-calls"),
        ]

    async def test_tool_call_without_streamed_input_and_a_generated_id(self, fast):
        fast.enqueue(tool_call("lookup", {"q": 1}, stream_input=False))

        events = await collect(fast, ask())

        assert events[0] == StreamToolCall("call_1_0", "lookup", {"q": 1})
        assert events[-1] == StreamFinish("tool-calls")

    async def test_usage_step_replaces_the_computed_usage(self, fast):
        fast.enqueue(text("Hi"), usage(input=100, output=20, cached_input=80, cache_write=5, reasoning=10))

        events = await collect(fast, ask())

        assert events[-2] == StreamUsage(100, 20, 80, 5, 10, 120)

    async def test_finish_step_sets_the_finish_reason(self, fast):
        fast.enqueue(text("Partial"), finish("content-filter"))

        events = await collect(fast, ask())

        assert events[-1] == StreamFinish("content-filter")

    async def test_error_step_raises_after_the_steps_before_it(self, fast):
        fast.enqueue(text("Once upon a"), error("overloaded", status=529), text("never sent"))
        received: list[ProviderEvent] = []

        with pytest.raises(ProviderError) as caught:
            await consume(fast.stream(ask()), received)

        assert reply_text(received) == "Once upon a"
        assert caught.value.message == "overloaded"
        assert caught.value.status == 529
        assert caught.value.provider == "offline"

    async def test_delay_step_sleeps_for_its_seconds(self):
        sleep = RecordingSleep()
        provider = TestProvider(tokens_per_second=0, sleep=sleep)
        provider.enqueue(delay(2.5), text("late"))

        await collect(provider, ask())

        assert sleep.delays[0] == 2.5

    async def test_replies_are_used_in_order_then_the_default_returns(self, fast):
        fast.enqueue("first")
        fast.enqueue("second")
        assert fast.queued == 2

        replies = [reply_text(await collect(fast, ask())) for _ in range(3)]

        assert replies[:2] == ["first", "second"]
        assert replies[2].startswith("This is the offline test model")
        assert fast.queued == 0


class TestInstrumentation:
    async def test_calls_record_the_request_before_the_first_event(self, fast):
        request = ask()
        stream = fast.stream(request)
        assert fast.calls == []  # nothing is sent until the stream is read

        await anext(stream)

        assert fast.calls == [request]
        assert fast.call_count == 1
        await stream.aclose()

    async def test_on_request_is_awaited_before_anything_streams(self):
        order: list[str] = []

        async def on_request(request: ModelRequest) -> None:
            await asyncio.sleep(0)
            order.append(f"request:{request.model}")

        provider = TestProvider(tokens_per_second=0, on_request=on_request)
        provider.enqueue("Hi")

        async for event in provider.stream(ask()):
            order.append(type(event).__name__)

        assert order == ["request:test-model", "StreamTextDelta", "StreamUsage", "StreamFinish"]

    async def test_an_error_in_on_request_fails_the_stream_before_any_event(self):
        async def on_request(request: ModelRequest) -> None:
            raise RuntimeError("pending row missing")

        provider = TestProvider(tokens_per_second=0, on_request=on_request)

        with pytest.raises(RuntimeError, match="pending row missing"):
            await collect(provider, ask())
        assert provider.call_count == 1


class TestCancellation:
    async def test_cancelling_mid_stream_stops_at_once(self):
        provider = TestProvider(tokens_per_second=100)
        received: list[ProviderEvent] = []

        seen = asyncio.Event()
        task = asyncio.create_task(consume(provider.stream(ask()), received, seen, 3))
        await seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert 3 <= len(received) < 40
        assert not any(isinstance(event, StreamFinish) for event in received)

    async def test_cancelling_during_a_delay_step(self):
        provider = TestProvider(tokens_per_second=0)
        provider.enqueue(text("a"), delay(3600), text("b"))
        received: list[ProviderEvent] = []

        seen = asyncio.Event()
        task = asyncio.create_task(consume(provider.stream(ask()), received, seen))
        await seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert received == [StreamTextDelta("a")]

    async def test_cancelling_while_on_request_waits(self):
        arrived, gate = asyncio.Event(), asyncio.Event()

        async def on_request(request: ModelRequest) -> None:
            arrived.set()
            await gate.wait()

        provider = TestProvider(tokens_per_second=0, on_request=on_request)
        task = asyncio.create_task(collect(provider, ask()))
        await arrived.wait()
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("value", "count"),
    [("", 0), ("Hello, world!", 4), ("don't", 3), ("a  b\nc", 3)],
)
def test_count_tokens_counts_words_and_punctuation(value, count):
    assert count_tokens(value) == count


@pytest.mark.parametrize("value", ["", " ", "a", "a b", " lead", "trail ", "x\n\ny  z\t", "🐢 żółw"])
def test_split_tokens_rebuilds_the_text_exactly(value):
    assert "".join(split_tokens(value)) == value
