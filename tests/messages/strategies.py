"""Hypothesis strategies for AI SDK v5 UIMessages, shared with the storage round-trip tests.

* `ui_message_jsons()` / `ui_messages()` — any valid message: every part type, every tool state,
  optional keys present and absent, `unknown` fields absent / `null` / nested JSON, metadata
  absent / null / object / other JSON, unicode everywhere. Non-assistant messages have ≥ 1 part
  (what `validateUIMessages` requires); assistant messages may be empty.
* `assistant_messages()` — the same, assistant role only.
* `streamable_assistant_messages()` — assistant messages in the image of the stream assembler
  (see `genvault.messages.assembler.encode_message` for what a stream cannot express).

Pass `alphabet=st.characters(exclude_characters="\\x00", exclude_categories=["Cs"])` when the
target cannot store NUL (PostgreSQL text and jsonb).
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import strategies as st

from genvault.messages import UIMessage, parse_ui_message

__all__ = [
    "assistant_message_jsons",
    "assistant_messages",
    "json_values",
    "part_jsons",
    "streamable_assistant_message_jsons",
    "streamable_assistant_messages",
    "ui_message_jsons",
    "ui_messages",
]

TOOL_STATES = ("input-streaming", "input-available", "output-available", "output-error")
_ROLES = ("system", "user", "assistant")


@functools.cache
def _text(alphabet: st.SearchStrategy[str] | None, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, max_size=max_size) if alphabet is not None else st.text(max_size=max_size)


# Building strategies is costly; draws reuse one instance per alphabet.
@functools.cache
def json_values(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Any JSON value (finite numbers, nested arrays and objects, unicode strings)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**53), max_value=2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | _text(alphabet, max_size=12)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(_text(alphabet, max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )


@functools.cache
def _provider_metadata(alphabet: st.SearchStrategy[str] | None) -> st.SearchStrategy[dict[str, Any]]:
    key = _text(alphabet, max_size=8)
    return st.dictionaries(key, st.dictionaries(key, json_values(alphabet), max_size=2), max_size=2)


class _Builder:
    """Draws optional keys into a JSON object: each optional key is present or absent."""

    def __init__(self, draw: st.DrawFn, obj: dict[str, Any]) -> None:
        self.draw = draw
        self.obj = obj

    def maybe(self, key: str, strategy: st.SearchStrategy[Any]) -> _Builder:
        if self.draw(st.booleans()):
            self.obj[key] = self.draw(strategy)
        return self


@st.composite
def part_jsons(
    draw: st.DrawFn, alphabet: st.SearchStrategy[str] | None = None, *, streamable: bool = False
) -> dict[str, Any]:
    """One part JSON. `streamable=True` keeps to what the stream assembler can produce, except
    for uniqueness of tool call ids and data ids, which the message strategy enforces."""
    text = _text(alphabet, max_size=20)
    name = _text(alphabet, max_size=10)  # may contain "-", may be empty, like the AI SDK allows
    pm = _provider_metadata(alphabet)
    value = json_values(alphabet)
    kind = draw(
        st.sampled_from(
            ["text", "reasoning", "tool", "dynamic-tool", "source-url", "source-document", "file", "data", "step-start"]
        )
    )
    states = st.sampled_from(["streaming", "done"])
    if kind == "text":
        b = _Builder(draw, {"type": "text", "text": draw(text)})
        if streamable:
            b.obj["state"] = draw(states)
        else:
            b.maybe("state", states)
        return b.maybe("providerMetadata", pm).obj
    if kind == "reasoning":
        b = _Builder(draw, {"type": "reasoning"})
        if streamable:
            b.obj["id"] = draw(text)
        else:
            b.maybe("id", text)
        b.obj["text"] = draw(text)
        if streamable:
            b.obj["state"] = draw(states)
        else:
            b.maybe("state", states)
        return b.maybe("providerMetadata", pm).obj
    if kind in ("tool", "dynamic-tool"):
        return _tool_part(draw, kind, name, text, value, pm, streamable)
    if kind == "source-url":
        b = _Builder(draw, {"type": "source-url", "sourceId": draw(text), "url": draw(text)})
        return b.maybe("title", text).maybe("providerMetadata", pm).obj
    if kind == "source-document":
        b = _Builder(draw, {"type": "source-document", "sourceId": draw(text), "mediaType": draw(text)})
        b.obj["title"] = draw(text)
        return b.maybe("filename", text).maybe("providerMetadata", pm).obj
    if kind == "file":
        b = _Builder(draw, {"type": "file", "mediaType": draw(text)})
        if not streamable:  # the client copies neither from a file chunk
            b.maybe("filename", text)
        b.obj["url"] = draw(text)
        if not streamable:
            b.maybe("providerMetadata", pm)
        return b.obj
    if kind == "data":
        b = _Builder(draw, {"type": "data-" + draw(name)}).maybe("id", text).maybe("data", value)
        return b.maybe("transient", st.just(False) if streamable else st.booleans()).obj
    return {"type": "step-start"}


def _tool_part(
    draw: st.DrawFn,
    kind: str,
    name: st.SearchStrategy[str],
    text: st.SearchStrategy[str],
    value: st.SearchStrategy[Any],
    pm: st.SearchStrategy[dict[str, Any]],
    streamable: bool,
) -> dict[str, Any]:
    dynamic = kind == "dynamic-tool"
    state = draw(st.sampled_from(TOOL_STATES))
    obj: dict[str, Any] = (
        {"type": "dynamic-tool", "toolName": draw(name)} if dynamic else {"type": "tool-" + draw(name)}
    )
    b = _Builder(draw, obj)
    obj["toolCallId"] = draw(text)
    obj["state"] = state
    raw_input_allowed = not dynamic and (not streamable or state == "output-error")
    if streamable and raw_input_allowed and draw(st.booleans()):
        obj["rawInput"] = draw(value)  # an invalid call: the input lives in rawInput only
    else:
        b.maybe("input", _no_proto(value) if streamable and state == "input-streaming" else value)
        if raw_input_allowed and not streamable:
            b.maybe("rawInput", value)
    if state == "output-available":
        b.maybe("output", value)
    if state == "output-error":
        obj["errorText"] = draw(text)
    b.maybe("providerExecuted", st.booleans()).maybe("callProviderMetadata", pm)
    if not streamable or state == "output-available":
        b.maybe("preliminary", st.booleans())
    if dynamic and not streamable:
        b.maybe("title", text)
    return obj


@functools.cache
def _no_proto(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # The client's secure JSON parse rejects these keys in streamed tool input.
    return values.filter(lambda v: "__proto__" not in repr(v) and "prototype" not in repr(v))


@st.composite
def ui_message_jsons(
    draw: st.DrawFn,
    alphabet: st.SearchStrategy[str] | None = None,
    *,
    roles: tuple[str, ...] = _ROLES,
    streamable: bool = False,
    max_parts: int = 8,
) -> dict[str, Any]:
    role = draw(st.sampled_from(roles))
    parts = draw(
        st.lists(
            part_jsons(alphabet, streamable=streamable), min_size=0 if role == "assistant" else 1, max_size=max_parts
        )
    )
    if streamable:
        parts = _unique_ids(parts)
    message: dict[str, Any] = {"id": draw(_text(alphabet, max_size=20)), "role": role}
    metadata = st.one_of(
        st.dictionaries(_text(alphabet, max_size=8), json_values(alphabet), max_size=3), json_values(alphabet)
    )
    if streamable:
        metadata = metadata.filter(lambda m: m is not None)  # null metadata is ignored by the client
    if draw(st.booleans()):
        message["metadata"] = draw(metadata)
    message["parts"] = parts
    return message


def _unique_ids(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A stream updates the first part with the same call id (per step) or data (type, id)
    # instead of adding another, so messages in the stream's image never repeat them.
    for index, part in enumerate(parts):
        if "toolCallId" in part:
            part["toolCallId"] += f"#{index}"
        elif part["type"].startswith("data-") and "id" in part:
            part["id"] += f"#{index}"
    return parts


def ui_messages(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[UIMessage]:
    return ui_message_jsons(alphabet).map(parse_ui_message)


def assistant_message_jsons(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return ui_message_jsons(alphabet, roles=("assistant",))


def assistant_messages(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[UIMessage]:
    return assistant_message_jsons(alphabet).map(parse_ui_message)


def streamable_assistant_message_jsons(
    alphabet: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    return ui_message_jsons(alphabet, roles=("assistant",), streamable=True)


def streamable_assistant_messages(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[UIMessage]:
    return streamable_assistant_message_jsons(alphabet).map(parse_ui_message)
