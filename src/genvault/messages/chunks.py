"""The v5 UI message stream chunks (spec §2.3) and what each client version accepts (§2.2).

Invariant: `chunk_to_json` emits only v5 chunk types and fields, absent optional keys omitted and
never `null` (except the `unknown`-typed `input`, `output`, `data`, `messageMetadata`), and
`downgrade_for_client` narrows that further to what a given 5.0.x client's schema accepts. v6/v7
chunk types are rejected at parse time, so they cannot reach a client.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, cast, get_args

from pydantic import Discriminator, Field, StrictStr, Tag, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from genvault.messages._wire import (
    ABSENT,
    NOT_NULL,
    FinishReason,
    OptBool,
    OptProviderMetadata,
    OptStr,
    Unknown,
    WireModel,
)
from genvault.messages.errors import ChunkValidationError

__all__ = [
    "CLIENT_5_0_0",
    "CLIENT_LATEST",
    "AbortChunk",
    "Chunk",
    "DataChunk",
    "ErrorChunk",
    "FileChunk",
    "FinishChunk",
    "FinishReason",
    "FinishStepChunk",
    "MessageMetadataChunk",
    "ReasoningDeltaChunk",
    "ReasoningEndChunk",
    "ReasoningStartChunk",
    "SourceDocumentChunk",
    "SourceUrlChunk",
    "StartChunk",
    "StartStepChunk",
    "TextDeltaChunk",
    "TextEndChunk",
    "TextStartChunk",
    "ToolInputAvailableChunk",
    "ToolInputDeltaChunk",
    "ToolInputErrorChunk",
    "ToolInputStartChunk",
    "ToolOutputAvailableChunk",
    "ToolOutputErrorChunk",
    "chunk_to_json",
    "downgrade_for_client",
    "parse_chunk",
    "plain_delta",
    "plain_finish",
]


class StartChunk(WireModel):
    type: Literal["start"] = "start"
    # Before messageId: the order the official server writes (spec §2.4, verified bytes).
    message_metadata: Unknown = Field(default=ABSENT, alias="messageMetadata")
    message_id: OptStr = Field(default=None, alias="messageId")


class StartStepChunk(WireModel):
    type: Literal["start-step"] = "start-step"


class FinishStepChunk(WireModel):
    type: Literal["finish-step"] = "finish-step"


class TextStartChunk(WireModel):
    type: Literal["text-start"] = "text-start"
    id: StrictStr
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class TextDeltaChunk(WireModel):
    type: Literal["text-delta"] = "text-delta"
    id: StrictStr
    delta: StrictStr
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class TextEndChunk(WireModel):
    type: Literal["text-end"] = "text-end"
    id: StrictStr
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class ReasoningStartChunk(WireModel):
    type: Literal["reasoning-start"] = "reasoning-start"
    id: StrictStr
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class ReasoningDeltaChunk(WireModel):
    type: Literal["reasoning-delta"] = "reasoning-delta"
    id: StrictStr
    delta: StrictStr
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class ReasoningEndChunk(WireModel):
    type: Literal["reasoning-end"] = "reasoning-end"
    id: StrictStr
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class ToolInputStartChunk(WireModel):
    type: Literal["tool-input-start"] = "tool-input-start"
    tool_call_id: StrictStr = Field(alias="toolCallId")
    tool_name: StrictStr = Field(alias="toolName")
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    dynamic: OptBool = None


class ToolInputDeltaChunk(WireModel):
    type: Literal["tool-input-delta"] = "tool-input-delta"
    tool_call_id: StrictStr = Field(alias="toolCallId")
    input_text_delta: StrictStr = Field(alias="inputTextDelta")


class ToolInputAvailableChunk(WireModel):
    type: Literal["tool-input-available"] = "tool-input-available"
    tool_call_id: StrictStr = Field(alias="toolCallId")
    tool_name: StrictStr = Field(alias="toolName")
    # zod types it `unknown`, which also accepts a missing key; the client then has no input.
    input: Unknown = ABSENT
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")
    dynamic: OptBool = None


class ToolInputErrorChunk(WireModel):
    """An invalid tool call (unknown tool or schema failure); clients ≥ 5.0.7 only."""

    type: Literal["tool-input-error"] = "tool-input-error"
    tool_call_id: StrictStr = Field(alias="toolCallId")
    tool_name: StrictStr = Field(alias="toolName")
    input: Unknown = ABSENT
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")
    dynamic: OptBool = None
    error_text: StrictStr = Field(alias="errorText")


class ToolOutputAvailableChunk(WireModel):
    type: Literal["tool-output-available"] = "tool-output-available"
    tool_call_id: StrictStr = Field(alias="toolCallId")
    output: Unknown = ABSENT
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    dynamic: OptBool = None
    preliminary: OptBool = None  # clients ≥ 5.0.11


class ToolOutputErrorChunk(WireModel):
    type: Literal["tool-output-error"] = "tool-output-error"
    tool_call_id: StrictStr = Field(alias="toolCallId")
    error_text: StrictStr = Field(alias="errorText")
    provider_executed: OptBool = Field(default=None, alias="providerExecuted")
    dynamic: OptBool = None


class SourceUrlChunk(WireModel):
    type: Literal["source-url"] = "source-url"
    source_id: StrictStr = Field(alias="sourceId")
    url: StrictStr
    title: OptStr = None
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class SourceDocumentChunk(WireModel):
    type: Literal["source-document"] = "source-document"
    source_id: StrictStr = Field(alias="sourceId")
    media_type: StrictStr = Field(alias="mediaType")
    title: StrictStr
    filename: OptStr = None
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class FileChunk(WireModel):
    type: Literal["file"] = "file"
    url: StrictStr
    media_type: StrictStr = Field(alias="mediaType")
    provider_metadata: OptProviderMetadata = Field(default=None, alias="providerMetadata")


class DataChunk(WireModel):
    type: StrictStr  # `data-{name}`
    id: OptStr = None
    data: Unknown = ABSENT
    transient: OptBool = None

    @field_validator("type")
    @classmethod
    def _data_prefix(cls, value: str) -> str:
        if not value.startswith("data-"):
            raise PydanticCustomError("data_type", "a data chunk's type must start with 'data-'")
        return value


class FinishChunk(WireModel):
    type: Literal["finish"] = "finish"
    finish_reason: Annotated[FinishReason | None, NOT_NULL] = Field(default=None, alias="finishReason")
    message_metadata: Unknown = Field(default=ABSENT, alias="messageMetadata")


class ErrorChunk(WireModel):
    type: Literal["error"] = "error"
    error_text: StrictStr = Field(alias="errorText")


class AbortChunk(WireModel):
    type: Literal["abort"] = "abort"


class MessageMetadataChunk(WireModel):
    type: Literal["message-metadata"] = "message-metadata"
    message_metadata: Unknown = Field(default=ABSENT, alias="messageMetadata")


_FIXED: Final[dict[str, type[WireModel]]] = {
    model.model_fields["type"].default: model
    for model in (
        StartChunk,
        StartStepChunk,
        FinishStepChunk,
        TextStartChunk,
        TextDeltaChunk,
        TextEndChunk,
        ReasoningStartChunk,
        ReasoningDeltaChunk,
        ReasoningEndChunk,
        ToolInputStartChunk,
        ToolInputDeltaChunk,
        ToolInputAvailableChunk,
        ToolInputErrorChunk,
        ToolOutputAvailableChunk,
        ToolOutputErrorChunk,
        SourceUrlChunk,
        SourceDocumentChunk,
        FileChunk,
        FinishChunk,
        ErrorChunk,
        AbortChunk,
        MessageMetadataChunk,
    )
}


def _chunk_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None
    if kind in _FIXED:
        return kind
    return "data" if kind.startswith("data-") else None


Chunk = Annotated[
    Annotated[StartChunk, Tag("start")]
    | Annotated[StartStepChunk, Tag("start-step")]
    | Annotated[FinishStepChunk, Tag("finish-step")]
    | Annotated[TextStartChunk, Tag("text-start")]
    | Annotated[TextDeltaChunk, Tag("text-delta")]
    | Annotated[TextEndChunk, Tag("text-end")]
    | Annotated[ReasoningStartChunk, Tag("reasoning-start")]
    | Annotated[ReasoningDeltaChunk, Tag("reasoning-delta")]
    | Annotated[ReasoningEndChunk, Tag("reasoning-end")]
    | Annotated[ToolInputStartChunk, Tag("tool-input-start")]
    | Annotated[ToolInputDeltaChunk, Tag("tool-input-delta")]
    | Annotated[ToolInputAvailableChunk, Tag("tool-input-available")]
    | Annotated[ToolInputErrorChunk, Tag("tool-input-error")]
    | Annotated[ToolOutputAvailableChunk, Tag("tool-output-available")]
    | Annotated[ToolOutputErrorChunk, Tag("tool-output-error")]
    | Annotated[SourceUrlChunk, Tag("source-url")]
    | Annotated[SourceDocumentChunk, Tag("source-document")]
    | Annotated[FileChunk, Tag("file")]
    | Annotated[DataChunk, Tag("data")]
    | Annotated[FinishChunk, Tag("finish")]
    | Annotated[ErrorChunk, Tag("error")]
    | Annotated[AbortChunk, Tag("abort")]
    | Annotated[MessageMetadataChunk, Tag("message-metadata")],
    Discriminator(
        _chunk_tag,
        custom_error_type="chunk_type",
        custom_error_message="not a v5 UI message stream chunk type",
    ),
]

_CHUNK_ADAPTER: TypeAdapter[Chunk] = TypeAdapter(Chunk)
_CHUNK_MODELS: tuple[type[WireModel], ...] = (*_FIXED.values(), DataChunk)


def parse_chunk(obj: Any, *, strict: bool = False) -> Chunk:
    """Validate one chunk JSON object like the v5 client does; raise `ChunkValidationError`.

    By default unknown keys are stripped (clients ≥ 5.0.217 tolerate them). `strict=True` rejects
    them, as clients 5.0.0–5.0.216 do.
    """
    if isinstance(obj, _CHUNK_MODELS):
        return cast(Chunk, obj)  # already validated: an instance of one of the union's members
    try:
        chunk = _CHUNK_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise ChunkValidationError(_describe(obj, exc)) from None
    if strict:
        extra = sorted(set(obj) - type(chunk).wire_keys())
        if extra:
            raise ChunkValidationError(
                f"{chunk.type} chunk has keys a 5.0.x (< 5.0.217) client rejects: {', '.join(extra)}"
            )
    return chunk


def _describe(obj: Any, exc: ValidationError) -> str:
    kind = obj.get("type") if isinstance(obj, Mapping) else None
    what = f"{kind} chunk" if isinstance(kind, str) else "chunk"
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(segment) for segment in err["loc"][1:]]  # drop the union tag
        field = ".".join(loc)
        if err["type"] == "chunk_type":
            problems.append(f"type {kind!r} is not a v5 UI message stream chunk type")
        elif err["type"] == "missing":
            problems.append(f"{field} is required")
        else:
            message = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
            problems.append(f"{field}: {message}" if field else message)
    return f"invalid {what}: " + "; ".join(problems)


def chunk_to_json(chunk: Chunk) -> dict[str, Any]:
    """The exact wire JSON of a chunk (absent optional keys omitted)."""
    return chunk.to_json()


# --- client compatibility --------------------------------------------------------------------

CLIENT_5_0_0: Final = "5.0.0"
CLIENT_LATEST: Final = "latest"

# The first 5.0.x patch whose chunk schema accepts each feature (spec §2.2).
_TOOL_INPUT_ERROR = 7
_PRELIMINARY = 11
_FINISH_REASON = 92

_VERSION = re.compile(r"^5\.0\.(\d+)$")


@functools.lru_cache(maxsize=64)
def _patch_level(level: str) -> float:
    if level == CLIENT_LATEST:
        return float("inf")
    match = _VERSION.match(level)
    if match is None:
        raise ValueError(f"client level must be 'latest' or a 5.0.x version such as '5.0.0', not {level!r}")
    return int(match.group(1))


_DELTA_TYPES: Final = frozenset({"text-delta", "reasoning-delta"})


def plain_delta(chunk: Any) -> tuple[str, str, str] | None:
    """`(type, id, delta)` when `chunk` is a JSON object holding exactly a text or reasoning
    delta's three keys with string values, else None.

    Such an object is valid as it stands and its wire JSON is those three keys in this order,
    so the hot path (one per token) can skip model validation and `to_json` without changing
    a result; everything else, including any extra key, takes the validating path.
    """
    if type(chunk) is not dict or len(chunk) != 3:
        return None
    kind = chunk.get("type")
    if kind not in _DELTA_TYPES:
        return None
    stream_id = chunk.get("id")
    delta = chunk.get("delta")
    if type(stream_id) is not str or type(delta) is not str:
        return None
    return kind, stream_id, delta


_FINISH_REASONS: Final = frozenset(get_args(FinishReason))
_FINISH_KEYS: Final = frozenset({"type", "finishReason", "messageMetadata"})
# What `_json_copy` returns for a value that is not plain JSON (the validating path decides).
_NOT_PLAIN: Final = object()
# Deeper metadata is left to validation (the engine's is two levels deep).
_PLAIN_DEPTH: Final = 32


def plain_finish(chunk: Any) -> tuple[FinishReason | None, Any] | None:
    """`(finishReason or None, messageMetadata or ABSENT)` when `chunk` is a `finish` chunk's
    JSON object of plain values: a dict with no key but `type`, `finishReason` (one of the v5
    reasons) and `messageMetadata` (dicts with str keys, lists, str, int, float, bool, None:
    exact types, at most 32 deep), else None. Such an object is valid as it stands: what
    `parse_chunk` gives for it, field for field, the metadata a copy as validation's is, so the
    engine's own finish (one a reply) skips model validation; anything else is validated."""
    if type(chunk) is not dict or chunk.get("type") != "finish":
        return None
    for key in chunk:
        if key not in _FINISH_KEYS:
            return None
    given = chunk.get("finishReason", None)
    if given is not None and (type(given) is not str or given not in _FINISH_REASONS):
        return None
    if "finishReason" in chunk and given is None:
        return None  # null: validation says it must be omitted
    reason = cast("FinishReason | None", given)  # a string: the union is not built at run time
    if "messageMetadata" not in chunk:
        return reason, ABSENT
    metadata = _json_copy(chunk["messageMetadata"], _PLAIN_DEPTH)
    return None if metadata is _NOT_PLAIN else (reason, metadata)


def _json_copy(value: Any, depth: int) -> Any:
    """A copy of a JSON value of exact plain types, or `_NOT_PLAIN`."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth == 0:
        return _NOT_PLAIN
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                return _NOT_PLAIN
            leaf = type(item)
            # A plain leaf as the call below would give it back, without the call (most values).
            if not (leaf is str or leaf is int or leaf is float or leaf is bool or item is None):
                item = _json_copy(item, depth - 1)
                if item is _NOT_PLAIN:
                    return _NOT_PLAIN
            copied[key] = item
        return copied
    if kind is list:
        items = [_json_copy(item, depth - 1) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    return _NOT_PLAIN


# Chunks with no field but their type, or only a part id besides it: the engine's translator
# sends several per reply (step and text boundaries).
_BARE_TYPES: Final = frozenset({"start-step", "finish-step"})
_ID_ONLY_TYPES: Final = frozenset({"text-start", "text-end", "reasoning-start", "reasoning-end"})


def boundary_wire(chunk: Any) -> dict[str, Any] | None:
    """The wire JSON of a boundary chunk, written out without the model, when `chunk` is a JSON
    object that is exactly `{"type": "start-step"}` or `{"type": "finish-step"}`, exactly a text
    or reasoning start or end with its string `id`, or exactly a `start` with its string
    `messageId` (the engine's, once a turn); else None. Such an object is valid as it stands, and
    this is its validated chunk's `to_json()`, key order included; anything else, any extra key
    included, takes the validating path. The one place that decides which objects are such
    boundaries (the assembler and the response take them without a model)."""
    if type(chunk) is not dict:
        return None
    kind = chunk.get("type")
    if len(chunk) == 1:
        return {"type": kind} if kind in _BARE_TYPES else None
    if len(chunk) != 2:
        return None
    if kind == "start":
        message_id = chunk.get("messageId")
        return {"type": kind, "messageId": message_id} if type(message_id) is str else None
    stream_id = chunk.get("id")
    return {"type": kind, "id": stream_id} if kind in _ID_ONLY_TYPES and type(stream_id) is str else None


def downgrade_for_client(chunk: Mapping[str, Any] | Chunk, level: str = CLIENT_5_0_0) -> list[dict[str, Any]]:
    """The chunks to send instead of `chunk` so that an `ai@<level>` client accepts them.

    `level` is `"latest"` (every v5 field passes) or a version `"5.0.N"`; the default `"5.0.0"`
    is the strict GA schema every 5.x client accepts. Unknown keys are always dropped. For older
    clients:

    * `finish.finishReason` (5.0.92+) is removed;
    * `tool-output-available.preliminary` (5.0.11+) is removed, and a preliminary output itself
      is *dropped*: without the flag the client would show a provisional result as final. The
      final output follows anyway; if the stream dies first the client shows the call as
      `input-available`, which is the truth;
    * `tool-input-error` (5.0.7+) becomes `tool-input-available` + `tool-output-error`, giving
      the same `output-error` part except that the invalid input lands in `input` rather than
      `rawInput`. Caveat: the client runs `onToolCall` for that `tool-input-available` (a client
      tool sees the invalid input) before the error overwrites the part.
    """
    delta = plain_delta(chunk)
    if delta is not None:  # every client level accepts a plain delta unchanged
        _patch_level(level)  # still rejects a bad level
        return [{"type": delta[0], "id": delta[1], "delta": delta[2]}]
    patch = _patch_level(level)
    wire = boundary_wire(chunk)
    if wire is not None:  # a step, text or start boundary (five a turn): no client level changes it
        return [wire]
    finish = plain_finish(chunk)
    if finish is not None:  # the engine's finish (once a turn): its wire JSON, in `to_json`'s key order
        reason, metadata = finish
        out: dict[str, Any] = {"type": "finish"}
        if reason is not None and patch >= _FINISH_REASON:
            out["finishReason"] = reason
        if metadata is not ABSENT:
            out["messageMetadata"] = metadata
        return [out]
    parsed = parse_chunk(chunk) if isinstance(chunk, Mapping) else chunk
    if isinstance(parsed, FinishChunk) and patch < _FINISH_REASON and parsed.finish_reason is not None:
        parsed = parsed.model_copy(update={"finish_reason": None})
    elif isinstance(parsed, ToolOutputAvailableChunk) and patch < _PRELIMINARY and parsed.preliminary is not None:
        if parsed.preliminary:
            return []
        parsed = parsed.model_copy(update={"preliminary": None})
    elif isinstance(parsed, ToolInputErrorChunk) and patch < _TOOL_INPUT_ERROR:
        call = ToolInputAvailableChunk(
            tool_call_id=parsed.tool_call_id,
            tool_name=parsed.tool_name,
            input=parsed.input,
            provider_executed=parsed.provider_executed,
            provider_metadata=parsed.provider_metadata,
            dynamic=parsed.dynamic,
        )
        error = ToolOutputErrorChunk(
            tool_call_id=parsed.tool_call_id,
            error_text=parsed.error_text,
            provider_executed=parsed.provider_executed,
            dynamic=parsed.dynamic,
        )
        return [call.to_json(), error.to_json()]
    return [parsed.to_json()]
