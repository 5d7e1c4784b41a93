"""AI SDK ModelMessages (spec §4.2) → Anthropic Messages API request pieces. Pure; no SDK import.

Invariants, from what the Messages API requires:
- Roles alternate: consecutive messages of the same role (a tool message becomes a user
  message) are merged into one, blocks in order, so tool results lead the user turn.
- No empty text blocks and no empty messages are sent.
- Reasoning goes back only as Anthropic produced it: a `thinking` block with its signature or a
  `redacted_thinking` block. Unsigned reasoning (from another provider) is dropped, since the API
  rejects thinking it cannot verify.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from genvault.errors import InvalidRequest
from genvault.providers._parts import FileData, compact_json, read_file_part, tool_output_text
from genvault.providers.base import ToolSpec

__all__ = ["DEFAULT_MAX_TOKENS", "to_anthropic_messages", "to_anthropic_params", "to_anthropic_tools"]

logger = logging.getLogger(__name__)

# Anthropic requires `max_tokens` on every call; this is used when the request sets none.
DEFAULT_MAX_TOKENS = 4096


def to_anthropic_messages(
    model_messages: Iterable[dict[str, Any]], system: str | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """The `system` prompt and the `messages` for a system prompt and AI SDK ModelMessages.

    System-role messages join the system prompt (Anthropic has no system turns), separated by a
    blank line.
    """
    system_parts = [system] if system else []
    messages: list[dict[str, Any]] = []
    for message in model_messages:
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            text = content if isinstance(content, str) else _joined_text(content)
            if text:
                system_parts.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(content)
        elif role == "assistant":
            blocks = _assistant_blocks(content)
        elif role == "tool":
            role, blocks = "user", _tool_result_blocks(content)
        else:
            raise InvalidRequest(f"unsupported message role {role!r}; expected system, user, assistant or tool")
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    return ("\n\n".join(system_parts) or None), messages


def to_anthropic_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for tool in tools:
        spec: dict[str, Any] = {"name": tool.name, "input_schema": tool.input_schema}
        if tool.description:
            spec["description"] = tool.description
        result.append(spec)
    return result


def to_anthropic_params(params: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters in the Messages API's names; `max_tokens` is always set."""
    result: dict[str, Any] = {"max_tokens": DEFAULT_MAX_TOKENS}
    for key, value in params.items():
        if value is None:
            continue
        if key in ("temperature", "top_p", "top_k", "max_tokens"):
            result[key] = value
        elif key == "stop":
            result["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        else:
            # `seed` among others: the Messages API has no such parameter.
            logger.debug("Anthropic: ignoring unsupported parameter %s", key)
    return result


def _joined_text(content: Any) -> str:
    return "".join(str(part.get("text", "")) for part in content or [] if part.get("type") == "text")


def _text_block(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}] if text else []


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return _text_block(content)
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.extend(_text_block(str(part.get("text", ""))))
        elif kind == "image":  # the AI SDK's older ImagePart, kept for hand-written messages
            blocks.append(_file_block({"mediaType": part.get("mediaType") or "image/*", "data": part.get("image")}))
        elif kind == "file":
            blocks.append(_file_block(part))
        else:
            logger.debug("Anthropic: dropping user part of type %s", kind)
    return blocks


def _source(file: FileData) -> dict[str, Any]:
    if file.url is not None:
        return {"type": "url", "url": file.url}
    return {"type": "base64", "media_type": file.media_type, "data": file.base64}


def _file_block(part: dict[str, Any]) -> dict[str, Any]:
    file = read_file_part(part)
    if file.media_type.startswith("image/"):
        return {"type": "image", "source": _source(file)}
    if file.media_type == "application/pdf":
        block: dict[str, Any] = {"type": "document", "source": _source(file)}
    elif file.media_type.startswith("text/"):
        text = file.decode().decode("utf-8", errors="replace")
        block = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    else:
        raise InvalidRequest(f"Anthropic cannot take a {file.media_type} file; send images, PDF or text")
    if file.filename:
        block["title"] = file.filename
    return block


def _assistant_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return _text_block(content)
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.extend(_text_block(str(part.get("text", ""))))
        elif kind == "reasoning":
            blocks.extend(_reasoning_block(part))
        elif kind == "tool-call":
            if part.get("providerExecuted"):
                # Server tools would need their result blocks replayed too; the model can do without.
                continue
            tool_input = part.get("input")
            blocks.append(
                {
                    "type": "tool_use",
                    "id": part["toolCallId"],
                    "name": part["toolName"],
                    "input": tool_input if isinstance(tool_input, dict) else {},
                }
            )
        else:
            logger.debug("Anthropic: dropping assistant part of type %s", kind)
    return blocks


def _reasoning_block(part: dict[str, Any]) -> list[dict[str, Any]]:
    options = (part.get("providerOptions") or {}).get("anthropic") or {}
    if isinstance(options.get("signature"), str):
        return [{"type": "thinking", "thinking": str(part.get("text", "")), "signature": options["signature"]}]
    if isinstance(options.get("redactedData"), str):
        return [{"type": "redacted_thinking", "data": options["redactedData"]}]
    return []


def _tool_result_blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if part.get("type") != "tool-result":
            continue
        output = part.get("output")
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part["toolCallId"]}
        if isinstance(output, dict) and output.get("type") == "content":
            block["content"] = [_content_item(item) for item in output.get("value") or []]
        else:
            text, is_error = tool_output_text(output)
            block["content"] = text
            if is_error:
                block["is_error"] = True
        blocks.append(block)
    return blocks


def _content_item(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") == "media":
        media_type = str(item.get("mediaType", ""))
        if media_type.startswith("image/"):
            return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": item.get("data")}}
        if media_type == "application/pdf":
            return {
                "type": "document",
                "source": {"type": "base64", "media_type": media_type, "data": item.get("data")},
            }
        return {"type": "text", "text": compact_json(item)}
    return {"type": "text", "text": str(item.get("text", ""))}
