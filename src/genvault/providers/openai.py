"""OpenAI Chat Completions, streaming, for OpenAI and any compatible server: configured by the
official `openai` SDK, sent over genvault's lean HTTP/1.1 client (`_http1`; the SDK's own client
with an injected HTTP client or a proxy).

Invariants:
- One `stream()` is one streamed `chat.completions.create` with `stream_options.include_usage`,
  so the last chunk carries usage. Events come out in wire order; usage and the finish reason
  come last, after every tool call is complete.
- Every SDK failure, before or during streaming, leaves as `ProviderError` carrying the
  provider's own message and HTTP status. Earlier deltas were already yielded: the engine keeps
  them.
- The HTTP response is closed however the stream ends (done, error, cancelled, abandoned).
- Under a name other than `openai` (Ollama, vLLM, LM Studio...) the client never sends the
  OpenAI account's key, organization or project: the key is whatever the caller passed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx
import openai
import orjson
from openai._constants import RAW_RESPONSE_HEADER
from openai._response import AsyncResponseContextManager

from genvault._json import load_json_bytes
from genvault.errors import InvalidRequest, ProviderError
from genvault.providers._errors import error_message, never_sent
from genvault.providers._http1 import Http1Error, Http1Pool, uses_proxy
from genvault.providers._sse import sse_lines
from genvault.providers._stream_check import check_is_stream
from genvault.providers.base import (
    FinishReason,
    ModelRequest,
    ProviderEvent,
    StreamData,
    StreamFinish,
    StreamReasoningDelta,
    StreamTextDelta,
    StreamToolCall,
    StreamToolInputDelta,
    StreamToolInputStart,
    StreamUsage,
)
from genvault.providers.openai_messages import to_openai_messages, to_openai_params, to_openai_tools

__all__ = ["OpenAIProvider", "map_finish_reason", "to_openai_messages"]

logger = logging.getLogger(__name__)

# Compatible servers usually need no key, but the SDK insists on one; this is what they receive.
_NO_KEY = "no-key"

_PLATFORM_HEADERS = (
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Async",
)

# The wire format this provider passes through unchanged (`ModelRequest.wire`).
WIRE_API = "openai.chat"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
}


def map_finish_reason(reason: str | None) -> FinishReason:
    if reason is None:
        return "unknown"
    return _FINISH_REASONS.get(reason, "other")


class OpenAIProvider:
    """Chat Completions streaming for `openai/<model>` or, under another `name`, a compatible server."""

    def __init__(
        self,
        name: str = "openai",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_retries: int = 2,
        max_tokens_field: Literal["max_completion_tokens", "max_tokens"] | None = None,
    ) -> None:
        self.name = name
        official = name == "openai"
        # OpenAI's reasoning models refuse `max_tokens`; most compatible servers only know it.
        self.max_tokens_field = max_tokens_field or ("max_completion_tokens" if official else "max_tokens")
        # The SDK's platform headers (`X-Stainless-OS`, `-Arch`, `-Runtime`…) describe this
        # process, not the caller: not sent. Each header costs CPU in three layers per call.
        headers: dict[str, Any] = dict.fromkeys(_PLATFORM_HEADERS, openai.omit)
        if not official:
            api_key = api_key or _NO_KEY
            # The SDK would otherwise read OPENAI_ORG_ID / OPENAI_PROJECT_ID into headers.
            headers |= {"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit}
        self._owns_http_client = http_client is None
        try:
            self._client = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                http_client=cast(Any, http_client),  # the SDK takes httpx or httpx2 clients
                max_retries=max_retries,
                default_headers=headers,
            )
        except openai.OpenAIError as exc:
            raise InvalidRequest(f"cannot configure provider {name!r}: {exc}") from exc
        self._max_retries = max_retries
        # The calls themselves go over genvault's lean HTTP/1.1 client (`_http1`: a third of the
        # gateway's CPU per call was the SDK's request stack), with the SDK's own headers; the
        # SDK's client stays for an injected HTTP client (tests' transports) or a proxy.
        self._pool: Http1Pool | None = None
        self._headers = b""
        base_url = str(self._client.base_url)
        plain = base_url.startswith(("http://", "https://")) and "?" not in base_url  # no query to merge
        if http_client is None and plain and not uses_proxy(base_url):
            self._pool = Http1Pool(base_url, read_timeout=600.0)
            sent = {**self._client.default_headers, **self._client.auth_headers, "Accept-Encoding": "gzip, deflate"}
            self._headers = "".join(
                f"{key}: {value}\r\n"
                for key, value in sent.items()
                if isinstance(value, str) and not key.lower().startswith("x-stainless")
            ).encode("latin-1")

    def __repr__(self) -> str:
        return f"OpenAIProvider(name={self.name!r}, base_url={str(self._client.base_url)!r})"

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body of the Chat Completions call for `request` (without transport details): a
        gateway client's own body as it was sent (unknown fields kept; only the model name and
        streaming with usage set), else built from the normalized request."""
        if request.wire is not None and request.wire.api == WIRE_API:
            wire = request.wire.body
            options = wire.get("stream_options")
            stream_options = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            return {**wire, "model": request.model, "stream": True, "stream_options": stream_options}
        body: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request.messages, request.system),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = to_openai_tools(request.tools)
        body.update(to_openai_params(request.params, max_tokens_field=self.max_tokens_field))
        return body

    def _send(self, body: dict[str, Any]) -> AsyncResponseContextManager[Any]:
        """The SDK's `chat.completions.create` as a raw response (sent, retried, status errors
        raised, closed on exit), without its TypedDict transform of the keywords: the body is
        plain JSON already shaped for the API (a passed-through one may hold fields this SDK
        version has no keyword for), and that transform walked every message of every call.
        The response is read here, with `json.loads`: building the SDK's pydantic objects for
        every chunk cost more CPU than everything else genvault does per token."""
        options: Any = {"headers": {RAW_RESPONSE_HEADER: "stream"}, "security": {"bearer_auth": True}}
        sent = self._client.post(
            "/chat/completions",
            cast_to=object,
            body=body,
            options=options,
            stream=bool(body.get("stream")),
            stream_cls=openai.AsyncStream[Any],
        )
        return AsyncResponseContextManager(cast(Any, sent))

    @asynccontextmanager
    async def _open(self, body: dict[str, Any]) -> AsyncIterator[Any]:
        """The upstream's answer to `body` once its status is a success (headers read; the body
        is read by the caller), through the lean client or the SDK; closed on exit."""
        if self._pool is None:
            async with self._send(body) as response:
                yield response.http_response
            return
        try:
            data = orjson.dumps(body)
        except TypeError:  # an integer orjson does not take (beyond 64 bits)
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        attempt = 0
        sent = False  # by any attempt: one the provider may have read (and billed)
        while True:
            try:
                answer = await self._pool.request("POST", "/chat/completions", self._headers, data)
                sent = True
                if answer.status < 400 and answer.headers.get("x-should-retry") != "true":
                    break
                text = await answer.aread()
            except Http1Error as exc:
                sent = sent or exc.sent
                if attempt < self._max_retries:
                    attempt += 1
                    await asyncio.sleep(_retry_delay(attempt, None))
                    continue
                what = "Request timed out" if exc.timeout else "Connection error"
                raise ProviderError(f"{what} ({self.name}): {exc}", provider=self.name, sent=sent) from exc
            if attempt < self._max_retries and _should_retry(answer.status, answer.headers):
                attempt += 1
                await asyncio.sleep(_retry_delay(attempt, answer.headers))
                continue
            raise self._status_error(answer.status, text)
        try:
            yield answer
        finally:
            await answer.aclose()

    def _status_error(self, status: int, text: bytes) -> ProviderError:
        """An HTTP error answer as the SDK path reports it: the provider's own message."""
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text.decode("utf-8", "replace")
        message = error_message(parsed, f"Error code: {status}")
        logger.debug("%s: provider error (status %s): %s", self.name, status, message)
        return ProviderError(message, provider=self.name, status=status)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        body = self.request_body(request)
        wire = request.wire if request.wire is not None and request.wire.api == WIRE_API else None
        if wire is not None and wire.whole:
            # A gateway client's non-streamed call is asked of the upstream as it was sent: one
            # `chat.completion` object, read once, instead of a stream read and parsed per token.
            body = {key: value for key, value in body.items() if key != "stream_options"}
            body["stream"] = False
        reader = _ChunkReader()
        raw = 0
        # The gateway's live caller of a passed-through request gets the upstream's own lines.
        tap = wire.tap if wire is not None else None
        try:
            async with self._open(body) as http:
                if not body["stream"] and not http.headers.get("content-type", "").startswith("text/event-stream"):
                    # (A compatible server that streams anyway is read as a stream, below.)
                    for event in self._whole(await http.aread()):
                        yield event
                    return
                await check_is_stream(http, self.name, http.aclose)
                if tap is not None:
                    tap.open()
                async for line in sse_lines(http):
                    if not line.startswith(b"data:"):
                        if tap is not None:
                            tap.feed(line)  # blank separators, comments, `event:` lines
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        # Read on to the end, so the connection goes back to the pool. The
                        # gateway sends its own [DONE], once the record is committed.
                        continue
                    raw += 1
                    chunk = load_json_bytes(data)
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error"):  # an error event in the middle of the stream
                        message = error_message(chunk, "the provider reported an error mid-stream")
                        raise ProviderError(message, provider=self.name)
                    if tap is not None and (tap.include_usage or chunk.get("choices") or not chunk.get("usage")):
                        tap.feed(line)  # the usage-only chunk only for a client that asked for it
                    for event in reader.feed(chunk):
                        yield event
        except openai.OpenAIError as exc:
            raise self._provider_error(exc) from exc
        except (httpx.HTTPError, Http1Error, json.JSONDecodeError) as exc:
            message = f"the stream from {self.name} broke off: {exc}"
            raise ProviderError(message, provider=self.name, sent=not never_sent(exc)) from exc
        if raw == 0:  # not even the stream's opening event: never an empty success
            raise ProviderError(f"{self.name} sent an empty stream (no events)", provider=self.name, status=502)
        for event in reader.close():
            yield event

    def _whole(self, data: bytes) -> list[ProviderEvent]:
        """The events of a whole `chat.completion` object: those of the one chunk that would
        carry all of it."""
        try:
            completion = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProviderError(f"the answer from {self.name} is not JSON: {exc}", provider=self.name) from exc
        if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
            if isinstance(completion, dict) and completion.get("error"):
                message = error_message(completion, "the provider reported an error")
                raise ProviderError(message, provider=self.name, status=502)
            raise ProviderError(f"{self.name} answered something other than a chat completion", provider=self.name)
        choices = []
        for choice in completion["choices"]:
            if not isinstance(choice, dict):
                continue
            said = choice.get("message")
            delta: dict[str, Any] = dict(said) if isinstance(said, dict) else {}
            calls = delta.get("tool_calls")
            if isinstance(calls, list):  # a chunk's tool calls carry their index
                delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(calls) if isinstance(c, dict)]
            finish = choice.get("finish_reason")
            choices.append({"index": choice.get("index", 0), "delta": delta, "finish_reason": finish})
        reader = _ChunkReader()
        return [*reader.feed({"choices": choices, "usage": completion.get("usage")}), *reader.close()]

    async def aclose(self) -> None:
        """Close the SDK client's connections, unless the HTTP client was the caller's."""
        if self._pool is not None:
            await self._pool.aclose()
        if self._owns_http_client:
            await self._client.close()

    def _provider_error(self, exc: openai.OpenAIError) -> ProviderError:
        status: int | None = None
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = error_message(exc.body, exc.message)
        elif isinstance(exc, openai.APIConnectionError):
            cause = f": {exc.__cause__}" if exc.__cause__ else ""
            message = f"{exc.message.rstrip('.')} ({self.name}){cause}"
        elif isinstance(exc, openai.APIError):  # an error event in the middle of the stream
            message = error_message(exc.body, exc.message)
        else:
            message = str(exc)
        logger.debug("%s: provider error (status %s): %s", self.name, status, message)
        return ProviderError(message, provider=self.name, status=status, sent=not never_sent(exc))


def _should_retry(status: int, headers: dict[str, str]) -> bool:
    """The SDK's rule: the server's `x-should-retry` if it says, else 408, 409, 429 and 5xx."""
    said = headers.get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return status in (408, 409, 429) or status >= 500


def _retry_delay(attempt: int, headers: dict[str, str] | None) -> float:
    """The SDK's backoff: the server's `retry-after(-ms)` up to a minute, else 0.5 s doubling
    to 8 s, less up to a quarter of jitter."""
    if headers is not None:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                seconds = float(headers.get(name, "")) * scale
            except ValueError:
                continue
            if 0 < seconds <= 60:
                return seconds
    return min(0.5 * 2.0 ** (attempt - 1), 8.0) * (1 - 0.25 * random.random())


@dataclass(slots=True)
class _ToolCallBuffer:
    call_id: str
    name: str
    arguments: str = ""
    started: bool = False


class _ChunkReader:
    """Turns `chat.completion.chunk`s into events; holds what spans chunks (tool calls, usage)."""

    def __init__(self) -> None:
        self._tools: dict[int, _ToolCallBuffer] = {}
        self._usage: dict[str, Any] | None = None
        self._finish: str | None = None
        self._called_tools = False
        self._others: dict[int, _OtherChoice] = {}  # choices after the first (`n` > 1), by index

    def feed(self, chunk: dict[str, Any]) -> list[ProviderEvent]:
        """One `chat.completion.chunk`, as parsed JSON."""
        events: list[ProviderEvent] = []
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if index != 0:
                # Asked for with `n` > 1: kept whole, told once the answer is complete.
                if isinstance(index, int):
                    self._others.setdefault(index, _OtherChoice()).feed(choice)
                continue
            delta = choice.get("delta") or {}
            # vLLM, DeepSeek and Ollama put reasoning in an extra field; one of the two names.
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                events.append(StreamReasoningDelta(thought))
            content = delta.get("content")
            if content:
                events.append(StreamTextDelta(content))
            refusal = delta.get("refusal")
            if refusal:
                events.append(StreamTextDelta(refusal))
            for call in delta.get("tool_calls") or ():
                events.extend(self._tool_delta(call.get("index", 0), call.get("id"), call.get("function") or {}))
            if choice.get("finish_reason") is not None:
                self._finish = choice["finish_reason"]
                events.extend(self._flush_tools())
        return events

    def close(self) -> list[ProviderEvent]:
        events = self._flush_tools()
        for index in sorted(self._others):
            events.append(StreamData("choice", self._others[index].json(index)))
        if self._usage is not None:
            events.append(_stream_usage(self._usage))
        reason = map_finish_reason(self._finish)
        if reason == "stop" and self._called_tools:
            # Some compatible servers (older Ollama) say "stop" after calling tools.
            reason = "tool-calls"
        events.append(StreamFinish(reason))
        return events

    def _tool_delta(self, index: int, call_id: str | None, function: Any) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        name = function.get("name")
        arguments = function.get("arguments") or ""
        buffer = self._tools.get(index)
        if buffer is not None and call_id and call_id != buffer.call_id:
            # A server that reuses an index for a second call: the first one is complete.
            events.extend(self._complete(self._tools.pop(index)))
            buffer = None
        if buffer is None:
            buffer = self._tools[index] = _ToolCallBuffer(call_id or f"call_{secrets.token_hex(12)}", name or "")
        elif name and not buffer.started:
            buffer.name += name
        buffer.arguments += arguments
        if not buffer.started and buffer.name:
            buffer.started = True
            events.append(StreamToolInputStart(buffer.call_id, buffer.name))
            if buffer.arguments:
                events.append(StreamToolInputDelta(buffer.call_id, buffer.arguments))
        elif buffer.started and arguments:
            events.append(StreamToolInputDelta(buffer.call_id, arguments))
        return events

    def _flush_tools(self) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for index in sorted(self._tools):
            events.extend(self._complete(self._tools[index]))
        self._tools.clear()
        return events

    def _complete(self, buffer: _ToolCallBuffer) -> list[ProviderEvent]:
        if not buffer.started:
            logger.warning("dropping a tool call with no name (id %s)", buffer.call_id)
            return []
        self._called_tools = True
        return [StreamToolCall(buffer.call_id, buffer.name, _parse_arguments(buffer.arguments))]


class _OtherChoice:
    """One choice after the first, folded from its deltas into the `choices[i]` of a
    `chat.completion` (what the record keeps and a client is shown of it)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None

    def feed(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        for field_name, into in (("content", self.text), ("refusal", self.text), ("reasoning_content", self.reasoning)):
            value = delta.get(field_name)
            if isinstance(value, str) and value:
                into.append(value)
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            held = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
            function = call.get("function") or {}
            held["id"] = call.get("id") or held["id"]
            held["name"] += function.get("name") or ""
            held["arguments"] += function.get("arguments") or ""
        if choice.get("finish_reason") is not None:
            self.finish = choice["finish_reason"]

    def json(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(self.calls.items())
            ]
        return {"index": index, "message": message, "finish_reason": self.finish}


def _parse_arguments(arguments: str) -> Any:
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments  # base.py: the raw string when it does not parse


def _stream_usage(usage: dict[str, Any]) -> StreamUsage:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return StreamUsage(
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        cached_input_tokens=prompt_details.get("cached_tokens"),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
        total_tokens=usage.get("total_tokens"),
    )
