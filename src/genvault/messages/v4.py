"""AI SDK v4 chat history → v5 UIMessages (spec §6, mapping of §6.3).

Invariant: every input message is accounted for in the report exactly once — `converted` into a
v5 message, `merged` into an earlier one, or `skipped` with the reason — and every output is a
valid `UIMessage`. Malformed input raises `V4ConversionError` naming each malformed message
and its field (all of them, not just the first) rather than being guessed at; lossy but
legitimate choices are recorded as report notes.

What a v4 history may contain, and where it goes:
* `content` (string, or a CoreMessage content array) → text / reasoning / tool / file parts;
* `toolInvocations` and `tool-invocation` parts → `tool-{name}` parts (partial-call →
  input-streaming, call → input-available, result → output-available); `step` numbers, and text
  that follows resolved calls, get `step-start` parts so `to_model_messages` splits the turn the
  way v4 did;
* `reasoning` (top level or parts with `details`) → reasoning parts, signatures and redacted
  data as Anthropic provider metadata;
* `experimental_attachments` → file parts placed first; v4 file parts `{mimeType, data}` → data
  URLs; sources → `source-url`;
* `createdAt` → `metadata.createdAt` (kept as sent, e.g. the ISO string), `annotations` →
  `metadata.annotations`; role `data` → an assistant message with one data part;
* parts already in v5 shape (a history migrated halfway) are kept as they are.

Grouping: v4 apps sometimes stored one assistant turn as several messages — the call, then the
result as a later assistant message or as a `tool` message (`{role: "tool", content:
[{type: "tool-result", ...}]}`), then the final answer. A later assistant message that shares a
toolCallId with the assistant message before it, a `tool` message, and an assistant message right
after such a `tool` message are merged into that earlier message, each new step behind a
`step-start`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from genvault.messages.errors import MessageValidationError, V4ConversionError
from genvault.messages.ui import UIMessage, parse_part, parse_ui_message

__all__ = ["V4Conversion", "V4ConversionError", "V4ReportEntry", "convert_v4_messages"]

_ROLES = ("system", "user", "assistant", "data", "tool")
_TOOL_STATES = {"partial-call": "input-streaming", "call": "input-available", "result": "output-available"}
_STATE_RANK = {"input-streaming": 0, "input-available": 1, "output-available": 2, "output-error": 2}
_DATA_URL = re.compile(r"^data:([^;,]+)[;,]")
_STEP_START: dict[str, Any] = {"type": "step-start"}


@dataclass(frozen=True, slots=True)
class V4ReportEntry:
    """What happened to the v4 message at `index` (its id `source_id`, None if it had none)."""

    action: Literal["converted", "merged", "skipped"]
    index: int
    source_id: str | None
    target_id: str | None  # the v5 message it became or was merged into; None when skipped
    reason: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class V4Conversion:
    messages: list[UIMessage]
    report: list[V4ReportEntry]

    def entries(self, action: Literal["converted", "merged", "skipped"]) -> list[V4ReportEntry]:
        return [entry for entry in self.report if entry.action == action]


@dataclass(slots=True)
class _Draft:
    """A v5 message under construction, or the results a v4 `tool` message carries."""

    index: int
    source_id: str | None
    id: str
    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    results: list[tuple[str, Any, bool]] | None = None  # (toolCallId, output, is_error) of a tool message
    from_data_role: bool = False

    def tool_parts(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for part in self.parts:
            if part["type"].startswith("tool-") or part["type"] == "dynamic-tool":
                found[part["toolCallId"]] = part  # the last one wins, as lookups go from the end
        return found


def convert_v4_messages(messages: Any, *, data_part_type: str | None = "data-custom") -> V4Conversion:
    """Migrate a v4 message list. `data_part_type` names the part a `data`-role message becomes
    (None skips such messages)."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise V4ConversionError("messages", "must be a list of v4 messages")
    if data_part_type is not None and not data_part_type.startswith("data-"):
        raise ValueError("data_part_type must start with 'data-'")
    taken = {m["id"] for m in messages if isinstance(m, Mapping) and isinstance(m.get("id"), str) and m["id"]}
    report: list[V4ReportEntry | None] = [None] * len(messages)
    drafts: list[_Draft] = []
    problems: list[V4ConversionError] = []  # every malformed message is reported, not just the first
    for index, raw in enumerate(messages):
        try:
            draft = _convert_one(raw, index, data_part_type)
        except V4ConversionError as exc:
            problems.append(exc)
            continue
        if isinstance(draft, str):
            report[index] = V4ReportEntry("skipped", index, _source_id(raw), None, draft)
        else:
            drafts.append(draft)

    out: list[_Draft] = []
    continues: _Draft | None = None  # the assistant message a `tool` message just fed results into
    for draft in drafts:
        target = out[-1] if out and out[-1].role == "assistant" and not out[-1].from_data_role else None
        if draft.results is not None:
            entry = _merge_results(draft, target)
            report[draft.index] = entry
            continues = target if entry.action == "merged" else None
            continue
        if target is not None and draft.role == "assistant" and not draft.from_data_role:
            shared = sorted(draft.tool_parts().keys() & target.tool_parts().keys())
            if shared or continues is target:
                why = f"shares tool call {', '.join(shared)}" if shared else "answers the tool results before it"
                only_results = not _merge_assistant(target, draft)
                report[draft.index] = V4ReportEntry(
                    "merged",
                    draft.index,
                    draft.source_id,
                    target.id,
                    f"same turn as {target.id}: {why}",
                    tuple(draft.notes),
                )
                # A message that only carried results plays the part of a tool message.
                continues = target if only_results else None
                continue
        if not draft.id:
            draft.id = _new_id(draft.index, taken)
            draft.notes.insert(0, f"no id in v4; generated {draft.id}")
        out.append(draft)
        continues = None

    result: list[UIMessage] = []
    for draft in out:
        try:
            result.append(_finish(draft))
        except V4ConversionError as exc:
            problems.append(exc)
            continue
        report[draft.index] = V4ReportEntry(
            "converted", draft.index, draft.source_id, draft.id, f"{draft.role} message", tuple(draft.notes)
        )
    if problems:
        raise V4ConversionError.of(problems)
    return V4Conversion(messages=result, report=[entry for entry in report if entry is not None])


def _source_id(raw: Any) -> str | None:
    value = raw.get("id") if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and value else None


def _convert_one(raw: Any, index: int, data_part_type: str | None) -> _Draft | str:
    """A draft, or the reason the message is skipped."""
    loc = f"messages[{index}]"
    if not isinstance(raw, Mapping):
        raise V4ConversionError(loc, "must be an object (a v4 message)")
    role = raw.get("role")
    if role is None:
        raise V4ConversionError(f"{loc}.role", "is missing; every v4 message needs a role")
    if role not in _ROLES:
        raise V4ConversionError(f"{loc}.role", f"unknown role {role!r}; expected one of {', '.join(_ROLES)}")
    source_id = raw.get("id")
    if source_id is not None and not isinstance(source_id, str):
        raise V4ConversionError(f"{loc}.id", "must be a string")
    # Ids are generated only for messages that are kept (see convert_v4_messages).
    draft = _Draft(index=index, source_id=source_id or None, id=source_id or "", role=role)
    draft.metadata = _metadata(raw, loc)

    if role == "tool":
        draft.results = _tool_results(raw, loc)
        return draft
    if role == "data":
        if data_part_type is None:
            return "data-role message dropped (data_part_type=None)"
        draft.role, draft.from_data_role = "assistant", True
        draft.parts = [{"type": data_part_type, "data": raw["data"] if "data" in raw else raw.get("content")}]
        return draft

    raw_parts = raw.get("parts")
    if raw_parts is not None and not isinstance(raw_parts, list):
        raise V4ConversionError(f"{loc}.parts", "must be an array")
    # v4 kept `content` (and often `toolInvocations`) beside `parts`; parts are the full record.
    parts = _from_parts(raw_parts, f"{loc}.parts", draft.notes) if raw_parts else _from_legacy(raw, loc, draft.notes)
    draft.parts = _attachments(raw, loc) + parts
    if not draft.parts:
        return f"empty {role} message: no content, parts or attachments"
    return draft


def _new_id(index: int, taken: set[str]) -> str:
    candidate, n = f"msg-{index}", 1
    while candidate in taken:
        n += 1
        candidate = f"msg-{index}-{n}"
    taken.add(candidate)
    return candidate


def _metadata(raw: Mapping[str, Any], loc: str) -> dict[str, Any]:
    existing = raw.get("metadata")
    if existing is not None and not isinstance(existing, dict):
        raise V4ConversionError(f"{loc}.metadata", "must be an object")
    metadata = dict(existing or {})
    created = raw.get("createdAt")
    if created is not None:
        if not isinstance(created, str | int | float) or isinstance(created, bool):
            raise V4ConversionError(f"{loc}.createdAt", "must be an ISO date string or epoch milliseconds")
        metadata.setdefault("createdAt", created)
    annotations = raw.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, list):
            raise V4ConversionError(f"{loc}.annotations", "must be an array")
        if annotations:
            metadata["annotations"] = annotations
    return metadata


def _tool_results(raw: Mapping[str, Any], loc: str) -> list[tuple[str, Any, bool]]:
    results: list[tuple[str, Any, bool]] = []
    content = raw.get("content")
    if isinstance(content, list):
        for i, item in enumerate(content):
            where = f"{loc}.content[{i}]"
            if not isinstance(item, Mapping) or item.get("type") != "tool-result":
                raise V4ConversionError(where, "a tool message's content must be tool-result parts")
            call_id = _required_str(item, "toolCallId", where)
            value = item["result"] if "result" in item else item.get("output")
            results.append((call_id, value, item.get("isError") is True))
    for i, invocation in enumerate(_list(raw, "toolInvocations", loc)):
        part, _step = _tool_part(invocation, f"{loc}.toolInvocations[{i}]", [])
        if part["state"] == "output-available":
            results.append((part["toolCallId"], part.get("output"), False))
    if not results:
        raise V4ConversionError(f"{loc}.content", "a tool message needs tool-result parts")
    return results


def _merge_results(draft: _Draft, target: _Draft | None) -> V4ReportEntry:
    assert draft.results is not None
    if target is None:
        return V4ReportEntry(
            "skipped", draft.index, draft.source_id, None, "tool results with no assistant message before them"
        )
    calls = target.tool_parts()
    matched = [r for r in draft.results if r[0] in calls]
    unmatched = [r[0] for r in draft.results if r[0] not in calls]
    if not matched:
        return V4ReportEntry(
            "skipped", draft.index, draft.source_id, None, f"no tool call in {target.id} matches {', '.join(unmatched)}"
        )
    for call_id, value, is_error in matched:
        part = calls[call_id]
        for key in ("output", "errorText", "rawInput", "preliminary"):
            part.pop(key, None)
        if is_error:
            part["state"] = "output-error"
            part["errorText"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        else:
            part["state"] = "output-available"
            part["output"] = value
    notes = tuple(draft.notes) + tuple(f"result for unknown call {call_id} dropped" for call_id in unmatched)
    ids = ", ".join(r[0] for r in matched)
    return V4ReportEntry("merged", draft.index, draft.source_id, target.id, f"tool results for {ids} merged", notes)


def _merge_assistant(target: _Draft, draft: _Draft) -> bool:
    """Fold `draft` into `target`; True if it added parts beyond updates of known calls."""
    calls = target.tool_parts()
    appended: list[dict[str, Any]] = []
    for part in draft.parts:
        existing = calls.get(part.get("toolCallId", "")) if "toolCallId" in part else None
        if existing is not None and existing["type"] == part["type"]:
            # The same call seen again, usually now with its result: keep the furthest state.
            if _STATE_RANK[part["state"]] >= _STATE_RANK[existing["state"]]:
                existing.clear()
                existing.update(part)
            continue
        appended.append(part)
    if appended:
        if appended[0] != _STEP_START and (not target.parts or target.parts[-1] != _STEP_START):
            appended.insert(0, dict(_STEP_START))
        target.parts += appended
    for key, value in draft.metadata.items():
        if key == "annotations" and isinstance(target.metadata.get(key), list):
            target.metadata[key] = target.metadata[key] + value
        else:
            target.metadata.setdefault(key, value)
    return bool(appended)


def _finish(draft: _Draft) -> UIMessage:
    obj: dict[str, Any] = {"id": draft.id, "role": draft.role, "parts": draft.parts}
    if draft.metadata:
        obj["metadata"] = draft.metadata
    try:
        return parse_ui_message(obj)
    except MessageValidationError as exc:
        # e.g. an `args` value that is not JSON; the issue names the part and field.
        raise V4ConversionError(f"messages[{draft.index}]", f"does not convert to a valid v5 message: {exc}") from None


# --- parts -----------------------------------------------------------------------------------


def _from_parts(raw_parts: list[Any], loc: str, notes: list[str]) -> list[dict[str, Any]]:
    items: list[tuple[dict[str, Any], int | None]] = []  # (part, v4 step if a tool invocation)
    for i, raw in enumerate(raw_parts):
        where = f"{loc}[{i}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
            raise V4ConversionError(where, "must be an object with a string type")
        kind = raw["type"]
        if kind == "tool-invocation":
            if not isinstance(raw.get("toolInvocation"), Mapping):
                raise V4ConversionError(f"{where}.toolInvocation", "is missing or not an object")
            part, step = _tool_part(raw["toolInvocation"], f"{where}.toolInvocation", notes)
            items.append((part, step))
        elif kind == "reasoning" and "reasoning" in raw:
            items += [(p, None) for p in _reasoning(raw.get("reasoning"), raw.get("details"), where, notes)]
        elif kind == "source" and "source" in raw:
            part_or_none = _source(raw["source"], f"{where}.source", notes)
            if part_or_none is not None:
                items.append((part_or_none, None))
        elif kind == "file" and "mimeType" in raw:
            media_type = _required_str(raw, "mimeType", where)
            data = _required_str(raw, "data", where)
            url = data if data.startswith(("data:", "http://", "https://")) else f"data:{media_type};base64,{data}"
            items.append(({"type": "file", "mediaType": media_type, "url": url}, None))
        else:
            # v4 text and step-start parts are valid v5 parts; so are parts already migrated.
            items.append((_v5_part(raw, where), None))
    if any(part == _STEP_START for part, _ in items):
        return [part for part, _ in items]  # multi-step v4 messages already mark their steps
    return _with_steps(items)


def _from_legacy(raw: Mapping[str, Any], loc: str, notes: list[str]) -> list[dict[str, Any]]:
    # v4's getMessageParts order: tool invocations, then reasoning, then the text content.
    items: list[tuple[dict[str, Any], int | None]] = []
    for i, invocation in enumerate(_list(raw, "toolInvocations", loc)):
        items.append(_tool_part(invocation, f"{loc}.toolInvocations[{i}]", notes))
    items.sort(key=lambda item: item[1] or 0)  # stable: v4 grouped calls by `step ?? 0`
    reasoning = raw.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise V4ConversionError(f"{loc}.reasoning", "must be a string")
        if reasoning:
            items.append(({"type": "reasoning", "text": reasoning}, None))
    content = raw.get("content")
    if isinstance(content, str):
        if content:
            items.append(({"type": "text", "text": content}, None))
    elif isinstance(content, list):
        items += [(part, None) for part in _core_content(content, f"{loc}.content", notes)]
    elif content is not None:
        raise V4ConversionError(f"{loc}.content", "must be a string or an array of content parts")
    return _with_steps(items)


def _with_steps(items: list[tuple[dict[str, Any], int | None]]) -> list[dict[str, Any]]:
    """Insert step-starts where v4 started a new LLM step: when a tool call's `step` changes, and
    before content that follows resolved tool calls (the model answered after the results)."""
    parts: list[dict[str, Any]] = []
    previous_step: int | None = None
    after_results = False
    for part, step in items:
        is_tool = part["type"].startswith("tool-")
        new_step = (is_tool and step is not None and previous_step is not None and step != previous_step) or (
            not is_tool and after_results
        )
        if new_step and parts:
            parts.append(dict(_STEP_START))
            after_results = False
        if is_tool:
            previous_step = step if step is not None else previous_step
            after_results = after_results or part["state"] in ("output-available", "output-error")
        parts.append(part)
    return parts


def _tool_part(invocation: Any, loc: str, notes: list[str]) -> tuple[dict[str, Any], int | None]:
    if not isinstance(invocation, Mapping):
        raise V4ConversionError(loc, "must be an object")
    call_id = invocation.get("toolCallId")
    if not isinstance(call_id, str) or not call_id:
        raise V4ConversionError(f"{loc}.toolCallId", "is missing; every tool invocation needs a toolCallId")
    name = _required_str(invocation, "toolName", loc)
    state = invocation.get("state")
    if state not in _TOOL_STATES:
        raise V4ConversionError(
            f"{loc}.state", f"unknown tool state {state!r}; v4 states are partial-call, call, result"
        )
    part: dict[str, Any] = {"type": f"tool-{name}", "toolCallId": call_id, "state": _TOOL_STATES[state]}
    if "args" in invocation:
        part["input"] = invocation["args"]
    if state == "result":
        if "result" in invocation:
            part["output"] = invocation["result"]
        else:
            notes.append(f"tool call {call_id} is in state result but has no result")
    elif state == "partial-call":
        notes.append(f"tool call {call_id} was still streaming (partial-call); kept as input-streaming")
    step = invocation.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        raise V4ConversionError(f"{loc}.step", "must be an integer")
    return part, step


def _reasoning(text: Any, details: Any, loc: str, notes: list[str]) -> list[dict[str, Any]]:
    if not isinstance(text, str):
        raise V4ConversionError(f"{loc}.reasoning", "must be a string")
    if details is None or details == []:
        return [{"type": "reasoning", "text": text}] if text else []
    if not isinstance(details, list):
        raise V4ConversionError(f"{loc}.details", "must be an array")
    # One part per detail keeps each Anthropic thinking block with its own signature.
    parts: list[dict[str, Any]] = []
    for i, detail in enumerate(details):
        where = f"{loc}.details[{i}]"
        kind = detail.get("type") if isinstance(detail, Mapping) else None
        if kind == "text":
            part: dict[str, Any] = {"type": "reasoning", "text": _required_str(detail, "text", where)}
            if isinstance(detail.get("signature"), str):
                part["providerMetadata"] = {"anthropic": {"signature": detail["signature"]}}
            parts.append(part)
        elif kind == "redacted":
            redacted = _required_str(detail, "data", where)
            parts.append(
                {"type": "reasoning", "text": "", "providerMetadata": {"anthropic": {"redactedData": redacted}}}
            )
        else:
            raise V4ConversionError(f"{where}.type", "must be 'text' or 'redacted'")
    return parts


def _source(source: Any, loc: str, notes: list[str]) -> dict[str, Any] | None:
    if not isinstance(source, Mapping):
        raise V4ConversionError(loc, "must be an object")
    if source.get("sourceType", "url") != "url":
        notes.append(f"source of type {source.get('sourceType')!r} dropped (v5 keeps url sources only)")
        return None
    part = {
        "type": "source-url",
        "sourceId": _required_str(source, "id", loc),
        "url": _required_str(source, "url", loc),
    }
    if isinstance(source.get("title"), str):
        part["title"] = source["title"]
    if isinstance(source.get("providerMetadata"), dict):
        part["providerMetadata"] = source["providerMetadata"]
    return part


def _core_content(content: list[Any], loc: str, notes: list[str]) -> list[dict[str, Any]]:
    """Parts of a CoreMessage-style content array (some v4 apps stored model messages)."""
    parts: list[dict[str, Any]] = []
    for i, item in enumerate(content):
        where = f"{loc}[{i}]"
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            parts.append({"type": "text", "text": _required_str(item, "text", where)})
        elif kind == "reasoning":
            details = [{"type": "text", "text": item.get("text"), "signature": item.get("signature")}]
            parts += _reasoning(item.get("text"), details, where, notes)
        elif kind == "redacted-reasoning":
            parts += _reasoning("", [{"type": "redacted", "data": item.get("data")}], where, notes)
        elif kind == "tool-call":
            invocation = {**item, "state": "call"}
            parts.append(_tool_part(invocation, where, notes)[0])
        elif kind in ("image", "file"):
            data = item.get("image") if kind == "image" else item.get("data")
            if not isinstance(data, str):
                raise V4ConversionError(where, f"{kind} data must be a URL or base64 string")
            media = item.get("mimeType") or item.get("mediaType") or ("image/*" if kind == "image" else None)
            media = media or _media_type_of(data)
            url = data if data.startswith(("data:", "http://", "https://")) else f"data:{media};base64,{data}"
            part = {"type": "file", "mediaType": media, "url": url}
            if isinstance(item.get("filename"), str):
                part["filename"] = item["filename"]
            parts.append(part)
        else:
            raise V4ConversionError(f"{where}.type", f"unsupported content part type {kind!r}")
    return parts


def _attachments(raw: Mapping[str, Any], loc: str) -> list[dict[str, Any]]:
    parts = []
    for i, attachment in enumerate(_list(raw, "experimental_attachments", loc)):
        where = f"{loc}.experimental_attachments[{i}]"
        if not isinstance(attachment, Mapping):
            raise V4ConversionError(where, "must be an object")
        url = _required_str(attachment, "url", where)
        media = attachment.get("contentType")
        part = {
            "type": "file",
            "mediaType": media if isinstance(media, str) and media else _media_type_of(url),
            "url": url,
        }
        if isinstance(attachment.get("name"), str):
            part["filename"] = attachment["name"]
        parts.append(part)
    return parts


def _media_type_of(url: str) -> str:
    match = _DATA_URL.match(url)
    return match.group(1) if match else "application/octet-stream"


def _v5_part(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        return parse_part(dict(raw)).to_json()
    except MessageValidationError as exc:
        raise V4ConversionError(where, f"is neither a v4 part nor a valid v5 part: {exc}") from None


def _list(raw: Mapping[str, Any], key: str, loc: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise V4ConversionError(f"{loc}.{key}", "must be an array")
    return value


def _required_str(obj: Mapping[str, Any], key: str, loc: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise V4ConversionError(f"{loc}.{key}", "is missing or not a string")
    return value
