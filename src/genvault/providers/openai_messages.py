"""AI SDK ModelMessages (spec §4.2) → OpenAI Chat Completions request pieces. Pure; no SDK import.

Invariant: the output is plain JSON that any OpenAI-compatible server accepts for the same
conversation; what Chat Completions cannot carry is dropped on purpose (assistant reasoning,
assistant files, provider-executed tool results) or refused with `InvalidRequest` (a user file
type it cannot take), never sent in a shape the server would misread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from genvault.errors import InvalidRequest
from genvault.providers._parts import compact_json, read_file_part, tool_output_text
from genvault.providers.base import ToolSpec

__all__ = ["to_openai_messages", "to_openai_params", "to_openai_tools"]

logger = logging.getLogger(__name__)

# The audio formats Chat Completions takes as `input_audio`.
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}


def to_openai_messages(model_messages: Iterable[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """Chat Completions `messages` for a system prompt and AI SDK ModelMessages."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    for message in model_messages:
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            messages.append({"role": "system", "content": _system_text(content)})
        elif role == "user":
            messages.append({"role": "user", "content": _user_content(content)})
        elif role == "assistant":
            assistant = _assistant_message(content)
            if assistant is not None:
                messages.append(assistant)
        elif role == "tool":
            messages.extend(_tool_messages(content))
        else:
            raise InvalidRequest(f"unsupported message role {role!r}; expected system, user, assistant or tool")
    return messages


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description:
            function["description"] = tool.description
        result.append({"type": "function", "function": function})
    return result


def to_openai_params(params: dict[str, Any], *, max_tokens_field: str = "max_completion_tokens") -> dict[str, Any]:
    """The sampling parameters Chat Completions understands. Others are logged and left out.

    OpenAI's own API wants `max_completion_tokens` (reasoning models refuse `max_tokens`);
    many compatible servers only know `max_tokens`, so the caller picks the field.
    """
    result: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if key in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty", "n"):
            result[key] = value
        elif key == "max_tokens":
            result[max_tokens_field] = value
        elif key == "stop":
            result["stop"] = value
        else:
            logger.debug("OpenAI chat: ignoring unsupported parameter %s", key)
    return result


def _system_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content or [] if part.get("type") == "text")


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts = [converted for index, part in enumerate(content or []) if (converted := _user_part(part, index))]
    # A lone text part goes as a plain string: several compatible servers take nothing else.
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _user_part(part: dict[str, Any], index: int) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text", "")}
    if kind == "image":  # the AI SDK's older ImagePart, kept for hand-written messages
        part = {"type": "file", "mediaType": part.get("mediaType") or "image/*", "data": part.get("image")}
        kind = "file"
    if kind != "file":
        logger.debug("OpenAI chat: dropping user part of type %s", kind)
        return None
    file = read_file_part(part)
    if file.media_type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": file.data_url}}
    if file.media_type in _AUDIO_FORMATS:
        if file.base64 is None:
            raise InvalidRequest("OpenAI chat takes audio inline only, not by URL")
        return {"type": "input_audio", "input_audio": {"data": file.base64, "format": _AUDIO_FORMATS[file.media_type]}}
    if file.media_type == "application/pdf":
        if file.base64 is None:
            raise InvalidRequest("OpenAI chat takes PDF files inline only, not by URL")
        return {"type": "file", "file": {"filename": file.filename or f"part-{index}.pdf", "file_data": file.data_url}}
    if file.media_type.startswith("text/") and file.base64 is not None:
        # Chat Completions has no plain-text file part; the text itself is what the model needs.
        return {"type": "text", "text": file.decode().decode("utf-8", errors="replace")}
    raise InvalidRequest(f"OpenAI chat cannot take a {file.media_type} file; send images, audio, PDF or text")


def _assistant_message(content: Any) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    text = ""
    tool_calls: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            text += str(part.get("text", ""))
        elif kind == "tool-call":
            if part.get("providerExecuted"):
                continue  # run by the provider itself; OpenAI chat has no way to replay it
            function = {"name": part["toolName"], "arguments": compact_json(part.get("input"))}
            tool_calls.append({"id": part["toolCallId"], "type": "function", "function": function})
        else:
            # reasoning, files and provider-executed tool results have no Chat Completions form
            logger.debug("OpenAI chat: dropping assistant part of type %s", kind)
    if not text and not tool_calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_messages(content: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for part in content or []:
        if part.get("type") != "tool-result":
            continue
        text, _is_error = tool_output_text(part.get("output"))
        messages.append({"role": "tool", "tool_call_id": part["toolCallId"], "content": text})
    return messages
