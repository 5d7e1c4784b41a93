"""`POST /v1/chat/completions`: OpenAI Chat Completions in, the same generation lifecycle inside,
Chat Completions out (a `chat.completion` object, or `chat.completion.chunk` SSE then `[DONE]`).

The request becomes a `ModelRequest` (AI SDK ModelMessages, so any provider can answer it) that
also carries the body as sent (`WireRequest`): an OpenAI-compatible upstream receives that body
unchanged but for the model name. The reply is rendered from the generation's UI message stream,
so a live call, a retried idempotent call, a joined identical call and a cache hit look alike.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from genvault.errors import InvalidRequest
from genvault.providers._parts import read_file_part
from genvault.providers.base import ModelRequest, ToolSpec, WireRequest
from genvault.providers.tap import WireTap
from genvault.server.deps import get_vault_now
from genvault.server.gateway._common import (
    drain,
    dumps,
    event_stream,
    gateway_user,
    parse_arguments,
    read_body,
    require,
    start_generation,
    text_of,
    usage_of,
)
from genvault.server.gateway.errors import failed_generation
from genvault.vault import parse_params

__all__ = ["ChatCompletionRenderer", "parse_chat_request", "router"]

router = APIRouter(tags=["gateway"])

API = "openai.chat"

_FINISH = {"stop": "stop", "length": "length", "tool-calls": "tool_calls", "content-filter": "content_filter"}
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mpeg"}


# -- request ----------------------------------------------------------------------------------------


def _user_part(part: Any, where: str) -> dict[str, Any]:
    require(isinstance(part, dict), f"{where}: each content part must be an object")
    kind = part.get("type")
    if kind == "text":
        require(isinstance(part.get("text"), str), f"{where}: a text part needs `text`")
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        require(isinstance(url, str) and bool(url), f"{where}: an image_url part needs `image_url.url`")
        file = read_file_part({"type": "file", "mediaType": "image/*", "data": url})
        return {"type": "file", "mediaType": file.media_type, "data": url}
    if kind == "input_audio":
        audio = part.get("input_audio")
        require(isinstance(audio, dict) and isinstance(audio.get("data"), str), f"{where}: input_audio needs `data`")
        media_type = _AUDIO.get(str(audio.get("format")))
        require(media_type is not None, f"{where}: input_audio.format must be wav or mp3")
        read_file_part({"type": "file", "mediaType": media_type, "data": audio["data"]})
        return {"type": "file", "mediaType": media_type, "data": audio["data"]}
    if kind == "file":
        spec = part.get("file")
        data = spec.get("file_data") if isinstance(spec, dict) else None
        require(isinstance(data, str), f"{where}: a file part needs `file.file_data` (a data URL)")
        assert isinstance(spec, dict)
        assert isinstance(data, str)
        file = read_file_part({"type": "file", "data": data, "filename": spec.get("filename")})
        out: dict[str, Any] = {"type": "file", "mediaType": file.media_type, "data": data}
        if isinstance(spec.get("filename"), str):
            out["filename"] = spec["filename"]
        return out
    raise InvalidRequest(f"{where}: unsupported content part type {kind!r}")


def _model_messages(messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        require(isinstance(message, dict), f"{where} must be an object")
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_of(content, where)})
        elif role == "user":
            if isinstance(content, str):
                parts = [{"type": "text", "text": content}]
            else:
                require(isinstance(content, list) and bool(content), f"{where}: content must be a string or parts")
                parts = [_user_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
            out.append({"role": "user", "content": parts})
        elif role == "assistant":
            parts = []
            if content is not None:
                if isinstance(content, list):  # text and refusal parts
                    content = "".join(
                        str(p.get("text") or p.get("refusal") or "") for p in content if isinstance(p, dict)
                    )
                text = text_of(content, where)
                if text:
                    parts.append({"type": "text", "text": text})
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                require(
                    isinstance(function, dict)
                    and isinstance(call.get("id"), str)
                    and isinstance(function.get("name"), str),
                    f"{where}: each tool call needs `id` and `function.name`",
                )
                assert isinstance(call, dict)
                assert isinstance(function, dict)
                tool_names[call["id"]] = function["name"]
                parts.append(
                    {
                        "type": "tool-call",
                        "toolCallId": call["id"],
                        "toolName": function["name"],
                        "input": parse_arguments(function.get("arguments")),
                    }
                )
            out.append({"role": "assistant", "content": parts})
        elif role == "tool":
            call_id = message.get("tool_call_id")
            require(isinstance(call_id, str), f"{where}: a tool message needs `tool_call_id`")
            assert isinstance(call_id, str)
            result = {
                "type": "tool-result",
                "toolCallId": call_id,
                "toolName": tool_names.get(call_id, ""),
                "output": {"type": "text", "value": text_of(content, where)},
            }
            out.append({"role": "tool", "content": [result]})
        else:
            raise InvalidRequest(
                f"{where}: unsupported role {role!r}; expected system, developer, user, assistant or tool"
            )
    return out


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    require(isinstance(tools, list), "tools must be a list")
    specs = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        require(
            isinstance(tool, dict) and tool.get("type") == "function" and isinstance(function, dict),
            f"tools[{index}] must be {{'type': 'function', 'function': {{...}}}}",
        )
        assert isinstance(function, dict)
        require(
            isinstance(function.get("name"), str) and bool(function["name"]),
            f"tools[{index}].function.name is required",
        )
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        require(isinstance(schema, dict), f"tools[{index}].function.parameters must be a JSON Schema object")
        specs.append(ToolSpec(function["name"], str(function.get("description") or ""), schema))
    return specs


def parse_chat_request(body: dict[str, Any]) -> tuple[str, ModelRequest]:
    """The model name and the model request for a Chat Completions body; `InvalidRequest` names
    the field at fault."""
    model = body.get("model")
    require(isinstance(model, str) and bool(model), "model is required (e.g. offline/test-model or openai/gpt-4o-mini)")
    assert isinstance(model, str)
    messages = body.get("messages")
    require(isinstance(messages, list) and bool(messages), "messages must be a non-empty list")
    assert isinstance(messages, list)
    n = body.get("n")
    require(
        n is None or (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128),
        "n must be a whole number from 1 to 128",
    )
    # Anthropic's API answers one choice; every other route (OpenAI, a compatible server, the
    # offline model) answers `n`.
    require(n in (None, 1) or not model.startswith("anthropic/"), "n above 1 needs an OpenAI-compatible model")
    stop = body.get("stop")
    params = parse_params(
        {
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "max_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
            "seed": body.get("seed"),
            "stop": [stop] if isinstance(stop, str) else stop,
            "n": None if n == 1 else n,
        }
    ).model_dump(exclude_none=True)
    request = ModelRequest(
        model=model,
        messages=_model_messages(messages),
        tools=_tools(body.get("tools")),
        params=params,
        wire=WireRequest(
            API,
            {k: v for k, v in body.items() if k not in ("stream", "stream_options")},
            whole=body.get("stream") is not True,
        ),
    )
    return model, request


# -- response ---------------------------------------------------------------------------------------


class ChatCompletionRenderer:
    """UI message stream chunks → Chat Completions chunks (streaming) and the final object."""

    def __init__(self, generation_id: str, model: str, *, include_usage: bool = False, streaming: bool = True) -> None:
        self.id = f"chatcmpl-{generation_id}"
        # A non-streamed answer only folds the chunks in (`completion`): no SSE bytes to build.
        self.streaming = streaming
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[str, dict[str, Any]] = {}  # call id -> {"index", "name", "arguments", "streamed"}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.aborted = False
        self.others: list[dict[str, Any]] = []  # the choices after the first (`n` > 1), whole
        head = f'{{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},"model":{dumps(model)},'
        self._head = (head + '"choices":').encode()

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> bytes:
        if not self.streaming:
            return b""
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return b"data: " + self._head + dumps([choice]).encode() + b"}\n\n"

    def _other_choice(self, data: Any) -> bytes | None:
        """A whole choice after the first (`data-choice`): kept for the completion, and streamed
        as one chunk with its `index`, its whole message as the delta and its finish reason."""
        if not isinstance(data, dict) or not isinstance(data.get("index"), int):
            return None
        said = data.get("message")
        message: dict[str, Any] = said if isinstance(said, dict) else {}
        self.others.append({"index": data["index"], "message": message, "finish_reason": data.get("finish_reason")})
        delta = dict(message)
        if isinstance(delta.get("tool_calls"), list):
            delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(delta["tool_calls"])]
        return self._chunk(delta, data.get("finish_reason") or "stop", data["index"])

    def first(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, chunk: dict[str, Any]) -> bytes | None:
        """Fold one chunk in; the SSE bytes it sends a streaming client, if any."""
        kind = chunk["type"]
        if kind == "text-delta":
            self.text.append(chunk["delta"])
            return self._chunk({"content": chunk["delta"]})
        if kind == "reasoning-delta":
            self.reasoning.append(chunk["delta"])
            # DeepSeek's field, which the OpenAI SDK keeps and most compatible clients read.
            return self._chunk({"reasoning_content": chunk["delta"]})
        if kind == "tool-input-start":
            call = self.calls[chunk["toolCallId"]] = {
                "index": len(self.calls),
                "name": chunk["toolName"],
                "arguments": "",
                "streamed": False,
            }
            function = {"name": chunk["toolName"], "arguments": ""}
            return self._chunk(
                {
                    "tool_calls": [
                        {"index": call["index"], "id": chunk["toolCallId"], "type": "function", "function": function}
                    ]
                }
            )
        if kind == "tool-input-delta":
            found = self.calls.get(chunk["toolCallId"])
            if found is None:
                return None
            call = found
            call["arguments"] += chunk["inputTextDelta"]
            call["streamed"] = True
            return self._chunk(
                {"tool_calls": [{"index": call["index"], "function": {"arguments": chunk["inputTextDelta"]}}]}
            )
        if kind == "tool-input-available":
            return self._tool_call(chunk)
        if kind == "data-choice":
            return self._other_choice(chunk.get("data"))
        if kind == "finish":
            self.finish_reason = _FINISH.get(str(chunk.get("finishReason")), "tool_calls" if self.calls else "stop")
            usage = usage_of(chunk)
            if usage:
                self.usage = openai_usage(usage)
            out = self._chunk({}, self.finish_reason)
            if self.include_usage:
                usage_chunk = self._head + b'[],"usage":' + dumps(self.usage or openai_usage({})).encode() + b"}"
                out += b"data: " + usage_chunk + b"\n\n"
            return out
        if kind == "error":
            self.error = str(chunk.get("errorText") or "the generation failed")
            return b"data: " + dumps({"error": error_body(self.error)}).encode() + b"\n\n"
        if kind == "abort":
            self.aborted = True
            self.error = "the generation was stopped before it finished"
            return b"data: " + dumps({"error": error_body(self.error)}).encode() + b"\n\n"
        return None

    def _tool_call(self, chunk: dict[str, Any]) -> bytes | None:
        call_id = chunk["toolCallId"]
        value = chunk.get("input")
        arguments = value if isinstance(value, str) else dumps(value)
        call = self.calls.get(call_id)
        if call is None:
            call = self.calls[call_id] = {
                "index": len(self.calls),
                "name": chunk["toolName"],
                "arguments": arguments,
                "streamed": True,
            }
            function = {"name": chunk["toolName"], "arguments": arguments}
            return self._chunk(
                {"tool_calls": [{"index": call["index"], "id": call_id, "type": "function", "function": function}]}
            )
        if call["streamed"]:
            return None
        call["arguments"], call["streamed"] = arguments, True
        return self._chunk({"tool_calls": [{"index": call["index"], "function": {"arguments": arguments}}]})

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None, "refusal": None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for call_id, c in self.calls.items()
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason or "stop"},
                *(
                    {
                        "index": other["index"],
                        "message": {"refusal": None, **other["message"]},
                        "logprobs": None,
                        "finish_reason": other["finish_reason"] or "stop",
                    }
                    for other in sorted(self.others, key=lambda other: int(other["index"]))
                ),
            ],
            "usage": self.usage or openai_usage({}),
            "system_fingerprint": None,
        }


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = usage.get("inputTokens") or 0, usage.get("outputTokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("totalTokens") or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usage.get("cachedInputTokens") or 0},
        "completion_tokens_details": {"reasoning_tokens": usage.get("reasoningTokens") or 0},
    }


def error_body(message: str, kind: str = "server_error", code: str | None = None) -> dict[str, Any]:
    return {"message": message, "type": kind, "param": None, "code": code}


@router.post("/v1/chat/completions", response_class=Response)
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions. The record exists (`X-Genvault-Generation-Id`) before the model is
    called; the call goes on if the client disconnects."""
    vault = get_vault_now(request)  # a hot route: no dependency to solve per call
    user = await gateway_user(request, vault)
    body = await read_body(request)
    model, model_request = parse_chat_request(body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    tap = None
    if stream and model_request.wire is not None:
        # An OpenAI-compatible upstream answers this very body: the client gets its bytes.
        tap = WireTap(include_usage=include_usage)
        model_request.wire = replace(model_request.wire, tap=tap)
    started = await start_generation(
        request, vault, user, model=model, model_request=model_request, request_json={"api": API, "body": body}
    )
    renderer = ChatCompletionRenderer(started.record.id, model, include_usage=include_usage, streaming=stream)
    if stream:
        return event_stream(renderer, started, done=b"data: [DONE]\n\n", tap=tap)
    upstream_status = await drain(vault, started, renderer.feed)
    if renderer.error is not None and not renderer.text and not renderer.calls:
        return failed_generation("openai", renderer.error, started.headers, upstream_status)
    return JSONResponse(renderer.completion(), headers=started.headers)
