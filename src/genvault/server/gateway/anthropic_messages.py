"""`POST /v1/messages`: the Anthropic Messages API in, one generation inside, a `message` object or
the Messages SSE stream (`event: message_start` … `event: message_stop`) out.

Like Chat Completions (`openai_chat`): the body becomes a `ModelRequest` of AI SDK ModelMessages
carrying the body as sent, which an Anthropic upstream receives unchanged but for the model name;
the reply is rendered from the generation's UI message stream (thinking blocks with their
signatures, text, tool_use blocks), live or replayed alike.
"""

from __future__ import annotations

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
    read_body,
    require,
    start_generation,
    text_of,
    usage_of,
)
from genvault.server.gateway.errors import failed_generation
from genvault.vault import parse_params

__all__ = ["MessagesRenderer", "parse_messages_request", "router"]

router = APIRouter(tags=["gateway"])

API = "anthropic.messages"
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool-calls": "tool_use", "content-filter": "refusal"}


# -- request ----------------------------------------------------------------------------------------


def _source_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    require(isinstance(source, dict), f"{where}: an {block.get('type')} block needs a `source`")
    assert isinstance(source, dict)
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        require(isinstance(media_type, str) and isinstance(data, str), f"{where}: source needs media_type and data")
        part = {"type": "file", "mediaType": media_type, "data": data}
    elif kind == "url":
        url = source.get("url")
        require(isinstance(url, str), f"{where}: a url source needs `url`")
        default = "application/pdf" if block.get("type") == "document" else "image/*"
        part = {"type": "file", "mediaType": default, "data": url}
    elif kind == "text" and block.get("type") == "document":
        return {"type": "text", "text": text_of(source.get("data"), where)}
    else:
        raise InvalidRequest(f"{where}: unsupported source type {kind!r}")
    read_file_part(part)  # refuses data that is neither a URL nor base64
    return part


def _tool_output(content: Any, is_error: bool, where: str) -> dict[str, Any]:
    text = "" if content is None else text_of(content, where) if not isinstance(content, list) else None
    if text is None:  # blocks: their text (images in tool results are kept only in the wire body)
        text = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return {"type": "error-text" if is_error else "text", "value": text}


def _model_messages(messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        require(isinstance(message, dict), f"{where} must be an object")
        role, content = message.get("role"), message.get("content")
        require(role in ("user", "assistant"), f"{where}: role must be user or assistant, got {role!r}")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        require(isinstance(content, list), f"{where}: content must be a string or a list of blocks")
        parts: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for i, block in enumerate(content):
            at = f"{where}.content[{i}]"
            require(isinstance(block, dict), f"{at} must be an object")
            kind = block.get("type")
            if kind == "text":
                require(isinstance(block.get("text"), str), f"{at}: a text block needs `text`")
                parts.append({"type": "text", "text": block["text"]})
            elif kind in ("image", "document") and role == "user":
                parts.append(_source_part(block, at))
            elif kind == "tool_result" and role == "user":
                call_id = block.get("tool_use_id")
                require(isinstance(call_id, str), f"{at}: a tool_result needs `tool_use_id`")
                assert isinstance(call_id, str)
                output = _tool_output(block.get("content"), block.get("is_error") is True, at)
                results.append(
                    {"type": "tool-result", "toolCallId": call_id, "toolName": names.get(call_id, "")}
                    | {"output": output}
                )
            elif kind == "tool_use" and role == "assistant":
                call_id, name = block.get("id"), block.get("name")
                require(isinstance(call_id, str) and isinstance(name, str), f"{at}: a tool_use needs `id` and `name`")
                assert isinstance(call_id, str)
                assert isinstance(name, str)
                names[call_id] = name
                parts.append(
                    {"type": "tool-call", "toolCallId": call_id, "toolName": name, "input": block.get("input", {})}
                )
            elif kind == "thinking" and role == "assistant":
                options = {"anthropic": {"signature": str(block.get("signature", ""))}}
                parts.append({"type": "reasoning", "text": str(block.get("thinking", "")), "providerOptions": options})
            elif kind == "redacted_thinking" and role == "assistant":
                options = {"anthropic": {"redactedData": str(block.get("data", ""))}}
                parts.append({"type": "reasoning", "text": "", "providerOptions": options})
            else:
                raise InvalidRequest(f"{at}: unsupported block type {kind!r} in a {role} message")
        if results:
            out.append({"role": "tool", "content": results})
        if parts or not results:
            out.append({"role": role, "content": parts})
    return out


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    require(isinstance(tools, list), "tools must be a list")
    specs = []
    for index, tool in enumerate(tools):
        require(isinstance(tool, dict) and isinstance(tool.get("name"), str), f"tools[{index}] needs a `name`")
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web search...): only an Anthropic upstream can run it, from the wire body
        schema = tool.get("input_schema")
        require(isinstance(schema, dict), f"tools[{index}].input_schema must be a JSON Schema object")
        specs.append(ToolSpec(tool["name"], str(tool.get("description") or ""), schema))
    return specs


def parse_messages_request(body: dict[str, Any]) -> tuple[str, ModelRequest]:
    """The model name and the model request for a Messages body; `InvalidRequest` names the field."""
    model = body.get("model")
    require(isinstance(model, str) and bool(model), "model: Field required (e.g. offline/test-model)")
    assert isinstance(model, str)
    max_tokens = body.get("max_tokens")
    require(isinstance(max_tokens, int) and not isinstance(max_tokens, bool), "max_tokens: Field required")
    messages = body.get("messages")
    require(isinstance(messages, list) and bool(messages), "messages: must be a non-empty list")
    assert isinstance(messages, list)
    system = body.get("system")
    params = parse_params(
        {
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "max_tokens": max_tokens,
            "stop": body.get("stop_sequences"),
        }
    ).model_dump(exclude_none=True)
    request = ModelRequest(
        model=model,
        messages=_model_messages(messages),
        system=None if system is None else text_of(system, "system"),
        tools=_tools(body.get("tools")),
        params=params,
        wire=WireRequest(API, {k: v for k, v in body.items() if k != "stream"}, whole=body.get("stream") is not True),
    )
    return model, request


# -- response ---------------------------------------------------------------------------------------


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()


class MessagesRenderer:
    """UI message stream chunks → Messages API events (streaming) and the final `message`."""

    def __init__(self, generation_id: str, model: str) -> None:
        self.id = f"msg_{generation_id}"
        self.model = model
        self.blocks: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}  # text/reasoning run id or tool call id -> block index
        self._json: dict[int, str] = {}  # tool block index -> input JSON text streamed so far
        # text/thinking block index -> its deltas (joined once, in `message`: no quadratic `+=`)
        self._texts: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0}
        self.error: str | None = None

    def first(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _start(self, key: str, block: dict[str, Any]) -> bytes:
        index = self._index[key] = len(self.blocks)
        self.blocks.append(dict(block))
        return _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    @staticmethod
    def _stop(index: int) -> bytes:
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})

    def feed(self, chunk: dict[str, Any]) -> bytes | None:
        kind = chunk["type"]
        if kind == "text-delta":
            index = self._index.get(chunk["id"])
            if index is None:
                return None
            self._texts.setdefault(index, []).append(chunk["delta"])
            return self._delta(index, {"type": "text_delta", "text": chunk["delta"]})
        if kind == "text-start":
            return self._start(chunk["id"], {"type": "text", "text": ""})
        if kind == "reasoning-start":
            return self._start(chunk["id"], {"type": "thinking", "thinking": "", "signature": ""})
        if kind == "reasoning-delta":
            index = self._index.get(chunk["id"])
            if index is None:
                return None
            self._texts.setdefault(index, []).append(chunk["delta"])
            return self._delta(index, {"type": "thinking_delta", "thinking": chunk["delta"]})
        if kind in ("text-end", "reasoning-end"):
            index = self._index.get(chunk["id"])
            if index is None:
                return None
            signature = ((chunk.get("providerMetadata") or {}).get("anthropic") or {}).get("signature")
            if kind == "reasoning-end" and isinstance(signature, str):
                self.blocks[index]["signature"] = signature
                return self._delta(index, {"type": "signature_delta", "signature": signature}) + self._stop(index)
            return self._stop(index)
        if kind == "tool-input-start":
            block = {"type": "tool_use", "id": chunk["toolCallId"], "name": chunk["toolName"], "input": {}}
            out = self._start(chunk["toolCallId"], block)
            self._json[self._index[chunk["toolCallId"]]] = ""
            return out
        if kind == "tool-input-delta":
            index = self._index.get(chunk["toolCallId"])
            if index is None:
                return None
            self._json[index] += chunk["inputTextDelta"]
            return self._delta(index, {"type": "input_json_delta", "partial_json": chunk["inputTextDelta"]})
        if kind == "tool-input-available":
            return self._tool_done(chunk)
        if kind == "finish":
            return self._finish(chunk)
        if kind in ("error", "abort"):
            self.error = str(chunk.get("errorText") or "the generation was stopped before it finished")
            return _event("error", {"type": "error", "error": {"type": "api_error", "message": self.error}})
        return None

    def _tool_done(self, chunk: dict[str, Any]) -> bytes:
        call_id, value = chunk["toolCallId"], chunk.get("input")
        out = b""
        if call_id not in self._index:
            block = {"type": "tool_use", "id": call_id, "name": chunk["toolName"], "input": {}}
            out += self._start(call_id, block)
            self._json[self._index[call_id]] = ""
        index = self._index[call_id]
        self.blocks[index]["input"] = value if isinstance(value, dict) else {}
        if not self._json.get(index):
            out += self._delta(index, {"type": "input_json_delta", "partial_json": dumps(self.blocks[index]["input"])})
        return out + self._stop(index)

    def _finish(self, chunk: dict[str, Any]) -> bytes:
        reason = chunk.get("finishReason")
        has_tools = any(b["type"] == "tool_use" for b in self.blocks)
        self.stop_reason = _STOP.get(str(reason), "tool_use" if has_tools else "end_turn")
        usage = usage_of(chunk)
        cached = usage.get("cachedInputTokens") or 0
        self.usage = {
            "input_tokens": max((usage.get("inputTokens") or 0) - cached, 0),
            "output_tokens": usage.get("outputTokens") or 0,
            "cache_read_input_tokens": cached,
        }
        delta = {"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}}
        return _event("message_delta", delta | {"usage": self.usage}) + _event("message_stop", {"type": "message_stop"})

    def message(self) -> dict[str, Any]:
        for index, texts in self._texts.items():
            block = self.blocks[index]
            block["text" if block["type"] == "text" else "thinking"] = "".join(texts)
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason or "end_turn",
            "stop_sequence": None,
            "usage": self.usage,
        }


# The end of a Messages stream, sent after the upstream's own events once the record is committed.
_MESSAGE_STOP = _event("message_stop", {"type": "message_stop"})


@router.post("/v1/messages", response_class=Response)
async def messages(request: Request) -> Response:
    """Anthropic Messages. The record exists (`X-Genvault-Generation-Id`) before the model is
    called; the call goes on if the client disconnects."""
    vault = get_vault_now(request)  # a hot route: no dependency to solve per call
    user = await gateway_user(request, vault)
    body = await read_body(request)
    model, model_request = parse_messages_request(body)
    stream = body.get("stream") is True
    tap = None
    if stream and model_request.wire is not None:
        # An Anthropic upstream answers this very body: the client gets its bytes.
        tap = WireTap()
        model_request.wire = replace(model_request.wire, tap=tap)
    started = await start_generation(
        request, vault, user, model=model, model_request=model_request, request_json={"api": API, "body": body}
    )
    renderer = MessagesRenderer(started.record.id, model)
    if stream:
        return event_stream(renderer, started, tap=tap, relay_done=_MESSAGE_STOP)
    upstream_status = await drain(vault, started, renderer.feed)
    if renderer.error is not None and not renderer.blocks:
        return failed_generation("anthropic", renderer.error, started.headers, upstream_status)
    return JSONResponse(renderer.message(), headers=started.headers)
