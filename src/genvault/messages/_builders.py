"""Mutable builders behind `MessageAssembler`, and the metadata merge it uses.

Invariant: a builder's `build()` returns an immutable part equal to what the AI SDK client holds
for the same chunks, and caches it until the builder changes again; expensive work (joining text
deltas, parsing partial tool input) happens in `build()`, never per chunk.
"""

from __future__ import annotations

from typing import Any, Final

from genvault.messages._partial_json import parse_partial_json
from genvault.messages._wire import ABSENT, ProviderMetadata
from genvault.messages.ui import DynamicToolPart, ReasoningPart, TextPart, TextState, ToolPart, ToolState

__all__ = ["PartialCall", "PartialInput", "TextBuilder", "ToolBuilder", "merge_metadata"]

_FORBIDDEN_KEYS: Final = frozenset({"__proto__", "constructor", "prototype"})


def merge_metadata(base: Any, override: Any) -> Any:
    """The AI SDK's `mergeObjects` for message metadata.

    Objects merge recursively; arrays and primitives in `override` replace; `__proto__`,
    `constructor` and `prototype` keys of `override` are ignored (prototype-pollution guard).
    `base` is not modified: merged levels are new dicts, untouched values are shared.
    """
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    result = dict(base)
    for key, value in override.items():
        if key in _FORBIDDEN_KEYS:
            continue
        current = result.get(key)
        result[key] = merge_metadata(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return result


class TextBuilder:
    """A text or reasoning part that may still grow; deltas are joined only when a snapshot is taken."""

    __slots__ = ("_built", "_json", "chunks", "id", "provider_metadata", "reasoning", "state")

    def __init__(self, *, reasoning: bool, stream_id: str, provider_metadata: ProviderMetadata | None) -> None:
        self.reasoning = reasoning
        self.id = stream_id
        self.chunks: list[str] = []
        self.state: TextState = "streaming"
        self.provider_metadata = provider_metadata
        self._built: TextPart | ReasoningPart | None = None
        self._json: dict[str, Any] | None = None

    def touch(self) -> None:
        self._built = None
        self._json = None

    def _text(self) -> str:
        text = "".join(self.chunks)
        self.chunks = [text] if text else []
        return text

    def build_json(self) -> dict[str, Any]:
        """`build().to_json()`, without the model: what a checkpoint takes of a streaming part."""
        if self._json is None:
            if self._built is not None:
                self._json = self._built.to_json()
            else:
                json: dict[str, Any] = {"type": "reasoning", "id": self.id} if self.reasoning else {"type": "text"}
                json["text"] = self._text()
                json["state"] = self.state
                if self.provider_metadata is not None:
                    json["providerMetadata"] = self.provider_metadata
                self._json = json
        return self._json

    def build(self) -> TextPart | ReasoningPart:
        if self._built is None:
            text = self._text()
            if self.reasoning:
                self._built = ReasoningPart.model_construct(
                    type="reasoning", id=self.id, text=text, state=self.state, provider_metadata=self.provider_metadata
                )
            else:
                self._built = TextPart.model_construct(
                    type="text", text=text, state=self.state, provider_metadata=self.provider_metadata
                )
        return self._built


class PartialCall:
    """The raw input text of a call between `tool-input-start` and its deltas (`partialToolCalls`)."""

    __slots__ = ("chunks", "dynamic", "tool_name")

    def __init__(self, tool_name: str, dynamic: bool) -> None:
        self.tool_name = tool_name
        self.dynamic = dynamic
        self.chunks: list[str] = []


class PartialInput:
    """`parsePartialJson` of the first `count` input deltas of a call, computed on demand."""

    __slots__ = ("_value", "call", "count")

    def __init__(self, call: PartialCall) -> None:
        self.call = call
        self.count = len(call.chunks)
        self._value: Any = None

    def resolve(self) -> Any:
        if self._value is None:
            self._value = (parse_partial_json("".join(self.call.chunks[: self.count])),)
        return self._value[0]


class ToolBuilder:
    """A tool part (static or dynamic) that chunks update in place until a snapshot is taken."""

    __slots__ = (
        "_built",
        "call_provider_metadata",
        "dynamic",
        "error_text",
        "input",
        "output",
        "preliminary",
        "provider_executed",
        "raw_input",
        "state",
        "title",
        "tool_call_id",
        "tool_name",
    )

    def __init__(self, *, dynamic: bool, tool_name: str, tool_call_id: str) -> None:
        self.dynamic = dynamic
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id
        self.state: ToolState = "input-streaming"
        self.input: Any = ABSENT  # may be a PartialInput until built
        self.output: Any = ABSENT
        self.raw_input: Any = ABSENT
        self.error_text: str | None = None
        self.provider_executed: bool | None = None
        self.call_provider_metadata: ProviderMetadata | None = None
        self.preliminary: bool | None = None
        self.title: str | None = None
        self._built: ToolPart | DynamicToolPart | None = None

    @classmethod
    def from_part(cls, part: ToolPart | DynamicToolPart) -> ToolBuilder:
        builder = cls(
            dynamic=isinstance(part, DynamicToolPart), tool_name=part.tool_name, tool_call_id=part.tool_call_id
        )
        builder.state = part.state
        builder.input = part.input
        builder.output = part.output
        builder.raw_input = part.raw_input if isinstance(part, ToolPart) else ABSENT
        builder.error_text = part.error_text
        builder.provider_executed = part.provider_executed
        builder.call_provider_metadata = part.call_provider_metadata
        builder.preliminary = part.preliminary
        builder.title = part.title if isinstance(part, DynamicToolPart) else None
        builder._built = part
        return builder

    def update(
        self,
        *,
        state: ToolState,
        input: Any = ABSENT,
        output: Any = ABSENT,
        raw_input: Any = ABSENT,
        error_text: str | None = None,
        preliminary: bool | None = None,
        provider_executed: bool | None = None,
    ) -> None:
        # `updateToolPart`: every value-carrying field is overwritten (absent clears it), while
        # providerExecuted, once set, is kept unless the chunk says otherwise.
        self.state = state
        self.input = input
        self.output = output
        self.raw_input = raw_input
        self.error_text = error_text
        self.preliminary = preliminary
        if provider_executed is not None:
            self.provider_executed = provider_executed
        self._built = None

    def build(self) -> ToolPart | DynamicToolPart:
        if self._built is None:
            value = self.input.resolve() if isinstance(self.input, PartialInput) else self.input
            common: dict[str, Any] = {
                "tool_call_id": self.tool_call_id,
                "state": self.state,
                "input": value,
                "output": self.output,
                "error_text": self.error_text,
                "provider_executed": self.provider_executed,
                "call_provider_metadata": self.call_provider_metadata,
                "preliminary": self.preliminary,
            }
            if self.dynamic:
                self._built = DynamicToolPart.model_construct(
                    type="dynamic-tool", tool_name=self.tool_name, title=self.title, **common
                )
            else:
                self._built = ToolPart.model_construct(
                    type="tool-" + self.tool_name, raw_input=self.raw_input, **common
                )
        return self._built
