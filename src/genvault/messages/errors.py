"""The errors the message package raises, all caller mistakes (`genvault.errors.InvalidRequest`).

    InvalidRequest
    ├── MessageValidationError  UIMessages that do not match the v5 shape or the app's schemas
    ├── ChunkValidationError    a UI message stream chunk that a v5 client would reject
    ├── StreamAssemblyError     a chunk sequence the AI SDK client would fail on (e.g. a delta
    │                           for a text part that was never started)
    └── V4ConversionError       AI SDK v4 messages too malformed to migrate

Invariant: every error names *where* the problem is (message index, part index, field path or
chunk position) and says what to change, because these messages end up in HTTP 400 bodies that
a front-end developer reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from genvault.errors import InvalidRequest

__all__ = [
    "ChunkValidationError",
    "MessageValidationError",
    "StreamAssemblyError",
    "V4ConversionError",
    "ValidationIssue",
    "format_location",
]


def format_location(*segments: str | int) -> str:
    """`("messages", 2, "parts", 1, "input", "city")` → `messages[2].parts[1].input.city`.

    Keys that are not plain identifiers are quoted (`metadata["a b"]`) so the path stays
    unambiguous for JSON keys with dots or spaces.
    """
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif segment.isidentifier():
            out += f".{segment}" if out else segment
        else:
            out += f"[{_quote(segment)}]"
    return out


def _quote(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem in a list of UIMessages.

    `field` is the path inside the part (or inside the message when `part_index` is None), e.g.
    `input.city`; `location` is the full path from the request body, e.g.
    `messages[2].parts[1].input.city`.
    """

    message_index: int | None
    part_index: int | None
    field: str
    message: str

    @property
    def location(self) -> str:
        segments: list[str | int] = []
        if self.message_index is not None:
            segments += ["messages", self.message_index]
        if self.part_index is not None:
            segments += ["parts", self.part_index]
        location = format_location(*segments)
        if self.field:
            if not location:
                return self.field
            return location + (self.field if self.field.startswith("[") else "." + self.field)
        return location or "messages"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class MessageValidationError(InvalidRequest):
    """UIMessages failed validation; `issues` lists every problem found, in message order."""

    code = "invalid_messages"

    def __init__(self, issues: Iterable[ValidationIssue]) -> None:
        self.issues: list[ValidationIssue] = list(issues)
        super().__init__(_summarize(self.issues))


def _summarize(issues: Sequence[ValidationIssue]) -> str:
    if not issues:
        return "invalid messages"
    if len(issues) == 1:
        return str(issues[0])
    lines = [f"{len(issues)} problems with the messages:"]
    lines += [f"  - {issue}" for issue in issues]
    return "\n".join(lines)


class ChunkValidationError(InvalidRequest):
    """A UI message stream chunk does not match the v5 chunk schema (spec §2.2, §2.3)."""

    code = "invalid_chunk"


class StreamAssemblyError(InvalidRequest):
    """A chunk cannot be applied where the AI SDK client would throw (spec §2.5, §11).

    `chunk_index` is the 0-based position of the offending chunk in what the assembler was fed.
    """

    code = "invalid_chunk_sequence"

    def __init__(self, message: str, *, chunk_index: int, chunk_type: str) -> None:
        super().__init__(f"chunk {chunk_index} ({chunk_type}): {message}")
        self.chunk_index = chunk_index
        self.chunk_type = chunk_type


class V4ConversionError(InvalidRequest):
    """AI SDK v4 messages are malformed; `location` names the message and field, e.g. `messages[3].role`.

    `problems` holds every (location, problem) found, one per malformed message, so one import
    attempt reports them all; `location` and `problem` are the first."""

    code = "invalid_v4_messages"

    def __init__(self, location: str, problem: str, *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.problems: list[tuple[str, str]] = [(location, problem), *more]
        if more:
            lines = [f"{len(self.problems)} problems with the v4 messages:"]
            lines += [f"  - {where}: {what}" for where, what in self.problems]
            super().__init__("\n".join(lines))
        else:
            super().__init__(f"{location}: {problem}")
        self.location = location
        self.problem = problem

    @classmethod
    def of(cls, problems: Sequence[V4ConversionError]) -> V4ConversionError:
        """One error carrying the problems of several."""
        found = [pair for error in problems for pair in error.problems]
        return cls(*found[0], more=found[1:])
