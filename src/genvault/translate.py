"""Provider events → AI SDK UI message stream chunks (spec §2.3, §2.4).

`ChunkTranslator` keeps the one rule the client enforces: every text or reasoning run is
bracketed by `*-start`/`*-end` with one id, and every tool output follows its tool input. It
emits plain JSON objects with absent optional keys omitted; the engine publishes them to the hub
and feeds them to the message assembler, so what is stored is what the browser shows.
"""

from __future__ import annotations

import base64
from typing import Any

from genvault.providers.base import (
    ProviderEvent,
    StreamData,
    StreamFile,
    StreamFinish,
    StreamReasoningDelta,
    StreamSource,
    StreamTextDelta,
    StreamToolCall,
    StreamToolInputDelta,
    StreamToolInputStart,
    StreamUsage,
)

__all__ = ["ChunkTranslator"]

Chunk = dict[str, Any]


class ChunkTranslator:
    """Stateful: one instance per model step sequence of one generation."""

    def __init__(self, *, id_prefix: str = "") -> None:
        self._prefix = id_prefix
        self._counter = 0
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", id)
        self._open_metadata: dict[str, Any] | None = None
        self._started_tools: set[str] = set()

    def _next_id(self, kind: str) -> str:
        self._counter += 1
        return f"{self._prefix}{kind[0]}{self._counter}"

    def _close_open(self) -> list[Chunk]:
        if self._open is None:
            return []
        kind, run_id = self._open
        self._open = None
        chunk: Chunk = {"type": f"{kind}-end", "id": run_id}
        if self._open_metadata:
            chunk["providerMetadata"] = self._open_metadata
        self._open_metadata = None
        return [chunk]

    def _delta(self, kind: str, text: str, provider_metadata: dict[str, Any] | None = None) -> list[Chunk]:
        out: list[Chunk] = []
        if self._open is None or self._open[0] != kind:
            out += self._close_open()
            run_id = self._next_id(kind)
            self._open = (kind, run_id)
            out.append({"type": f"{kind}-start", "id": run_id})
        run_id = self._open[1]
        if text:
            out.append({"type": f"{kind}-delta", "id": run_id, "delta": text})
        if provider_metadata:
            # Anthropic's thinking signature arrives after the text; it belongs on the part, which
            # the client takes from the `*-end` chunk.
            self._open_metadata = provider_metadata
        return out

    def open_text(self) -> str | None:
        """The id of the open text part, if one is. Until this translator is called again, a text
        delta `text` that is not empty translates to `[{"type": "text-delta", "id": <that id>,
        "delta": text}]`, which a caller may build itself (the engine, one per token)."""
        open_run = self._open
        return open_run[1] if open_run is not None and open_run[0] == "text" else None

    def start_step(self) -> list[Chunk]:
        return [{"type": "start-step"}]

    def finish_step(self) -> list[Chunk]:
        return [*self._close_open(), {"type": "finish-step"}]

    def translate(self, event: ProviderEvent) -> list[Chunk]:
        match event:
            case StreamTextDelta(text=text):
                return self._delta("text", text)
            case StreamReasoningDelta(text=text, provider_metadata=metadata):
                return self._delta("reasoning", text, metadata)
            case StreamToolInputStart(call_id=call_id, name=name):
                self._started_tools.add(call_id)
                return [*self._close_open(), {"type": "tool-input-start", "toolCallId": call_id, "toolName": name}]
            case StreamToolInputDelta(call_id=call_id, delta=delta):
                if call_id not in self._started_tools:
                    return []
                return [{"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta}]
            case StreamToolCall(call_id=call_id, name=name, input=tool_input, provider_executed=executed):
                chunk: Chunk = {"type": "tool-input-available", "toolCallId": call_id, "toolName": name}
                chunk["input"] = tool_input
                if executed:
                    chunk["providerExecuted"] = True
                return [*self._close_open(), chunk]
            case StreamSource(source_id=source_id, url=url, title=title):
                source: Chunk = {"type": "source-url", "sourceId": source_id, "url": url}
                if title is not None:
                    source["title"] = title
                return [*self._close_open(), source]
            case StreamFile(media_type=media_type, data=data):
                url = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
                return [*self._close_open(), {"type": "file", "url": url, "mediaType": media_type}]
            case StreamData(name=name, data=data):
                return [*self._close_open(), {"type": f"data-{name}", "data": data}]
            case StreamUsage() | StreamFinish():
                return []
        raise TypeError(f"unknown provider event {event!r}")  # pragma: no cover - exhaustive above

    def stored_file(self, media_type: str, url: str) -> list[Chunk]:
        """A file already kept in the blob store, by its permanent URL (instead of a data URL)."""
        return [*self._close_open(), {"type": "file", "url": url, "mediaType": media_type}]

    @staticmethod
    def tool_output(call_id: str, output: Any) -> Chunk:
        return {"type": "tool-output-available", "toolCallId": call_id, "output": output}

    @staticmethod
    def tool_error(call_id: str, error_text: str) -> Chunk:
        return {"type": "tool-output-error", "toolCallId": call_id, "errorText": error_text}
