"""Anthropic Messages API, streaming, through the official `anthropic` SDK.

Invariants:
- One `stream()` is one streamed `messages.create`; raw events map one to one onto provider
  events in wire order. A thinking block's signature (and a redacted block's data) follows its
  text as an empty `StreamReasoningDelta` carrying `{"anthropic": {...}}` provider metadata, so
  the reasoning can be sent back verbatim next turn.
- Usage follows base.py's convention, not Anthropic's: `input_tokens` includes cache reads and
  cache writes (Anthropic reports them apart), `cached_input_tokens` is the cache reads and
  `cache_write_tokens` the cache writes.
- Every failure, an HTTP error before streaming or an `event: error` after some text, leaves as
  `ProviderError` with Anthropic's own message and an HTTP status (a mid-stream error arrives on
  a 200 response; its status comes from the error type, e.g. `overloaded_error` → 529).
- The HTTP response is closed however the stream ends.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2

from genvault._json import load_json_bytes
from genvault.errors import InvalidRequest, ProviderError
from genvault.providers._errors import error_message, error_type, never_sent
from genvault.providers._httpx_bridge import bridge_client
from genvault.providers._sse import sse_lines
from genvault.providers._stream_check import check_is_stream
from genvault.providers.anthropic_messages import to_anthropic_messages, to_anthropic_params, to_anthropic_tools
from genvault.providers.base import (
    FinishReason,
    ModelRequest,
    ProviderEvent,
    StreamFinish,
    StreamReasoningDelta,
    StreamSource,
    StreamTextDelta,
    StreamToolCall,
    StreamToolInputDelta,
    StreamToolInputStart,
    StreamUsage,
)

__all__ = ["AnthropicProvider", "map_stop_reason", "to_anthropic_messages"]

logger = logging.getLogger(__name__)

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
    "pause_turn": "other",
}

# The HTTP status Anthropic uses for each error type (docs: "HTTP errors"); an error event in
# the middle of a stream names only the type.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# Request fields `AsyncMessages.create` takes as keywords (anthropic 2.x).
# The wire format this provider passes through unchanged (`ModelRequest.wire`).
WIRE_API = "anthropic.messages"

# A non-streamed call's: the SDK's own default for one (10 minutes, 5 s to connect).
_WHOLE_TIMEOUT = httpx2.Timeout(600.0, connect=5.0)

_SDK_KEYWORDS = frozenset({"model", "messages", "max_tokens", "stream", "system", "tools", "stop_sequences"})


def map_stop_reason(reason: str | None) -> FinishReason:
    if reason is None:
        return "unknown"
    return _STOP_REASONS.get(reason, "other")


class AnthropicProvider:
    """Messages API streaming for `anthropic/<model>`."""

    def __init__(
        self,
        name: str = "anthropic",
        *,
        api_key: str,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        max_retries: int = 2,
    ) -> None:
        self.name = name
        # Whatever is created here is closed here; a caller's client stays the caller's.
        self._bridge: httpx2.AsyncClient | None = None
        if isinstance(http_client, httpx.AsyncClient):
            self._bridge = http_client = bridge_client(http_client)
        self._owns_sdk_client = http_client is None
        try:
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, http_client=http_client, max_retries=max_retries
            )
        except anthropic.AnthropicError as exc:
            raise InvalidRequest(f"cannot configure provider {name!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"AnthropicProvider(name={self.name!r}, base_url={str(self._client.base_url)!r})"

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body of the Messages call for `request`: a gateway client's own Messages body
        as it was sent (unknown fields kept; only the model name and `stream` set), else built."""
        if request.wire is not None and request.wire.api == WIRE_API:
            return {**request.wire.body, "model": request.model, "stream": True}
        system, messages = to_anthropic_messages(request.messages, request.system)
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = to_anthropic_tools(request.tools)
        body.update(to_anthropic_params(request.params))
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        body = self.request_body(request)
        # The SDK's overloads want TypedDicts; the body is plain JSON already shaped for them.
        # Through `with_streaming_response` the SDK still sends, retries and raises status errors,
        # but the events are read here from the raw lines: no pydantic object per event, and the
        # gateway's live caller of a passed-through request can get the upstream's own bytes.
        create: Any = self._client.messages.with_streaming_response.create
        # anthropic 1.x+ dropped sampling keywords (temperature, top_p, top_k) from `create`; the
        # API still takes them, so whatever the SDK has no keyword for travels in `extra_body`.
        extra = {key: body.pop(key) for key in list(body) if key not in _SDK_KEYWORDS}
        wire = request.wire if request.wire is not None and request.wire.api == WIRE_API else None
        tap = wire.tap if wire is not None else None
        options: dict[str, Any] = {}
        if wire is not None and wire.whole:
            # A gateway client's non-streamed call is asked of the upstream as it was sent: one
            # `message` object, read once. An explicit timeout: the SDK would otherwise refuse a
            # large `max_tokens` without a stream, which the client's own SDK already allowed.
            body["stream"] = False
            options["timeout"] = _WHOLE_TIMEOUT
        reader = _EventReader()
        raw = 0
        try:
            async with create(**body, extra_body=extra or None, **options) as response:
                http = response.http_response
                if not body["stream"] and not http.headers.get("content-type", "").startswith("text/event-stream"):
                    for out in self._whole(await http.aread()):
                        yield out
                    return
                await check_is_stream(response.http_response, self.name, response.close)
                if tap is not None:
                    tap.open()
                lines: list[bytes] = []
                async for line in sse_lines(response.http_response):
                    lines.append(line)
                    if line.strip():
                        continue  # an event is its lines up to a blank one
                    data = b"".join(x[5:].strip() for x in lines if x.startswith(b"data:"))
                    event_bytes, lines = b"".join(lines), []
                    if not data:
                        if tap is not None:
                            tap.feed(event_bytes)
                        continue
                    event = load_json_bytes(data)
                    if not isinstance(event, dict):
                        continue
                    raw += 1
                    if event.get("type") == "error":  # on a 200 response: the status is the type's
                        status = _ERROR_STATUS.get(error_type(event) or "", 500)
                        message = error_message(event, "the provider reported an error mid-stream")
                        raise ProviderError(message, provider=self.name, status=status)
                    if tap is not None and event.get("type") != "message_stop":
                        tap.feed(event_bytes)  # the gateway ends the stream once the record is committed
                    for out in reader.feed(_Fields(event)):
                        yield out
        except (anthropic.AnthropicError, httpx2.HTTPError, httpx.HTTPError) as exc:
            raise self._provider_error(exc) from exc
        except json.JSONDecodeError as exc:
            raise ProviderError(f"the stream from {self.name} broke off: {exc}", provider=self.name) from exc
        if raw == 0:  # not even the stream's opening event: never an empty success
            raise ProviderError(f"{self.name} sent an empty stream (no events)", provider=self.name, status=502)
        for out in reader.close():
            yield out

    def _whole(self, data: bytes) -> list[ProviderEvent]:
        """The events of a whole `message` object: those of the stream that would carry it (each
        content block opened whole, a tool's input as one delta, a signature after its thinking)."""
        try:
            message = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProviderError(f"the answer from {self.name} is not JSON: {exc}", provider=self.name) from exc
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            if isinstance(message, dict) and message.get("type") == "error":
                status = _ERROR_STATUS.get(error_type(message) or "", 502)
                raise ProviderError(
                    error_message(message, "the provider reported an error"), provider=self.name, status=status
                )
            raise ProviderError(f"{self.name} answered something other than a message", provider=self.name, status=502)
        reader = _EventReader()
        events: list[dict[str, Any]] = [{"type": "message_start", "message": {"usage": message.get("usage")}}]
        for index, block in enumerate(message["content"]):
            if not isinstance(block, dict):
                continue
            events.append({"type": "content_block_start", "index": index, "content_block": block})
            kind = block.get("type")
            if kind in ("tool_use", "server_tool_use") and block.get("input"):
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"], ensure_ascii=False)}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
            elif kind == "thinking" and isinstance(block.get("signature"), str):
                delta = {"type": "signature_delta", "signature": block["signature"]}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
            elif kind == "text":
                for citation in block.get("citations") or ():
                    delta = {"type": "citations_delta", "citation": citation}
                    events.append({"type": "content_block_delta", "index": index, "delta": delta})
            events.append({"type": "content_block_stop", "index": index})
        ending = {"stop_reason": message.get("stop_reason")}
        events.append({"type": "message_delta", "delta": ending, "usage": message.get("usage")})
        out: list[ProviderEvent] = []
        for event in events:
            out.extend(reader.feed(_Fields(event)))
        return out + reader.close()

    async def aclose(self) -> None:
        if self._owns_sdk_client:
            await self._client.close()
        if self._bridge is not None:
            await self._bridge.aclose()

    def _provider_error(self, exc: Exception) -> ProviderError:
        status: int | None = None
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status < 400:  # an `event: error` inside a 200 stream
                status = _ERROR_STATUS.get(error_type(exc.body) or "", 500)
            message = error_message(exc.body, exc.message)
        elif isinstance(exc, anthropic.APIConnectionError):
            cause = f": {exc.__cause__}" if exc.__cause__ else ""
            message = f"{exc.message.rstrip('.')} ({self.name}){cause}"
        elif isinstance(exc, anthropic.APIError):
            message = error_message(exc.body, exc.message)
        elif isinstance(exc, httpx2.HTTPError):
            message = f"connection to {self.name} failed while streaming: {exc}"
        else:
            message = str(exc)
        logger.debug("%s: provider error (status %s): %s", self.name, status, message)
        return ProviderError(message, provider=self.name, status=status, sent=not never_sent(exc))


class _Fields:
    """A parsed JSON event read by attribute, as the reader reads the SDK's event objects; a
    field that is missing reads as None."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        value = self._values.get(name)
        return _Fields(value) if isinstance(value, dict) else value


@dataclass(slots=True)
class _ToolBlock:
    call_id: str
    name: str
    provider_executed: bool
    input_json: str = ""


class _EventReader:
    """Turns raw Messages stream events into provider events; holds open blocks and usage."""

    def __init__(self) -> None:
        self._tools: dict[int, _ToolBlock] = {}
        self._input: int | None = None
        self._cache_read: int | None = None
        self._cache_write: int | None = None
        self._output: int | None = None
        self._reasoning: int | None = None
        self._stop_reason: str | None = None
        self._seen_urls: set[str] = set()
        self._saw_usage = False

    def feed(self, event: Any) -> list[ProviderEvent]:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self._take_usage(event.message.usage)
            return []
        if kind == "content_block_start":
            return self._block_start(event.index, event.content_block)
        if kind == "content_block_delta":
            return self._block_delta(event.index, event.delta)
        if kind == "content_block_stop":
            return self._block_stop(event.index)
        if kind == "message_delta":
            self._stop_reason = event.delta.stop_reason or self._stop_reason
            self._take_usage(event.usage)
            return []
        return []  # message_stop, and event types newer than this code

    def close(self) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for index in sorted(self._tools):
            events.extend(self._block_stop(index))
        if self._saw_usage:
            events.append(self._usage())
        events.append(StreamFinish(map_stop_reason(self._stop_reason)))
        return events

    def _block_start(self, index: int, block: Any) -> list[ProviderEvent]:
        kind = getattr(block, "type", None)
        if kind == "text":
            return [StreamTextDelta(block.text)] if block.text else []
        if kind == "thinking":
            return [StreamReasoningDelta(block.thinking)] if block.thinking else []
        if kind == "redacted_thinking":
            return [StreamReasoningDelta("", provider_metadata={"anthropic": {"redactedData": block.data}})]
        if kind in ("tool_use", "server_tool_use"):
            tool = self._tools[index] = _ToolBlock(block.id, block.name, provider_executed=kind == "server_tool_use")
            return [StreamToolInputStart(tool.call_id, tool.name)]
        logger.debug("Anthropic: ignoring content block of type %s", kind)
        return []

    def _block_delta(self, index: int, delta: Any) -> list[ProviderEvent]:
        kind = getattr(delta, "type", None)
        if kind == "text_delta":
            return [StreamTextDelta(delta.text)] if delta.text else []
        if kind == "thinking_delta":
            return [StreamReasoningDelta(delta.thinking)] if delta.thinking else []
        if kind == "signature_delta":
            return [StreamReasoningDelta("", provider_metadata={"anthropic": {"signature": delta.signature}})]
        if kind == "input_json_delta":
            tool = self._tools.get(index)
            if tool is None or not delta.partial_json:
                return []  # Anthropic opens every tool input with an empty partial
            tool.input_json += delta.partial_json
            return [StreamToolInputDelta(tool.call_id, delta.partial_json)]
        if kind == "citations_delta":
            return self._citation(delta.citation)
        return []

    def _block_stop(self, index: int) -> list[ProviderEvent]:
        tool = self._tools.pop(index, None)
        if tool is None:
            return []
        return [StreamToolCall(tool.call_id, tool.name, _parse_input(tool.input_json), tool.provider_executed)]

    def _citation(self, citation: Any) -> list[ProviderEvent]:
        url = getattr(citation, "url", None)
        if not isinstance(url, str) or url in self._seen_urls:
            return []  # document citations point into the prompt, not at a source to list
        self._seen_urls.add(url)
        title = getattr(citation, "title", None)
        return [StreamSource(f"src_{secrets.token_hex(8)}", url, title if isinstance(title, str) else None)]

    def _take_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self._saw_usage = True
        # message_delta repeats the counts cumulatively; a field it leaves out keeps its value.
        for field, attr in (
            ("_input", "input_tokens"),
            ("_cache_read", "cache_read_input_tokens"),
            ("_cache_write", "cache_creation_input_tokens"),
            ("_output", "output_tokens"),
        ):
            value = getattr(usage, attr, None)
            if isinstance(value, int):
                setattr(self, field, value)
        details = getattr(usage, "output_tokens_details", None)
        thinking = getattr(details, "thinking_tokens", None)
        if isinstance(thinking, int):
            self._reasoning = thinking

    def _usage(self) -> StreamUsage:
        base, cache_read, cache_write, output = self._input, self._cache_read, self._cache_write, self._output
        input_tokens = None if base is None else base + (cache_read or 0) + (cache_write or 0)
        total = None if input_tokens is None or output is None else input_tokens + output
        return StreamUsage(
            input_tokens=input_tokens,
            output_tokens=output,
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=self._reasoning,
            total_tokens=total,
        )


def _parse_input(text: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
