"""`POST /v1/responses`: the OpenAI Responses API (what the AI SDK's default `openai(...)` model
and `client.responses.create` call), over the same generation lifecycle.

`previous_response_id` continues a conversation from genvault's own records: the earlier
response (`resp_<generation id>`, the caller's, ended with output) gives its input and its
output, and its own previous response before it, ahead of this request's input (its
`instructions` are not carried over, as in the real API). `item_reference` inputs are refused
with a 400 that says to send the items. Any provider can answer (an OpenAI upstream is called through Chat
Completions, from the normalized request); the stream has the real API's event types, each with
its `sequence_number`, in the real order.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from genvault.errors import InvalidRequest, NotFound
from genvault.ids import ID_PATTERN
from genvault.messages.convert import to_model_messages
from genvault.providers._parts import read_file_part
from genvault.providers.base import ModelRequest, ToolSpec
from genvault.records import Generation
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
from genvault.validation import check_id
from genvault.vault import Vault, parse_params

__all__ = ["ResponsesRenderer", "parse_responses_request", "router"]

router = APIRouter(tags=["gateway"])

API = "openai.responses"
_NO_STATE = "genvault keeps no Responses items apart from its records: send the items themselves in `input`"


# -- request ----------------------------------------------------------------------------------------


def _content_part(part: Any, where: str) -> dict[str, Any]:
    require(isinstance(part, dict), f"{where} must be an object")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        require(isinstance(part.get("text"), str), f"{where}: needs `text`")
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "input_image":
        url = part.get("image_url")
        require(
            isinstance(url, str) and bool(url), f"{where}: input_image needs `image_url` (file_id is not supported)"
        )
        file = read_file_part({"type": "file", "mediaType": "image/*", "data": url})
        return {"type": "file", "mediaType": file.media_type, "data": url}
    if kind == "input_file":
        data = part.get("file_data") or part.get("file_url")
        require(
            isinstance(data, str), f"{where}: input_file needs `file_data` or `file_url` (file_id is not supported)"
        )
        file = read_file_part({"type": "file", "data": data, "filename": part.get("filename")})
        out: dict[str, Any] = {"type": "file", "mediaType": file.media_type, "data": data}
        if isinstance(part.get("filename"), str):
            out["filename"] = part["filename"]
        return out
    raise InvalidRequest(f"{where}: unsupported content type {kind!r}")


def _model_messages(items: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        where = f"input[{index}]"
        require(isinstance(item, dict), f"{where} must be an object")
        kind, role = item.get("type", "message"), item.get("role")
        if kind == "message":
            content = item.get("content")
            if role in ("system", "developer"):
                out.append({"role": "system", "content": text_of(_texts(content), where)})
                continue
            require(role in ("user", "assistant"), f"{where}: unsupported role {role!r}")
            if isinstance(content, str):
                parts = [{"type": "text", "text": content}]
            else:
                require(isinstance(content, list), f"{where}: content must be a string or a list of parts")
                parts = [_content_part(p, f"{where}.content[{i}]") for i, p in enumerate(content)]
            out.append({"role": role, "content": parts})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            require(isinstance(call_id, str) and isinstance(name, str), f"{where}: needs `call_id` and `name`")
            assert isinstance(call_id, str)
            assert isinstance(name, str)
            names[call_id] = name
            call = {"type": "tool-call", "toolCallId": call_id, "toolName": name}
            out.append({"role": "assistant", "content": [call | {"input": parse_arguments(item.get("arguments"))}]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            require(isinstance(call_id, str), f"{where}: needs `call_id`")
            assert isinstance(call_id, str)
            output = item.get("output")
            value = output if isinstance(output, str) else text_of(_texts(output), where)
            result = {"type": "tool-result", "toolCallId": call_id, "toolName": names.get(call_id, "")}
            out.append({"role": "tool", "content": [result | {"output": {"type": "text", "value": value}}]})
        elif kind == "reasoning":
            summary = "".join(str(s.get("text", "")) for s in item.get("summary") or [] if isinstance(s, dict))
            out.append({"role": "assistant", "content": [{"type": "reasoning", "text": summary}]})
        elif kind == "item_reference":
            raise InvalidRequest(f"{where}: item_reference is not supported; {_NO_STATE}")
        else:
            raise InvalidRequest(f"{where}: unsupported input item type {kind!r}")
    return out


def _texts(content: Any) -> Any:
    """Responses text parts (`input_text`, `output_text`) as plain text parts."""
    if isinstance(content, list):
        return [{"text": p.get("text")} for p in content if isinstance(p, dict)]
    return content


def _tools(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    require(isinstance(tools, list), "tools must be a list")
    specs = []
    for index, tool in enumerate(tools):
        require(
            isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str),
            f"tools[{index}]: only function tools are supported ({{'type': 'function', 'name': ...}})",
        )
        schema = tool.get("parameters") or {"type": "object", "properties": {}}
        require(isinstance(schema, dict), f"tools[{index}].parameters must be a JSON Schema object")
        specs.append(ToolSpec(tool["name"], str(tool.get("description") or ""), schema))
    return specs


def parse_responses_request(body: dict[str, Any]) -> tuple[str, ModelRequest]:
    model = body.get("model")
    require(isinstance(model, str) and bool(model), "model is required (e.g. offline/test-model)")
    assert isinstance(model, str)
    previous = body.get("previous_response_id")
    if previous is not None:  # an id's rules: an oversized or NUL-laden one is refused, never echoed back
        check_id(previous, "previous_response_id")
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    require(isinstance(items, list) and bool(items), "input must be a string or a non-empty list of items")
    assert isinstance(items, list)
    instructions = body.get("instructions")
    require(instructions is None or isinstance(instructions, str), "instructions must be a string")
    params = parse_params(
        {
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "max_tokens": body.get("max_output_tokens"),
        }
    ).model_dump(exclude_none=True)
    request = ModelRequest(
        model=model,
        messages=_model_messages(items),
        system=instructions,
        tools=_tools(body.get("tools")),
        params=params,
    )
    return model, request


# -- response ---------------------------------------------------------------------------------------


class ResponsesRenderer:
    """UI message stream chunks → Responses API events and the final `response` object."""

    def __init__(self, generation_id: str, model: str, body: dict[str, Any]) -> None:
        self.id = f"resp_{generation_id}"
        self._generation_id = generation_id
        self.model = model
        self.created_at = int(time.time())
        self.body = body
        self.output: list[dict[str, Any]] = []
        self._open: dict[str, int] = {}  # run id / call id -> output index
        self._texts: dict[int, list[str]] = {}  # output index -> text deltas of a run still open
        self._sequence = 0
        self.usage: dict[str, Any] | None = None
        self.status = "in_progress"
        self.error: str | None = None
        self.incomplete: str | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return f"event: {kind}\ndata: {dumps(event)}\n\n".encode()

    def response(self) -> dict[str, Any]:
        for index, texts in self._texts.items():  # runs an error cut off before their end
            item = self.output[index]
            (item["content"] if item["type"] == "message" else item["summary"])[0]["text"] = "".join(texts)
        text = self.body.get("text") if isinstance(self.body.get("text"), dict) else {"format": {"type": "text"}}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "error": None if self.error is None else {"code": "server_error", "message": self.error},
            "incomplete_details": None if self.incomplete is None else {"reason": self.incomplete},
            "instructions": self.body.get("instructions"),
            "max_output_tokens": self.body.get("max_output_tokens"),
            "model": self.model,
            "output": self.output,
            "parallel_tool_calls": True,
            "temperature": self.body.get("temperature"),
            "tool_choice": self.body.get("tool_choice", "auto"),
            "tools": self.body.get("tools") or [],
            "top_p": self.body.get("top_p"),
            "text": text,
            "usage": self.usage,
            "metadata": self.body.get("metadata") or {},
        }

    def first(self) -> bytes:
        return self._event("response.created", {"response": self.response()}) + self._event(
            "response.in_progress", {"response": self.response()}
        )

    def _add(self, key: str, item: dict[str, Any]) -> tuple[int, bytes]:
        index = self._open[key] = len(self.output)
        self.output.append(item)
        return index, self._event("response.output_item.added", {"output_index": index, "item": item})

    def _done(self, index: int) -> bytes:
        item = self.output[index]
        item["status"] = "completed"
        return self._event("response.output_item.done", {"output_index": index, "item": item})

    def feed(self, chunk: dict[str, Any]) -> bytes | None:
        kind = chunk["type"]
        if kind == "text-delta":
            index = self._open.get(chunk["id"])
            if index is None:
                return None
            item = self.output[index]
            self._texts.setdefault(index, []).append(chunk["delta"])
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            return self._event("response.output_text.delta", where | {"delta": chunk["delta"], "logprobs": []})
        if kind == "text-start":
            message = {
                "id": f"msg_{self._generation_id}_{len(self.output)}",
                "type": "message",
                "status": "in_progress",
            }
            index, out = self._add(chunk["id"], message | {"role": "assistant", "content": []})
            part = {"type": "output_text", "text": "", "annotations": []}
            self.output[index]["content"].append(dict(part))
            where = {"item_id": message["id"], "output_index": index, "content_index": 0}
            return out + self._event("response.content_part.added", where | {"part": part})
        if kind == "text-end":
            index = self._open.get(chunk["id"])
            if index is None:
                return None
            item = self.output[index]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            part = item["content"][0]
            part["text"] = "".join(self._texts.pop(index, ()))  # joined once: no quadratic `+=`
            out = self._event("response.output_text.done", where | {"text": part["text"], "logprobs": []})
            return out + self._event("response.content_part.done", where | {"part": part}) + self._done(index)
        if kind == "reasoning-start":
            item = {"id": f"rs_{self._generation_id}_{len(self.output)}", "type": "reasoning", "summary": []}
            index, out = self._add(chunk["id"], item)
            part = {"type": "summary_text", "text": ""}
            item["summary"].append(dict(part))
            where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            return out + self._event("response.reasoning_summary_part.added", where | {"part": part})
        if kind == "reasoning-delta":
            index = self._open.get(chunk["id"])
            if index is None:
                return None
            item = self.output[index]
            self._texts.setdefault(index, []).append(chunk["delta"])
            where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            return self._event("response.reasoning_summary_text.delta", where | {"delta": chunk["delta"]})
        if kind == "reasoning-end":
            index = self._open.get(chunk["id"])
            if index is None:
                return None
            item = self.output[index]
            where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            part = item["summary"][0]
            part["text"] = "".join(self._texts.pop(index, ()))
            out = self._event("response.reasoning_summary_text.done", where | {"text": part["text"]})
            out += self._event("response.reasoning_summary_part.done", where | {"part": part})
            item.pop("status", None)
            done = self._event("response.output_item.done", {"output_index": index, "item": item})
            return out + done
        if kind == "tool-input-start":
            return self._call_start(chunk["toolCallId"], chunk["toolName"])[1]
        if kind == "tool-input-delta":
            index = self._open.get(chunk["toolCallId"])
            if index is None:
                return None
            item = self.output[index]
            item["arguments"] += chunk["inputTextDelta"]
            where = {"item_id": item["id"], "output_index": index}
            return self._event("response.function_call_arguments.delta", where | {"delta": chunk["inputTextDelta"]})
        if kind == "tool-input-available":
            out = b""
            index = self._open.get(chunk["toolCallId"])
            if index is None:
                index, out = self._call_start(chunk["toolCallId"], chunk["toolName"])
            item = self.output[index]
            value = chunk.get("input")
            if not item["arguments"]:
                item["arguments"] = value if isinstance(value, str) else dumps(value)
                where = {"item_id": item["id"], "output_index": index}
                out += self._event("response.function_call_arguments.delta", where | {"delta": item["arguments"]})
            where = {"item_id": item["id"], "output_index": index}
            out += self._event("response.function_call_arguments.done", where | {"arguments": item["arguments"]})
            return out + self._done(index)
        if kind == "finish":
            usage = usage_of(chunk)
            self.usage = responses_usage(usage)
            if chunk.get("finishReason") == "length":
                self.status, self.incomplete = "incomplete", "max_output_tokens"
                return self._event("response.incomplete", {"response": self.response()})
            self.status = "completed"
            return self._event("response.completed", {"response": self.response()})
        if kind in ("error", "abort"):
            self.status = "failed"
            self.error = str(chunk.get("errorText") or "the generation was stopped before it finished")
            return self._event("response.failed", {"response": self.response()})
        return None

    def _call_start(self, call_id: str, name: str) -> tuple[int, bytes]:
        item = {
            "id": f"fc_{self._generation_id}_{len(self.output)}",
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": name,
        }
        return self._add(call_id, item)


def responses_usage(usage: dict[str, Any]) -> dict[str, Any]:
    input_tokens, output_tokens = usage.get("inputTokens") or 0, usage.get("outputTokens") or 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": usage.get("cachedInputTokens") or 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.get("reasoningTokens") or 0},
        "total_tokens": usage.get("totalTokens") or input_tokens + output_tokens,
    }


# How many earlier responses a `previous_response_id` chain may reach back.
MAX_PREVIOUS = 100


async def earlier_messages(vault: Vault, user_id: str, response_id: str) -> list[dict[str, Any]]:
    """The conversation before a request with `previous_response_id`: each earlier response's
    input and output as model messages, oldest first. `InvalidRequest` when the id names no
    response of this caller's that ended with output."""
    chain: list[Generation] = []
    next_id: str | None = response_id
    while next_id is not None:
        require(len(chain) < MAX_PREVIOUS, f"previous_response_id reaches back more than {MAX_PREVIOUS} responses")
        record = None
        generation_id = next_id.removeprefix("resp_")
        if ID_PATTERN.fullmatch(generation_id):
            with contextlib.suppress(NotFound):
                record = await vault.get_generation(generation_id, user_id=user_id)
        request = record.request if record is not None else {}
        earlier = request.get("body") if request.get("api") == API else None
        if record is None or not isinstance(earlier, dict):
            raise InvalidRequest(f"previous_response_id {next_id!r}: no such response")
        if not record.result_message or record.status not in ("complete", "cancelled", "interrupted"):
            raise InvalidRequest(f"previous_response_id {next_id!r}: that response has no output ({record.status})")
        chain.append(record)
        found = earlier.get("previous_response_id")
        next_id = found if isinstance(found, str) else None
    messages: list[dict[str, Any]] = []
    for record in reversed(chain):
        body = record.request["body"]
        items = body.get("input")
        messages += _model_messages([{"role": "user", "content": items}] if isinstance(items, str) else items)
        assert record.result_message is not None
        messages += to_model_messages([record.result_message], ignore_incomplete_tool_calls=True)
    return messages  # an earlier request's `instructions` are not carried over (`system` is this one's)


@router.post("/v1/responses", response_class=Response)
async def responses(request: Request) -> Response:
    """OpenAI Responses. The record exists (`X-Genvault-Generation-Id`) before the model is
    called; the call goes on if the client disconnects."""
    vault = get_vault_now(request)  # a hot route: no dependency to solve per call
    user = await gateway_user(request, vault)
    body = await read_body(request)
    model, model_request = parse_responses_request(body)
    if isinstance(body.get("previous_response_id"), str):
        model_request.messages = [
            *await earlier_messages(vault, user, body["previous_response_id"]),
            *model_request.messages,
        ]
    started = await start_generation(
        request, vault, user, model=model, model_request=model_request, request_json={"api": API, "body": body}
    )
    renderer = ResponsesRenderer(started.record.id, model, body)
    if body.get("stream") is True:
        return event_stream(renderer, started)
    upstream_status = await drain(vault, started, renderer.feed)
    if renderer.error is not None and not renderer.output:
        return failed_generation("openai", renderer.error, started.headers, upstream_status)
    return JSONResponse(renderer.response(), headers=started.headers)
