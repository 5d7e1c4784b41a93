"""The one small protocol every model provider implements, and the values it speaks.

A provider turns a `ModelRequest` into an async stream of `ProviderEvent`s: text and reasoning
deltas, tool calls (optionally streamed input first), sources, files, then usage and a finish
reason. It raises `genvault.errors.ProviderError` on failure, possibly after some deltas were
already yielded (a mid-stream error): the engine keeps what came before.

Providers know nothing about the database, the hub or HTTP routes; the engine (`genvault.engine`)
drives them. Cancelling the consuming task must close the provider's HTTP stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from genvault.providers.tap import WireTap

__all__ = [
    "FinishReason",
    "ModelRequest",
    "Provider",
    "ProviderEvent",
    "StreamData",
    "StreamFile",
    "StreamFinish",
    "StreamReasoningDelta",
    "StreamSource",
    "StreamTextDelta",
    "StreamToolCall",
    "StreamToolInputDelta",
    "StreamToolInputStart",
    "StreamUsage",
    "ToolSpec",
    "WireRequest",
]

# The AI SDK's finish reasons (UI stream `finish.finishReason`).
FinishReason = Literal["stop", "length", "content-filter", "tool-calls", "error", "other", "unknown"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model. `input_schema` is a JSON Schema object."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request exactly as a client sent it to the gateway, in one provider API's wire format.

    `api` names the format (`openai.chat` for Chat Completions, `anthropic.messages` for the
    Messages API). A provider that speaks `api` sends `body` on as it is (unknown fields kept),
    changing only the model name and what it needs to stream; any other provider ignores it and
    uses the normalized request around it.
    """

    api: str
    body: dict[str, Any]
    # The live caller's tap on the upstream's own bytes (`providers.tap`); never part of the
    # request's identity (the dedup key reads `api` and `body` only).
    tap: WireTap | None = field(default=None, compare=False)
    # The client asked for one answer, not a stream (`"stream": false`): a provider that speaks
    # `api` may ask its upstream for one too (one read and one parse instead of one per token).
    # Nothing is checkpointed meanwhile: there is nothing before the whole answer.
    whole: bool = field(default=False, compare=False)


@dataclass(slots=True)
class ModelRequest:
    """What to ask the model.

    `messages` are AI SDK `ModelMessage`s as plain JSON (the output of
    `genvault.messages.convert.to_model_messages`, spec §4.2): `{"role": "user", "content": [...]}`
    and so on. A plain text prompt is one user message with one text part. `system` is the system
    prompt, kept apart because providers place it differently. `params` holds the sampling
    parameters that change the output: temperature, top_p, max_tokens, seed, stop. `wire`, set by
    the gateway, is the client's own request body for a provider that speaks its API.
    """

    model: str
    messages: list[dict[str, Any]]
    system: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    wire: WireRequest | None = None


@dataclass(frozen=True, slots=True)
class StreamTextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class StreamReasoningDelta:
    text: str
    # Provider metadata to keep with the reasoning (e.g. Anthropic's thinking signature), already
    # in AI SDK ProviderMetadata shape: {"anthropic": {"signature": "..."}}.
    provider_metadata: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class StreamToolInputStart:
    """A tool call begins; its input follows as `StreamToolInputDelta`s, then `StreamToolCall`."""

    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class StreamToolInputDelta:
    call_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class StreamToolCall:
    """A complete tool call. `input` is the parsed JSON input (the raw string if it did not parse)."""

    call_id: str
    name: str
    input: Any
    provider_executed: bool = False


@dataclass(frozen=True, slots=True)
class StreamSource:
    source_id: str
    url: str
    title: str | None = None


@dataclass(frozen=True, slots=True)
class StreamFile:
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamData:
    """A data part (`data-{name}`) of the reply: structured output that is not text, such as
    an embedding call's vectors."""

    name: str
    data: Any


@dataclass(frozen=True, slots=True)
class StreamUsage:
    """Token counts as the provider reported them; `None` where it reported nothing.

    `input_tokens` includes cached input (OpenAI's convention; Anthropic adapters add cache reads and
    writes to it). `output_tokens` includes reasoning tokens.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class StreamFinish:
    reason: FinishReason = "stop"


ProviderEvent = (
    StreamTextDelta
    | StreamReasoningDelta
    | StreamToolInputStart
    | StreamToolInputDelta
    | StreamToolCall
    | StreamSource
    | StreamFile
    | StreamData
    | StreamUsage
    | StreamFinish
)


@runtime_checkable
class Provider(Protocol):
    """Streams one model call. `name` is the provider part of `provider/model` names."""

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]: ...
