"""The JSON conventions shared by every message and chunk model (spec §0.2).

Invariant: `WireModel.to_json()` (also what `model_dump()` returns) is exactly the AI SDK JSON:

* optional fields that are absent are omitted, never written as `null`, and `null` is rejected
  when validating JSON for them (zod's `.optional()` rejects `null`); Python constructors
  accept `None` there as a spelling of "absent";
* fields the AI SDK types as `unknown` (`input`, `output`, `rawInput`, `data`, `metadata`,
  `messageMetadata`) distinguish "absent" (the `ABSENT` sentinel) from "present `null`" (`None`),
  so `null` survives a round trip and a missing key stays missing;
* unknown keys are ignored on input (stripped), as `validateUIMessages` does;
* values are immutable models; the JSON values they hold are shared, not copied, so treat them
  as read-only.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetPydanticSchema,
    JsonValue,
    ValidationError,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from genvault.messages.errors import ValidationIssue, format_location

__all__ = [
    "ABSENT",
    "NOT_NULL",
    "Absent",
    "FinishReason",
    "OptBool",
    "OptProviderMetadata",
    "OptStr",
    "ProviderMetadata",
    "Unknown",
    "WireModel",
    "issues_from_pydantic",
]


class Absent(enum.Enum):
    """Type of `ABSENT`: an `unknown`-typed field whose key is missing (as opposed to `null`)."""

    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "ABSENT"

    __str__ = __repr__


ABSENT: Final = Absent.ABSENT

# An AI SDK `unknown` field: any JSON value including null; the Python default is ABSENT.
# Validated as JSON (so tuples or arbitrary objects cannot sneak in) but typed `Any` for callers.
Unknown = Annotated[Any, GetPydanticSchema(lambda _tp, handler: handler(JsonValue))]

# `{ [provider]: { [key]: JSONValue } }` — a record of records (spec §0.2.3).
ProviderMetadata = dict[str, dict[str, JsonValue]]

# The AI SDK v5 finish reasons (`finish.finishReason`, 5.0.92+).
FinishReason = Literal["stop", "length", "content-filter", "tool-calls", "error", "other", "unknown"]


def _reject_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "must be omitted rather than null")
    return value


# Marks an optional field whose `null` is rejected (absence is spelled by omitting the key).
NOT_NULL = BeforeValidator(_reject_null)
OptStr = Annotated[str | None, NOT_NULL]
OptBool = Annotated[bool | None, NOT_NULL]
OptProviderMetadata = Annotated[ProviderMetadata | None, NOT_NULL]


def _clean_json_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    # Pydantic documents the Python defaults (`None`, `ABSENT`) and `anyOf [..., null]`; on the
    # wire those fields are simply optional and never null, so describe them that way.
    for key, prop in schema.get("properties", {}).items():
        if prop.get("default") in (None, "ABSENT"):
            prop.pop("default", None)
        members = prop.get("anyOf")
        if isinstance(members, list) and {"type": "null"} in members and key not in _unknown_keys(cls):
            rest = [m for m in members if m != {"type": "null"}]
            if len(rest) == 1:
                prop.pop("anyOf")
                prop.update(rest[0])


def _unknown_keys(cls: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in cls.model_fields.items() if field.default is ABSENT}


class WireModel(BaseModel):
    """Base of every part and chunk model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        strict=True,
        populate_by_name=True,
        json_schema_extra=_clean_json_schema,
    )

    # (python attribute, wire key, is `unknown`-typed), `type` first; filled per subclass.
    __wire_fields__: ClassVar[tuple[tuple[str, str, bool], ...]] = ()
    # Names and aliases of `unknown`-typed fields, where None means JSON null rather than absent.
    __null_is_value__: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = [(name, field.alias or name, field.default is ABSENT) for name, field in cls.model_fields.items()]
        # `type` leads, like the AI SDK's objects, whatever order inheritance produced.
        fields.sort(key=lambda entry: entry[0] != "type")
        cls.__wire_fields__ = tuple(fields)
        cls.__null_is_value__ = frozenset(k for name, key, unknown in fields if unknown for k in (name, key))

    if not TYPE_CHECKING:
        # Python callers may pass None for "absent" (`TextPart(text=t, state=row.state)`) and
        # ABSENT for an absent `unknown` field; only validation of wire JSON (`model_validate`,
        # `parse_*`) rejects null. Hidden from mypy so the pydantic plugin still synthesizes
        # typed constructors.
        def __init__(self, /, **data: Any) -> None:
            keep = type(self).__null_is_value__
            super().__init__(
                **{
                    key: value
                    for key, value in data.items()
                    if value is not ABSENT and (value is not None or key in keep)
                }
            )

        # Tell pydantic this is not a "custom init": otherwise `model_validate` would route JSON
        # through it and null would be silently accepted (RootModel uses the same marker).
        __init__.__pydantic_base_init__ = True

    @classmethod
    def wire_keys(cls) -> frozenset[str]:
        """Every JSON key this model reads and writes."""
        return frozenset(key for _name, key, _unknown in cls.__wire_fields__)

    @model_serializer(mode="plain")
    def to_json(self) -> dict[str, Any]:
        """The exact AI SDK JSON object: absent optional keys omitted, `unknown` nulls kept."""
        values = self.__dict__
        out: dict[str, Any] = {}
        for name, key, unknown in self.__wire_fields__:
            value = values[name]
            if value is ABSENT if unknown else value is None:
                continue
            out[key] = value
        return out


# Error types whose pydantic wording we replace with an instruction.
_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be a JSON object",
    "list_type": "must be an array",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "invalid-json-value": "must be a JSON value",
}


def issues_from_pydantic(
    error: ValidationError,
    *,
    message_index: int | None,
    tags: frozenset[str] = frozenset(),
) -> list[ValidationIssue]:
    """Turn a pydantic error into issues located by message, part and field.

    The discriminated-union tag (one of `tags`) that pydantic inserts for a part —
    first in the location of a lone part, after `parts, <index>` in a message — is dropped so
    the path matches the JSON the caller sent.
    """
    issues: list[ValidationIssue] = []
    for err in error.errors(include_url=False):
        raw = list(err["loc"])
        if raw and raw[0] in tags:
            del raw[0]
        elif len(raw) > 2 and raw[0] == "parts" and isinstance(raw[1], int) and raw[2] in tags:
            del raw[2]
        loc: list[str | int] = raw
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("field"), str):
            loc.append(ctx["field"])
        part_index: int | None = None
        if len(loc) >= 2 and loc[0] == "parts" and isinstance(loc[1], int):
            part_index = loc[1]
            loc = loc[2:]
        issues.append(
            ValidationIssue(
                message_index=message_index,
                part_index=part_index,
                field=format_location(*loc),
                message=_humanize(err["type"], err["msg"]),
            )
        )
    return issues


def _humanize(error_type: str, message: str) -> str:
    if error_type in _MESSAGES:
        return _MESSAGES[error_type]
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ")
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    return message
