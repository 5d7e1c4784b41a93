"""Tools registered in Python and offered to the model in chat turns.

A tool with `execute` runs on the server: the engine calls it when the model asks, streams its
output as `tool-output-available` (or `tool-output-error`), and calls the model again. A tool
without `execute` is a client-side tool: the call is streamed as `tool-input-available`, the turn
ends with finish reason `tool-calls`, and the client's next request carries the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from genvault.providers.base import StreamToolCall, ToolSpec

__all__ = ["Tool", "ToolEvent", "ToolExecutor"]

ToolExecutor = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    output_schema: dict[str, Any] | None = None
    execute: ToolExecutor | None = None

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, input_schema=self.input_schema)

    @property
    def runs_on_server(self) -> bool:
        return self.execute is not None


@dataclass(frozen=True, slots=True)
class ToolEvent:
    """A tool call a generation met, for the engine's tool listeners. A call run on the server
    has its start, end and output chunk (`tool-output-available` or `tool-output-error`); a
    client-side tool's call has none of them (the client runs it, outside genvault)."""

    generation_id: str
    call: StreamToolCall
    began: datetime | None = None
    ended: datetime | None = None
    output: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.output is not None and self.output.get("type") == "tool-output-error"
