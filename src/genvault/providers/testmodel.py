"""The offline test model, `offline/test-model`: a real `Provider` that never leaves the process.

Invariants:
- Same request, same reply. With nothing enqueued it streams a reply derived only from the
  prompt (system + messages), so records made with it are reproducible; the name says plainly
  that no real model answered.
- Every request is recorded in `calls` (and `on_request` awaited) when the stream starts, before
  the first event, which is when a real provider would have sent its HTTP request. `keep_calls`
  bounds that history to the latest requests (the server's instance keeps a few, not every
  request for the life of the process); tests keep them all.
- Every pause is an `await` on the injected `sleep`, so cancelling the consumer lands promptly.

Scripting, in the manner of simonw/llm's `MockModel.enqueue`: each `enqueue(*steps)` queues one
reply; each stream takes the oldest queued reply::

    provider = TestProvider(tokens_per_second=0)
    provider.enqueue(reasoning("Think."), text("Hello there"), tool_call("weather", {"city": "Paris"}))
    provider.enqueue(text("Partial"), error("overloaded", status=529))
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from genvault.errors import ProviderError
from genvault.providers.base import (
    FinishReason,
    ModelRequest,
    ProviderEvent,
    StreamData,
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

__all__ = [
    "TEST_MODEL",
    "TEST_PROVIDER",
    "Step",
    "TestProvider",
    "count_tokens",
    "delay",
    "error",
    "file",
    "finish",
    "reasoning",
    "source",
    "split_tokens",
    "text",
    "tool_call",
    "usage",
]

logger = logging.getLogger(__name__)

TEST_PROVIDER = "offline"
TEST_MODEL = "test-model"

Sleep = Callable[[float], Awaitable[None]]


# --- steps ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextStep:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningStep:
    text: str
    provider_metadata: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStep:
    name: str
    input: Any
    call_id: str | None = None
    stream_input: bool = True
    provider_executed: bool = False


@dataclass(frozen=True, slots=True)
class SourceStep:
    url: str
    title: str | None = None


@dataclass(frozen=True, slots=True)
class FileStep:
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ErrorStep:
    message: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class DelayStep:
    seconds: float


@dataclass(frozen=True, slots=True)
class UsageStep:
    usage: StreamUsage


@dataclass(frozen=True, slots=True)
class FinishStep:
    reason: FinishReason


Step = TextStep | ReasoningStep | ToolCallStep | SourceStep | FileStep | ErrorStep | DelayStep | UsageStep | FinishStep


def text(value: str) -> TextStep:
    """Stream `value` as text, one token-sized delta at a time."""
    return TextStep(value)


def reasoning(value: str, *, provider_metadata: dict[str, dict[str, Any]] | None = None) -> ReasoningStep:
    """Stream `value` as reasoning; `provider_metadata` (e.g. a signature) follows as a last empty delta."""
    return ReasoningStep(value, provider_metadata)


def tool_call(
    name: str,
    input: Any,
    call_id: str | None = None,
    stream_input: bool = True,
    *,
    provider_executed: bool = False,
) -> ToolCallStep:
    """Call tool `name` with `input` (any JSON value). `stream_input` streams the JSON text first."""
    return ToolCallStep(name, input, call_id, stream_input, provider_executed)


def source(url: str, title: str | None = None) -> SourceStep:
    return SourceStep(url, title)


def file(media_type: str, data: bytes) -> FileStep:
    return FileStep(media_type, data)


def error(message: str, status: int | None = None) -> ErrorStep:
    """Raise `ProviderError(message, status=status)` here, after the earlier steps were streamed."""
    return ErrorStep(message, status)


def delay(seconds: float) -> DelayStep:
    return DelayStep(seconds)


def usage(
    *,
    input: int | None = None,
    output: int | None = None,
    cached_input: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
    total: int | None = None,
) -> UsageStep:
    """Report exactly this usage instead of the computed one (`None` = not reported).

    `total` defaults to `input + output` when both are given.
    """
    if total is None and input is not None and output is not None:
        total = input + output
    return UsageStep(StreamUsage(input, output, cached_input, cache_write, reasoning, total))


def finish(reason: FinishReason) -> FinishStep:
    """End with this finish reason instead of the default (`tool-calls` after a tool call, else `stop`)."""
    return FinishStep(reason)


# --- tokens --------------------------------------------------------------------------------------

# A "token" is a run of non-space characters with the whitespace before it, so the deltas of a
# text concatenate back to exactly that text (trailing whitespace is a token of its own).
_STREAM_TOKEN = re.compile(r"\s*\S+|\s+$")
# For counting prompt tokens: words and single punctuation marks, a stable stand-in for a tokenizer.
_COUNT_TOKEN = re.compile(r"\w+|[^\w\s]")


def split_tokens(value: str) -> list[str]:
    """Token-sized pieces of `value` whose concatenation is `value`."""
    return _STREAM_TOKEN.findall(value)


def count_tokens(value: str) -> int:
    return len(_COUNT_TOKEN.findall(value))


def _prompt_text(request: ModelRequest) -> str:
    pieces: list[str] = [request.system or ""]
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
            continue
        for part in content or []:
            kind = part.get("type")
            if kind in ("text", "reasoning"):
                pieces.append(str(part.get("text", "")))
            elif kind == "tool-call":
                pieces.append(f"{part.get('toolName', '')} {json.dumps(part.get('input'))}")
            elif kind == "tool-result":
                pieces.append(json.dumps(part.get("output")))
    return "\n".join(pieces)


# --- the default reply ---------------------------------------------------------------------------

_OPENING = "This is the offline test model, replying without calling any real model."
_WORDS = (  # noqa: SIM905 - a word list reads better as words
    "amber anchor apple arch autumn basin beacon birch bramble breeze canyon cedar channel "
    "cinder clover comet coral crystal delta dune ember falcon fern fjord glacier granite "
    "harbor hazel heron island juniper lagoon lantern lichen maple meadow meteor mist moss "
    "nebula oak orchard pebble pine prairie quartz raven reef ridge river saffron sage shore "
    "sparrow spruce summit thistle thunder tide timber valley willow"
).split()


def default_reply(request: ModelRequest, choice: int = 0) -> str:
    """The reply to a request with nothing enqueued: 40 to 80 tokens chosen by a hash of the prompt
    (and, for the choices after the first that `n` asks for, of the choice's index)."""
    identity: dict[str, Any] = {"system": request.system, "messages": request.messages}
    if choice:
        identity["choice"] = choice
    prompt = json.dumps(
        identity,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    digest = hashlib.sha256(prompt.encode()).digest()
    # Extend the digest deterministically so every chosen word has its own byte.
    stream = digest + hashlib.sha256(digest).digest() + hashlib.sha256(digest * 2).digest()
    count = 28 + digest[0] % 41  # 12 opening tokens + 28..68 words = 40..80 tokens
    words = [_WORDS[stream[1 + i] % len(_WORDS)] for i in range(count)]
    return f"{_OPENING} {' '.join(words)}."


# --- the provider --------------------------------------------------------------------------------


class TestProvider:
    """The offline test model. See the module docstring for scripting."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        tokens_per_second: float = 200.0,
        *,
        name: str = TEST_PROVIDER,
        on_request: Callable[[ModelRequest], Awaitable[None]] | None = None,
        sleep: Sleep = asyncio.sleep,
        keep_calls: int | None = None,
    ) -> None:
        if tokens_per_second < 0:
            raise ValueError("tokens_per_second must be >= 0")
        self.name = name
        self.tokens_per_second = tokens_per_second
        self.on_request = on_request
        self.calls: list[ModelRequest] = []
        self.keep_calls = keep_calls
        self._call_count = 0
        self._sleep = sleep
        self._queue: deque[tuple[Step, ...]] = deque()

    def __repr__(self) -> str:
        return f"TestProvider(name={self.name!r}, tokens_per_second={self.tokens_per_second!r})"

    @property
    def call_count(self) -> int:
        return self._call_count

    @property
    def queued(self) -> int:
        """Replies enqueued and not yet streamed."""
        return len(self._queue)

    def enqueue(self, *steps: Step | str) -> None:
        """Queue one reply made of `steps` (a plain string means `text(...)`)."""
        self._queue.append(tuple(text(step) if isinstance(step, str) else step for step in steps))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        self.calls.append(request)
        if self.keep_calls is not None and len(self.calls) > self.keep_calls:
            del self.calls[: len(self.calls) - self.keep_calls]
        self._call_count += 1
        call_number = self._call_count
        if self.on_request is not None:
            await self.on_request(request)
        if self._queue:
            steps = self._queue.popleft()
            logger.debug("%s: scripted reply %d with %d steps", self.name, call_number, len(steps))
            async for event in self._scripted(request, steps, call_number):
                yield event
        else:
            async for event in self._default(request):
                yield event

    async def _pace(self) -> None:
        # tps 0 still yields to the loop, so a fast stream stays cancellable and fair.
        await self._sleep(1 / self.tokens_per_second if self.tokens_per_second > 0 else 0)

    async def _tokens(self, value: str) -> AsyncIterator[str]:
        for token in split_tokens(value):
            await self._pace()
            yield token

    async def _default(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        tokens, reason = self._choice(request, 0)
        for token in tokens:
            await self._pace()
            yield StreamTextDelta(token)
        output_tokens = len(tokens)
        # `n` > 1: the other choices, each whole, as an OpenAI-compatible provider tells them.
        n = request.params.get("n")
        for index in range(1, n if isinstance(n, int) and not isinstance(n, bool) else 1):
            await self._pace()
            more, more_reason = self._choice(request, index)
            output_tokens += len(more)
            finish = "length" if more_reason == "length" else "stop"
            message = {"role": "assistant", "content": "".join(more)}
            yield StreamData("choice", {"index": index, "message": message, "finish_reason": finish})
        input_tokens = count_tokens(_prompt_text(request))
        total = input_tokens + output_tokens
        yield StreamUsage(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total)
        yield StreamFinish(reason)

    @staticmethod
    def _choice(request: ModelRequest, index: int) -> tuple[list[str], FinishReason]:
        tokens = split_tokens(default_reply(request, index))
        max_tokens = request.params.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens < len(tokens):
            return tokens[: max(max_tokens, 0)], "length"
        return tokens, "stop"

    async def _scripted(
        self, request: ModelRequest, steps: Iterable[Step], call_number: int
    ) -> AsyncIterator[ProviderEvent]:
        output_tokens = 0
        reasoning_tokens: int | None = None
        reported: StreamUsage | None = None
        reason: FinishReason | None = None
        called_tool = False
        for index, step in enumerate(steps):
            match step:
                case TextStep(value):
                    async for token in self._tokens(value):
                        output_tokens += 1
                        yield StreamTextDelta(token)
                case ReasoningStep(value, metadata):
                    async for token in self._tokens(value):
                        output_tokens += 1
                        reasoning_tokens = (reasoning_tokens or 0) + 1
                        yield StreamReasoningDelta(token)
                    if metadata is not None:
                        yield StreamReasoningDelta("", provider_metadata=metadata)
                case ToolCallStep(name, tool_input, call_id, stream_input, provider_executed):
                    call_id = call_id or f"call_{call_number}_{index}"
                    called_tool = called_tool or not provider_executed
                    if stream_input:
                        yield StreamToolInputStart(call_id, name)
                        async for token in self._tokens(json.dumps(tool_input, ensure_ascii=False)):
                            output_tokens += 1
                            yield StreamToolInputDelta(call_id, token)
                    else:
                        await self._pace()
                        output_tokens += count_tokens(json.dumps(tool_input))
                    yield StreamToolCall(call_id, name, tool_input, provider_executed=provider_executed)
                case SourceStep(url, title):
                    await self._pace()
                    yield StreamSource(f"src_{call_number}_{index}", url, title)
                case FileStep(media_type, data):
                    await self._pace()
                    yield StreamFile(media_type, data)
                case ErrorStep(message, status):
                    await self._pace()
                    raise ProviderError(message, provider=self.name, status=status)
                case DelayStep(seconds):
                    await self._sleep(seconds)
                case UsageStep(value):
                    reported = value
                case FinishStep(value):
                    reason = value
        if reported is None:
            input_tokens = count_tokens(_prompt_text(request))
            reported = StreamUsage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                reasoning_tokens=reasoning_tokens,
                total_tokens=input_tokens + output_tokens,
            )
        yield reported
        yield StreamFinish(reason or ("tool-calls" if called_tool else "stop"))
