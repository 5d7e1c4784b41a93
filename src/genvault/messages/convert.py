"""UIMessages → AI SDK `ModelMessage` JSON, a port of v5 `convertToModelMessages` (spec §4.2).

Invariant: for the same messages and options the output is the JSON the AI SDK (5.0.244)
produces, key for key — including its quirks: an assistant block whose parts all drop out still
yields `{"role": "assistant", "content": []}`, and unfinished tool calls yield a `tool` message
with empty content unless `ignore_incomplete_tool_calls` is set. Keys that would be `undefined`
in JS are omitted. Provider formats (OpenAI, Anthropic) are built from this by the adapters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from genvault.messages._wire import ABSENT
from genvault.messages.ui import (
    DataPart,
    DynamicToolPart,
    FilePart,
    ReasoningPart,
    StepStartPart,
    TextPart,
    ToolPart,
    UIMessage,
    UIPart,
    parse_ui_message,
)

__all__ = ["ConvertDataPart", "ToModelOutput", "to_model_messages", "tool_result_output"]

ConvertDataPart: TypeAlias = Callable[[DataPart], dict[str, Any] | None]
ToModelOutput: TypeAlias = Callable[[Any], dict[str, Any]]

_ToolLike = ToolPart | DynamicToolPart


def to_model_messages(
    messages: Sequence[UIMessage | Mapping[str, Any]],
    *,
    ignore_incomplete_tool_calls: bool = False,
    convert_data_part: ConvertDataPart | None = None,
    tools_to_model_output: Mapping[str, ToModelOutput] | None = None,
) -> list[dict[str, Any]]:
    """Model messages for a model call.

    `convert_data_part(part)` may turn a data part into a model `text` or `file` part (return
    None to drop it); `tools_to_model_output[name](output)` plays the role of a tool's
    `toModelOutput` and must return a ToolResultOutput object (`{"type": "text", ...}`, ...).
    """
    to_output = tools_to_model_output or {}
    result: list[dict[str, Any]] = []
    for raw in messages:
        message = parse_ui_message(raw)
        parts = message.parts
        if ignore_incomplete_tool_calls:
            parts = [part for part in parts if not _incomplete(part)]
        if message.role == "system":
            result.append(_system(parts))
        elif message.role == "user":
            result.append({"role": "user", "content": _user_content(parts, convert_data_part)})
        else:
            result += _assistant(parts, convert_data_part, to_output)
    return result


def _incomplete(part: UIPart) -> bool:
    if not isinstance(part, ToolPart | DynamicToolPart):
        return False
    return part.state in ("input-streaming", "input-available") or (
        part.state == "output-available" and part.preliminary is True
    )


def _system(parts: Sequence[UIPart]) -> dict[str, Any]:
    texts = [part for part in parts if isinstance(part, TextPart)]
    options: dict[str, Any] = {}
    for part in texts:
        if part.provider_metadata is not None:
            options = {**options, **part.provider_metadata}  # shallow, later parts win
    message: dict[str, Any] = {"role": "system", "content": "".join(part.text for part in texts)}
    if options:
        message["providerOptions"] = options
    return message


def _user_content(parts: Sequence[UIPart], convert_data_part: ConvertDataPart | None) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append(_with_options({"type": "text", "text": part.text}, part.provider_metadata))
        elif isinstance(part, FilePart):
            content.append(_with_options(_file(part), part.provider_metadata))
        elif isinstance(part, DataPart) and convert_data_part is not None:
            converted = convert_data_part(part)
            if converted is not None:
                content.append(converted)
    return content


def _assistant(
    parts: Sequence[UIPart],
    convert_data_part: ConvertDataPart | None,
    to_output: Mapping[str, ToModelOutput],
) -> list[dict[str, Any]]:
    # A step-start closes the current block; sources are dropped; everything else joins it.
    blocks: list[list[UIPart]] = [[]]
    for part in parts:
        if isinstance(part, StepStartPart):
            blocks.append([])
        elif isinstance(part, TextPart | ReasoningPart | FilePart | ToolPart | DynamicToolPart | DataPart):
            blocks[-1].append(part)
    result: list[dict[str, Any]] = []
    for block in blocks:
        if block:
            result += _assistant_block(block, convert_data_part, to_output)
    return result


def _assistant_block(
    block: Sequence[UIPart],
    convert_data_part: ConvertDataPart | None,
    to_output: Mapping[str, ToModelOutput],
) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in block:
        if isinstance(part, TextPart):
            content.append(_with_options({"type": "text", "text": part.text}, part.provider_metadata))
        elif isinstance(part, FilePart):
            content.append(_file(part))  # no providerOptions for assistant files in v5
        elif isinstance(part, ReasoningPart):
            content.append(_with_options({"type": "reasoning", "text": part.text}, part.provider_metadata))
        elif isinstance(part, DynamicToolPart):
            if part.state != "input-streaming":
                call = _set(
                    {"type": "tool-call", "toolCallId": part.tool_call_id, "toolName": part.tool_name},
                    "input",
                    part.input,
                )
                content.append(_with_options(call, part.call_provider_metadata))
        elif isinstance(part, ToolPart):
            if part.state != "input-streaming":
                content += _static_call(part, to_output)
        elif isinstance(part, DataPart) and convert_data_part is not None:
            converted = convert_data_part(part)
            if converted is not None:
                content.append(converted)
    messages = [{"role": "assistant", "content": content}]
    # Results of tools we (or the client) executed go in a tool message; provider-executed ones
    # already sit in the assistant message.
    tool_parts = [
        part
        for part in block
        if isinstance(part, DynamicToolPart) or (isinstance(part, ToolPart) and part.provider_executed is not True)
    ]
    if tool_parts:
        results = [
            _tool_result(part, to_output, error_mode="text")
            for part in tool_parts
            if isinstance(part, ToolPart | DynamicToolPart) and part.state in ("output-available", "output-error")
        ]
        messages.append({"role": "tool", "content": results})
    return messages


def _static_call(part: ToolPart, to_output: Mapping[str, ToModelOutput]) -> list[dict[str, Any]]:
    # JS `input ?? rawInput`: null counts as missing too.
    value = part.input
    if part.state == "output-error" and (value is ABSENT or value is None):
        value = part.raw_input
    call = _set({"type": "tool-call", "toolCallId": part.tool_call_id, "toolName": part.tool_name}, "input", value)
    if part.provider_executed is not None:
        call["providerExecuted"] = part.provider_executed
    out = [_with_options(call, part.call_provider_metadata)]
    if part.provider_executed is True and part.state in ("output-available", "output-error"):
        out.append(_tool_result(part, to_output, error_mode="json"))
    return out


def _tool_result(part: _ToolLike, to_output: Mapping[str, ToModelOutput], *, error_mode: str) -> dict[str, Any]:
    name = part.tool_name
    if part.state == "output-error":
        output = tool_result_output(part.error_text, error_mode=error_mode)
    else:
        output = tool_result_output(part.output, to_model_output=to_output.get(name))
    result = {"type": "tool-result", "toolCallId": part.tool_call_id, "toolName": name, "output": output}
    return _with_options(result, part.call_provider_metadata)


def tool_result_output(
    output: Any, *, error_mode: str = "none", to_model_output: ToModelOutput | None = None
) -> dict[str, Any]:
    """A ToolResultOutput (`createToolModelOutput`): `text`, `json`, `error-text` or `error-json`.

    `error_mode` is "none" for a result, "text" for an error of our own tools and "json" for an
    error of a provider-executed tool. An absent output becomes JSON `null`.
    """
    value = None if output is ABSENT else output
    if error_mode == "text":
        return {"type": "error-text", "value": value if isinstance(value, str) else _error_message(value)}
    if error_mode == "json":
        return {"type": "error-json", "value": value}
    if to_model_output is not None:
        return to_model_output(value)
    if isinstance(value, str):
        return {"type": "text", "value": value}
    return {"type": "json", "value": value}


def _error_message(value: Any) -> str:
    # getErrorMessage: null → "unknown error"; other values are JSON-stringified.
    return "unknown error" if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _file(part: FilePart) -> dict[str, Any]:
    file: dict[str, Any] = {"type": "file", "mediaType": part.media_type}
    if part.filename is not None:
        file["filename"] = part.filename
    file["data"] = part.url
    return file


def _set(target: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if value is not ABSENT:
        target[key] = value
    return target


def _with_options(target: dict[str, Any], options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is not None:
        target["providerOptions"] = options
    return target
