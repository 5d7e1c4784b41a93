"""AI SDK v5 `UIMessage` and its parts as immutable Pydantic models (spec §1).

Invariant (the round-trip law): for any valid message JSON `J`, after dropping keys that are not
UIMessage fields, `message_to_json(parse_ui_message(J)) == J` — same keys, same values. Absent
optional keys stay absent; `null` is accepted and kept only for `unknown`-typed fields
(`input`, `output`, `rawInput`, `data`, `metadata`); everywhere else `null` is rejected.

Deliberate differences from `validateUIMessages`' zod schema (which strips more):
* tool parts keep `rawInput`, `preliminary` and `callProviderMetadata` in any state, dynamic tool
  parts keep `title` and data parts keep `transient` — they are fields of the v5 TS types that
  the client's own reducer writes, and persistence must not lose them;
* the v6 approval states (`approval-requested`, …) are rejected: genvault speaks v5 only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictStr, Tag, TypeAdapter, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic_core import PydanticCustomError

from genvault.messages._wire import (
    ABSENT,
    NOT_NULL,
    OptBool,
    OptProviderMetadata,
    OptStr,
    Unknown,
    WireModel,
    issues_from_pydantic,
)
from genvault.messages.errors import MessageValidationError

__all__ = [
    "DataPart",
    "DynamicToolPart",
    "FilePart",
    "ReasoningPart",
    "Role",
    "SourceDocumentPart",
    "SourceUrlPart",
    "StepStartPart",
    "TextPart",
    "TextState",
    "ToolPart",
    "ToolState",
    "UIMessage",
    "UIPart",
    "data_name_of",
    "is_data_part",
    "is_static_tool_part",
    "is_tool_part",
    "message_to_json",
    "parse_part",
    "parse_ui_message",
    "part_to_json",
    "tool_name_of",
]

Role = Literal["system", "user", "assistant"]
TextState = Literal["streaming", "done"]
ToolState = Literal["input-streaming", "input-available", "output-available", "output-error"]

_V6_STATES = frozenset({"approval-requested", "approval-responded", "output-denied"})


class TextPart(WireModel):
    type: Literal["text"] = "text"
    text: StrictStr
    # Set by the client while assembling a stream; absent in messages typed by users.
    state: Annotated[TextState | None, NOT_NULL] = None
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class ReasoningPart(WireModel):
    type: Literal["reasoning"] = "reasoning"
    # Copied from the stream's reasoning id by clients ≥ 5.0.234; absent in older messages.
    id: OptStr = None
    text: StrictStr
    state: Annotated[TextState | None, NOT_NULL] = None
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class _ToolRules(WireModel):
    """Per-state rules shared by static and dynamic tool parts (validateUIMessages' zod union)."""

    @field_validator("state", mode="before", check_fields=False)
    @classmethod
    def _not_v6(cls, value: Any) -> Any:
        if value in _V6_STATES:
            raise PydanticCustomError(
                "v6_tool_state",
                "'{state}' is an AI SDK v6 approval state; v5 tool states are input-streaming, "
                "input-available, output-available and output-error",
                {"state": value},
            )
        return value

    @_model_validator(mode="after")
    def _state_rules(self) -> Any:
        state = getattr(self, "state")  # noqa: B009 - declared by both subclasses, not here
        if getattr(self, "output") is not ABSENT and state != "output-available":  # noqa: B009
            raise PydanticCustomError(
                "tool_state_field",
                "output is only allowed in state output-available (state is {state}); remove it or fix the state",
                {"state": state, "field": "output"},
            )
        error_text = getattr(self, "error_text")  # noqa: B009
        if state == "output-error" and error_text is None:
            raise PydanticCustomError(
                "tool_state_field", "errorText is required in state output-error", {"field": "errorText"}
            )
        if error_text is not None and state != "output-error":
            raise PydanticCustomError(
                "tool_state_field",
                "errorText is only allowed in state output-error (state is {state}); remove it or fix the state",
                {"state": state, "field": "errorText"},
            )
        return self


class ToolPart(_ToolRules):
    """A static tool call; `type` is `tool-` + the tool name (the name may itself contain `-`)."""

    type: StrictStr
    tool_call_id: StrictStr = Field(alias="toolCallId")
    state: Annotated[ToolState, NOT_NULL]
    input: Unknown = ABSENT
    output: Unknown = ABSENT
    # Only in output-error parts made from an invalid call (`tool-input-error`, 5.0.7+): the input
    # the model produced, while `input` is absent.
    raw_input: Unknown = Field(default=ABSENT, alias="rawInput")
    error_text: OptStr = Field(default=None, alias="errorText")
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    call_provider_metadata: OptProviderMetadata = Field(default=None, alias="callProviderMetadata")
    # True for streamed preliminary outputs (5.0.11+); the final output clears it.
    preliminary: OptBool = None

    @field_validator("type")
    @classmethod
    def _tool_prefix(cls, value: str) -> str:
        if not value.startswith("tool-"):
            raise PydanticCustomError("tool_type", "a static tool part's type must start with 'tool-'")
        return value

    @property
    def tool_name(self) -> str:
        return self.type[5:]


class DynamicToolPart(_ToolRules):
    """A tool whose type is not known at compile time (e.g. MCP tools); never has `rawInput`."""

    type: Literal["dynamic-tool"] = "dynamic-tool"
    tool_name: StrictStr = Field(alias="toolName")
    tool_call_id: StrictStr = Field(alias="toolCallId")
    state: Annotated[ToolState, NOT_NULL]
    input: Unknown = ABSENT
    output: Unknown = ABSENT
    error_text: OptStr = Field(default=None, alias="errorText")
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    call_provider_metadata: OptProviderMetadata = Field(default=None, alias="callProviderMetadata")
    preliminary: OptBool = None
    # Declared by later 5.0.x TS types; no v5 chunk sets it, but stored messages may carry it.
    title: OptStr = None


class SourceUrlPart(WireModel):
    type: Literal["source-url"] = "source-url"
    source_id: StrictStr = Field(alias="sourceId")
    url: StrictStr
    title: OptStr = None
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class SourceDocumentPart(WireModel):
    type: Literal["source-document"] = "source-document"
    source_id: StrictStr = Field(alias="sourceId")
    media_type: StrictStr = Field(alias="mediaType")
    title: StrictStr  # required here, unlike source-url
    filename: OptStr = None
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class FilePart(WireModel):
    type: Literal["file"] = "file"
    media_type: StrictStr = Field(alias="mediaType")
    filename: OptStr = None
    url: StrictStr  # hosted URL or a data: URL
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class DataPart(WireModel):
    """App-defined data; `type` is `data-` + the name. Parts with the same type and id are replaced."""

    type: StrictStr
    id: OptStr = None
    data: Unknown = ABSENT
    # Only ever `false` in an assembled message: a server that sends `"transient": false` gets it
    # copied into the part (verified, spec §1.2.8); transient `true` data never becomes a part.
    transient: OptBool = None

    @field_validator("type")
    @classmethod
    def _data_prefix(cls, value: str) -> str:
        if not value.startswith("data-"):
            raise PydanticCustomError("data_type", "a data part's type must start with 'data-'")
        return value

    @property
    def name(self) -> str:
        return self.type[5:]


class StepStartPart(WireModel):
    type: Literal["step-start"] = "step-start"


_FIXED_TAGS = frozenset({"text", "reasoning", "dynamic-tool", "source-url", "source-document", "file", "step-start"})
_PART_TAGS = _FIXED_TAGS | {"tool", "data"}


def _part_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None
    if kind in _FIXED_TAGS:
        return kind
    if kind.startswith("tool-"):
        return "tool"
    if kind.startswith("data-"):
        return "data"
    return None


UIPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ReasoningPart, Tag("reasoning")]
    | Annotated[ToolPart, Tag("tool")]
    | Annotated[DynamicToolPart, Tag("dynamic-tool")]
    | Annotated[SourceUrlPart, Tag("source-url")]
    | Annotated[SourceDocumentPart, Tag("source-document")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[DataPart, Tag("data")]
    | Annotated[StepStartPart, Tag("step-start")],
    Discriminator(
        _part_tag,
        custom_error_type="ui_part_type",
        custom_error_message=(
            "unknown part type; expected text, reasoning, tool-{name}, dynamic-tool, source-url, "
            "source-document, file, data-{name} or step-start"
        ),
    ),
]


class UIMessage(WireModel):
    id: StrictStr
    role: Role
    # App-defined JSON; ABSENT when the key is missing, None when it is `null`.
    metadata: Unknown = ABSENT
    parts: list[UIPart]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "role": self.role}
        if self.metadata is not ABSENT:
            out["metadata"] = self.metadata
        out["parts"] = [part.to_json() for part in self.parts]
        return out


_PART_ADAPTER: TypeAdapter[UIPart] = TypeAdapter(UIPart)


def parse_ui_message(obj: Any) -> UIMessage:
    """Validate one UIMessage JSON object (unknown keys stripped); raise `MessageValidationError`."""
    if isinstance(obj, UIMessage):
        return obj
    try:
        return UIMessage.model_validate(obj)
    except ValidationError as exc:
        raise MessageValidationError(issues_from_pydantic(exc, message_index=None, tags=_PART_TAGS)) from None


def parse_part(obj: Any) -> UIPart:
    """Validate one part JSON object; raise `MessageValidationError`."""
    try:
        return _PART_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise MessageValidationError(issues_from_pydantic(exc, message_index=None, tags=_PART_TAGS)) from None


def message_to_json(message: UIMessage) -> dict[str, Any]:
    """The AI SDK JSON of a message (nested JSON values are shared, not copied)."""
    return message.to_json()


def part_to_json(part: UIPart) -> dict[str, Any]:
    return part.to_json()


def is_tool_part(part: UIPart) -> bool:
    """True for static `tool-{name}` and `dynamic-tool` parts (v5's `isToolOrDynamicToolUIPart`)."""
    return isinstance(part, ToolPart | DynamicToolPart)


def is_static_tool_part(part: UIPart) -> bool:
    """True for `tool-{name}` parts only (v5's `isToolUIPart`)."""
    return isinstance(part, ToolPart)


def is_data_part(part: UIPart) -> bool:
    return isinstance(part, DataPart)


def tool_name_of(part: ToolPart | DynamicToolPart) -> str:
    """The tool name: everything after the first `-` of a static part's type, or `toolName`."""
    return part.tool_name


def data_name_of(part: DataPart) -> str:
    """The data part name without the `data-` prefix (what `dataSchemas` is keyed by)."""
    return part.name


# For sibling modules that validate parts and need to clean error locations.
PART_TAGS = _PART_TAGS
