"""Chunks → assistant UIMessage, a port of the v5 client's `processUIMessageStream` (spec §2.5).

Invariant: feeding a chunk sequence gives the message the AI SDK client (≥ 5.0.234) builds from
the same sequence, JSON for JSON, and raises `StreamAssemblyError` exactly where the client
throws. The server persists what the browser shows. `encode_message` is the inverse for the
messages a stream can produce: `assemble(encode_message(m)) == m` (see `encode_message`).

Cost: `feed` is O(size of the chunk): text and tool-input deltas are appended to lists, and
the joined text and the best-effort parse of partial tool input are computed lazily when the
`message` snapshot is taken, then cached. A snapshot is O(number of parts) plus whatever changed.
Snapshots are immutable models sharing unchanged parts with earlier snapshots; JSON values
inside them are never mutated by the assembler (metadata merges copy), so an old snapshot stays
valid after more chunks arrive.

Where the server side differs from `useChat` on purpose:
* an `error` chunk does not stop assembly (like `readUIMessageStream` without
  `terminateOnError`): `error_text` records it and later chunks still apply, so the engine can
  persist the partial output together with the error;
* when either side of a metadata merge is not a JSON object, the newer value replaces the older
  (JS would spread a string or array into an index-keyed object, which no app relies on).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from genvault.messages._builders import PartialCall, PartialInput, TextBuilder, ToolBuilder, merge_metadata
from genvault.messages._wire import ABSENT, FinishReason, ProviderMetadata
from genvault.messages.chunks import (
    AbortChunk,
    Chunk,
    DataChunk,
    ErrorChunk,
    FileChunk,
    FinishChunk,
    FinishStepChunk,
    MessageMetadataChunk,
    ReasoningDeltaChunk,
    ReasoningEndChunk,
    ReasoningStartChunk,
    SourceDocumentChunk,
    SourceUrlChunk,
    StartChunk,
    StartStepChunk,
    TextDeltaChunk,
    TextEndChunk,
    TextStartChunk,
    ToolInputAvailableChunk,
    ToolInputDeltaChunk,
    ToolInputErrorChunk,
    ToolInputStartChunk,
    ToolOutputAvailableChunk,
    ToolOutputErrorChunk,
    boundary_wire,
    parse_chunk,
    plain_delta,
    plain_finish,
)
from genvault.messages.errors import ChunkValidationError, StreamAssemblyError
from genvault.messages.ui import (
    DataPart,
    DynamicToolPart,
    FilePart,
    ReasoningPart,
    SourceDocumentPart,
    SourceUrlPart,
    StepStartPart,
    TextPart,
    ToolPart,
    UIMessage,
    UIPart,
)

__all__ = ["MessageAssembler", "assemble", "encode_message", "merge_metadata"]

_Slot = UIPart | TextBuilder | ToolBuilder


class MessageAssembler:
    """Builds the assistant message of one response from its UI message stream chunks.

    `start` is the message being continued (the chat's last message when it is an assistant
    message, as the client does); otherwise a new message with id `message_id` is built until
    a `start` chunk names one.
    """

    def __init__(self, start: UIMessage | None = None, *, message_id: str = "") -> None:
        if start is not None and start.role != "assistant":
            raise ValueError(f"only an assistant message can be continued, not a {start.role} message")
        self._id = start.id if start is not None else message_id
        self._metadata: Any = start.metadata if start is not None else ABSENT
        self._parts: list[_Slot] = []
        # `message_json`'s JSON of finished (model) parts, by the slot's id, with the slot.
        self._finished_json: dict[int, tuple[_Slot, dict[str, Any]]] = {}
        # (dynamic, toolCallId) → index of the first such part in the current step / last anywhere.
        self._step_tools: dict[tuple[bool, str], int] = {}
        self._last_tools: dict[tuple[bool, str], int] = {}
        self._data: dict[tuple[str, str], int] = {}  # (type, id) → first index
        self._active_text: dict[str, TextBuilder] = {}
        self._active_reasoning: dict[str, TextBuilder] = {}
        self._partial_calls: dict[str, PartialCall] = {}
        self._finish_reason: FinishReason | None = None
        self._error_text: str | None = None
        self._aborted = False
        self._finished = False
        self._fed = 0
        for part in start.parts if start is not None else ():
            self._append(part)

    # --- results ---------------------------------------------------------------------------

    @property
    def message(self) -> UIMessage:
        """An immutable snapshot of the message so far."""
        parts = [slot.build() if isinstance(slot, TextBuilder | ToolBuilder) else slot for slot in self._parts]
        return UIMessage.model_construct(id=self._id, role="assistant", metadata=self._metadata, parts=parts)

    def message_json(self) -> dict[str, Any]:
        """`message_to_json(self.message)`, the same JSON, without building a model for the
        message and its growing text parts: the process's checkpoint writer takes this of every
        running reply each interval."""
        out: dict[str, Any] = {"id": self._id, "role": "assistant"}
        if self._metadata is not ABSENT:
            out["metadata"] = self._metadata
        parts = out["parts"] = []
        finished = self._finished_json
        for slot in self._parts:
            if isinstance(slot, TextBuilder):
                parts.append(slot.build_json())
            elif isinstance(slot, ToolBuilder):
                parts.append(slot.build().to_json())
            else:
                # A finished part is never changed in place (a change replaces the slot), so its
                # JSON is made once: the same object each interval, which the checkpoint's diff
                # (`liveness.written.message_append`) passes by identity.
                kept = finished.get(id(slot))
                if kept is None or kept[0] is not slot:
                    kept = finished[id(slot)] = (slot, slot.to_json())
                parts.append(kept[1])
        return out

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._finish_reason

    @property
    def error_text(self) -> str | None:
        """The `errorText` of the last `error` chunk, if any."""
        return self._error_text

    @property
    def aborted(self) -> bool:
        return self._aborted

    @property
    def finished(self) -> bool:
        """True once a `finish` chunk was fed."""
        return self._finished

    # --- feeding ---------------------------------------------------------------------------

    def feed(self, chunk: Mapping[str, Any] | Chunk) -> None:
        """Apply one chunk (JSON object or parsed model). The state is unchanged if it raises."""
        index = self._fed
        self._fed = index + 1
        # One per token, first: `plain_delta`'s test written out for a text delta whose part is
        # open (a call and a tuple less per token); anything else goes on as below.
        if type(chunk) is dict and len(chunk) == 3 and chunk.get("type") == "text-delta":
            stream_id, text = chunk.get("id"), chunk.get("delta")
            if type(stream_id) is str and type(text) is str:
                open_part = self._active_text.get(stream_id)
                if open_part is not None:
                    open_part.chunks.append(text)
                    open_part._built = open_part._json = None  # `touch()`, without the call
                    return
        delta = plain_delta(chunk)
        if delta is not None:
            # One per token: a plain delta is valid as it stands (see `plain_delta`), so it skips
            # model validation; anything else, from the engine or from outside, is validated.
            kind, stream_id, text = delta
            builder = self._active(kind, stream_id, index)
            builder.chunks.append(text)
            builder.touch()
            return
        if isinstance(chunk, Mapping):
            wire = boundary_wire(chunk)  # a start, step or text boundary: valid as it stands
            if wire is not None:
                self._on_boundary(wire, index)
                return
            finish = plain_finish(chunk)  # the engine's finish: valid as it stands
            if finish is not None:
                self._finish(*finish)
                return
            try:
                chunk = parse_chunk(chunk)
            except ChunkValidationError as exc:
                raise ChunkValidationError(f"chunk {index}: {exc.message}") from None
        _HANDLERS[type(chunk)](self, chunk, index)

    def feed_text(self, stream_id: str, text: str) -> None:
        """`feed({"type": "text-delta", "id": stream_id, "delta": text})`, for the engine's own
        text delta (one per token, `TurnHooks.text_sink`): the dict's checks skipped, which the
        engine's chunk meets by construction."""
        open_part = self._active_text.get(stream_id)
        if open_part is None:  # no open part of that id: as `feed` takes it (an error, or a new part)
            self.feed({"type": "text-delta", "id": stream_id, "delta": text})
            return
        self._fed += 1
        open_part.chunks.append(text)
        open_part._built = open_part._json = None  # `touch()`, without the call

    def _append(self, slot: _Slot) -> None:
        index = len(self._parts)
        self._parts.append(slot)
        if isinstance(slot, StepStartPart):
            self._step_tools = {}
        elif isinstance(slot, ToolBuilder | ToolPart | DynamicToolPart):
            dynamic = slot.dynamic if isinstance(slot, ToolBuilder) else isinstance(slot, DynamicToolPart)
            key = (dynamic, slot.tool_call_id)
            self._step_tools.setdefault(key, index)
            self._last_tools[key] = index
        elif isinstance(slot, DataPart) and slot.id is not None:
            self._data.setdefault((slot.type, slot.id), index)

    def _tool_builder(self, index: int) -> ToolBuilder:
        slot = self._parts[index]
        if not isinstance(slot, ToolBuilder):
            assert isinstance(slot, ToolPart | DynamicToolPart)  # only tool parts are indexed
            slot = ToolBuilder.from_part(slot)
            self._parts[index] = slot
        return slot

    def _on_boundary(self, wire: dict[str, Any], index: int) -> None:
        """A boundary chunk as its wire JSON (`boundary_wire`: no other key), applied as its
        model's handler would apply it, without building the model (five a reply)."""
        kind = wire["type"]
        if kind == "start-step":
            self._append(StepStartPart())
        elif kind == "finish-step":
            self._end_step()
        elif kind == "start":
            self._id = wire["messageId"]
        elif kind.endswith("-start"):
            self._open_text(kind == "reasoning-start", wire["id"], None)
        else:
            self._close_text(kind, wire["id"], index, None)

    def _on_start(self, chunk: StartChunk, index: int) -> None:
        if chunk.message_id is not None:
            self._id = chunk.message_id
        self._merge(chunk.message_metadata)

    def _merge(self, metadata: Any) -> None:
        if metadata is ABSENT or metadata is None:
            return
        current = self._metadata
        self._metadata = metadata if current is ABSENT or current is None else merge_metadata(current, metadata)

    def _on_start_step(self, chunk: StartStepChunk, index: int) -> None:
        self._append(StepStartPart())

    def _on_finish_step(self, chunk: FinishStepChunk, index: int) -> None:
        self._end_step()

    def _end_step(self) -> None:
        # Text/reasoning ids are scoped to a step; the parts stay in the message.
        self._active_text.clear()
        self._active_reasoning.clear()

    def _on_text_start(self, chunk: TextStartChunk | ReasoningStartChunk, index: int) -> None:
        self._open_text(isinstance(chunk, ReasoningStartChunk), chunk.id, chunk.provider_metadata)

    def _open_text(self, reasoning: bool, stream_id: str, provider_metadata: ProviderMetadata | None) -> None:
        builder = TextBuilder(reasoning=reasoning, stream_id=stream_id, provider_metadata=provider_metadata)
        self._append(builder)
        (self._active_reasoning if reasoning else self._active_text)[stream_id] = builder

    def _active(self, chunk_type: str, stream_id: str, index: int) -> TextBuilder:
        reasoning = chunk_type.startswith("reasoning")
        builder = (self._active_reasoning if reasoning else self._active_text).get(stream_id)
        if builder is None:
            kind = "reasoning" if reasoning else "text"
            raise StreamAssemblyError(
                f"no open {kind} part with id {stream_id!r} in this step; send {kind}-start first "
                f"(ids are forgotten at finish-step and after {kind}-end)",
                chunk_index=index,
                chunk_type=chunk_type,
            )
        return builder

    def _on_text_delta(self, chunk: TextDeltaChunk | ReasoningDeltaChunk, index: int) -> None:
        builder = self._active(chunk.type, chunk.id, index)
        builder.chunks.append(chunk.delta)
        if chunk.provider_metadata is not None:
            builder.provider_metadata = chunk.provider_metadata
        builder.touch()

    def _on_text_end(self, chunk: TextEndChunk | ReasoningEndChunk, index: int) -> None:
        self._close_text(chunk.type, chunk.id, index, chunk.provider_metadata)

    def _close_text(
        self, chunk_type: str, stream_id: str, index: int, provider_metadata: ProviderMetadata | None
    ) -> None:
        builder = self._active(chunk_type, stream_id, index)
        builder.state = "done"
        if provider_metadata is not None:
            builder.provider_metadata = provider_metadata
        builder.touch()
        del (self._active_reasoning if chunk_type == "reasoning-end" else self._active_text)[stream_id]

    def _input_update(
        self,
        *,
        dynamic: bool,
        tool_call_id: str,
        tool_name: str,
        provider_metadata: ProviderMetadata | None = None,
        **fields: Any,
    ) -> None:
        # Input chunks update the call's part in the current step, or start a new part.
        found = self._step_tools.get((dynamic, tool_call_id))
        if found is None:
            builder = ToolBuilder(dynamic=dynamic, tool_name=tool_name, tool_call_id=tool_call_id)
            builder.update(**fields)
            builder.call_provider_metadata = provider_metadata
            self._append(builder)
            return
        builder = self._tool_builder(found)
        builder.update(**fields)
        if dynamic:
            builder.tool_name = tool_name
        if provider_metadata is not None and builder.state == "input-available":
            builder.call_provider_metadata = provider_metadata

    def _on_tool_input_start(self, chunk: ToolInputStartChunk, index: int) -> None:
        dynamic = chunk.dynamic is True
        self._partial_calls[chunk.tool_call_id] = PartialCall(chunk.tool_name, dynamic)
        self._input_update(
            dynamic=dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=chunk.tool_name,
            state="input-streaming",
            provider_executed=chunk.provider_executed,
        )

    def _on_tool_input_delta(self, chunk: ToolInputDeltaChunk, index: int) -> None:
        call = self._partial_calls.get(chunk.tool_call_id)
        if call is None:
            raise StreamAssemblyError(
                f"no tool-input-start for tool call {chunk.tool_call_id!r}; send tool-input-start before its deltas",
                chunk_index=index,
                chunk_type=chunk.type,
            )
        call.chunks.append(chunk.input_text_delta)
        self._input_update(
            dynamic=call.dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=call.tool_name,
            state="input-streaming",
            input=PartialInput(call),
        )

    def _on_tool_input_available(self, chunk: ToolInputAvailableChunk, index: int) -> None:
        self._input_update(
            dynamic=chunk.dynamic is True,
            tool_call_id=chunk.tool_call_id,
            tool_name=chunk.tool_name,
            provider_metadata=chunk.provider_metadata,
            state="input-available",
            input=chunk.input,
            provider_executed=chunk.provider_executed,
        )

    def _on_tool_input_error(self, chunk: ToolInputErrorChunk, index: int) -> None:
        dynamic = chunk.dynamic is True
        # Static parts keep the invalid input apart in rawInput; dynamic parts have no rawInput.
        values = {"input": chunk.input} if dynamic else {"raw_input": chunk.input}
        self._input_update(
            dynamic=dynamic,
            tool_call_id=chunk.tool_call_id,
            tool_name=chunk.tool_name,
            provider_metadata=chunk.provider_metadata,
            state="output-error",
            error_text=chunk.error_text,
            provider_executed=chunk.provider_executed,
            **values,
        )

    def _output_target(self, chunk: ToolOutputAvailableChunk | ToolOutputErrorChunk, index: int) -> ToolBuilder:
        key = (chunk.dynamic is True, chunk.tool_call_id)
        found = self._step_tools.get(key)
        if found is None:
            found = self._last_tools.get(key)
        if found is None:
            kind = "dynamic-tool" if key[0] else "static tool"
            raise StreamAssemblyError(
                # The client's message, kept so logs match, plus what to do about it.
                f"tool-output-error must be preceded by a tool-input-available: no {kind} part for tool call "
                f"{chunk.tool_call_id!r}; send tool-input-available (with the same `dynamic` flag) first",
                chunk_index=index,
                chunk_type=chunk.type,
            )
        return self._tool_builder(found)

    def _on_tool_output_available(self, chunk: ToolOutputAvailableChunk, index: int) -> None:
        builder = self._output_target(chunk, index)
        builder.update(
            state="output-available",
            input=builder.input,
            output=chunk.output,
            preliminary=chunk.preliminary,
            provider_executed=chunk.provider_executed,
        )

    def _on_tool_output_error(self, chunk: ToolOutputErrorChunk, index: int) -> None:
        builder = self._output_target(chunk, index)
        builder.update(
            state="output-error",
            input=builder.input,
            raw_input=builder.raw_input,
            error_text=chunk.error_text,
            provider_executed=chunk.provider_executed,
        )

    def _on_source_url(self, chunk: SourceUrlChunk, index: int) -> None:
        self._append(
            SourceUrlPart.model_construct(
                type="source-url",
                source_id=chunk.source_id,
                url=chunk.url,
                title=chunk.title,
                provider_metadata=chunk.provider_metadata,
            )
        )

    def _on_source_document(self, chunk: SourceDocumentChunk, index: int) -> None:
        self._append(
            SourceDocumentPart.model_construct(
                type="source-document",
                source_id=chunk.source_id,
                media_type=chunk.media_type,
                title=chunk.title,
                filename=chunk.filename,
                provider_metadata=chunk.provider_metadata,
            )
        )

    def _on_file(self, chunk: FileChunk, index: int) -> None:
        # The client copies neither a filename (there is none) nor the chunk's providerMetadata.
        self._append(
            FilePart.model_construct(
                type="file", media_type=chunk.media_type, url=chunk.url, filename=None, provider_metadata=None
            )
        )

    def _on_data(self, chunk: DataChunk, index: int) -> None:
        if chunk.transient:
            return  # delivered to the client's onData only; never part of the message
        if chunk.id is not None:
            found = self._data.get((chunk.type, chunk.id))
            if found is not None:
                existing = self._parts[found]
                assert isinstance(existing, DataPart)
                self._parts[found] = existing.model_copy(update={"data": chunk.data})  # replaced, not merged
                return
        self._append(DataPart.model_construct(type=chunk.type, id=chunk.id, data=chunk.data, transient=chunk.transient))

    def _on_finish(self, chunk: FinishChunk, index: int) -> None:
        self._finish(chunk.finish_reason, chunk.message_metadata)

    def _finish(self, reason: FinishReason | None, metadata: Any) -> None:
        self._finished = True
        if reason is not None:
            self._finish_reason = reason
        self._merge(metadata)

    def _on_message_metadata(self, chunk: MessageMetadataChunk, index: int) -> None:
        self._merge(chunk.message_metadata)

    def _on_error(self, chunk: ErrorChunk, index: int) -> None:
        self._error_text = chunk.error_text

    def _on_abort(self, chunk: AbortChunk, index: int) -> None:
        self._aborted = True


_HANDLERS: Final[dict[type, Callable[[MessageAssembler, Any, int], None]]] = {
    StartChunk: MessageAssembler._on_start,
    StartStepChunk: MessageAssembler._on_start_step,
    FinishStepChunk: MessageAssembler._on_finish_step,
    TextStartChunk: MessageAssembler._on_text_start,
    TextDeltaChunk: MessageAssembler._on_text_delta,
    TextEndChunk: MessageAssembler._on_text_end,
    ReasoningStartChunk: MessageAssembler._on_text_start,
    ReasoningDeltaChunk: MessageAssembler._on_text_delta,
    ReasoningEndChunk: MessageAssembler._on_text_end,
    ToolInputStartChunk: MessageAssembler._on_tool_input_start,
    ToolInputDeltaChunk: MessageAssembler._on_tool_input_delta,
    ToolInputAvailableChunk: MessageAssembler._on_tool_input_available,
    ToolInputErrorChunk: MessageAssembler._on_tool_input_error,
    ToolOutputAvailableChunk: MessageAssembler._on_tool_output_available,
    ToolOutputErrorChunk: MessageAssembler._on_tool_output_error,
    SourceUrlChunk: MessageAssembler._on_source_url,
    SourceDocumentChunk: MessageAssembler._on_source_document,
    FileChunk: MessageAssembler._on_file,
    DataChunk: MessageAssembler._on_data,
    FinishChunk: MessageAssembler._on_finish,
    MessageMetadataChunk: MessageAssembler._on_message_metadata,
    ErrorChunk: MessageAssembler._on_error,
    AbortChunk: MessageAssembler._on_abort,
}


def assemble(chunks: Iterable[Mapping[str, Any] | Chunk], start: UIMessage | None = None) -> UIMessage:
    """The message a v5 client builds from `chunks` (continuing `start` if given)."""
    assembler = MessageAssembler(start)
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.message


def encode_message(message: UIMessage, *, finish_reason: FinishReason | None = None) -> list[dict[str, Any]]:
    """The chunk sequence our server would stream for `message` (a v5 "latest" sequence).

    `assemble(encode_message(m)) == m` holds for every assistant message a stream can produce
    (the assembler's image). Other messages come back normalized, because no chunk carries:
    * `metadata: null` (null metadata is ignored by the client) — comes back absent;
    * a text or reasoning part without `state` — comes back `"done"`;
    * a reasoning part without `id` (pre-5.0.234 clients) — comes back with a generated id;
    * a file part's `filename` or `providerMetadata` (the client copies neither from the chunk);
    * a dynamic tool part's `title`; `rawInput` outside a static output-error; `preliminary`
      outside output-available; a static output-error with both `input` and `rawInput`;
    * a second tool part with the same toolCallId (and kind) in one step, or a second data part
      with the same type and id: the client updates the first instead of adding one;
    * a data part with `transient: true` (dropped), and streaming tool input whose JSON holds a
      `__proto__` key (unparsable for the client).
    """
    if message.role != "assistant":
        raise ValueError(f"only assistant messages are streamed, not {message.role} messages")
    start: dict[str, Any] = {"type": "start"}
    if message.metadata is not ABSENT and message.metadata is not None:
        start["messageMetadata"] = message.metadata
    start["messageId"] = message.id
    chunks = [start]
    in_step = False
    for index, part in enumerate(message.parts):
        if isinstance(part, StepStartPart):
            if in_step:
                chunks.append({"type": "finish-step"})
            chunks.append({"type": "start-step"})
            in_step = True
        elif isinstance(part, TextPart | ReasoningPart):
            chunks += _encode_text(part, index)
        elif isinstance(part, ToolPart | DynamicToolPart):
            chunks += _encode_tool(part)
        elif isinstance(part, FilePart):
            chunks.append(
                FileChunk(url=part.url, media_type=part.media_type, provider_metadata=part.provider_metadata).to_json()
            )
        elif isinstance(part, SourceUrlPart):
            chunks.append(
                SourceUrlChunk(
                    source_id=part.source_id, url=part.url, title=part.title, provider_metadata=part.provider_metadata
                ).to_json()
            )
        elif isinstance(part, SourceDocumentPart):
            chunks.append(
                SourceDocumentChunk(
                    source_id=part.source_id,
                    media_type=part.media_type,
                    title=part.title,
                    filename=part.filename,
                    provider_metadata=part.provider_metadata,
                ).to_json()
            )
        else:
            chunks.append(DataChunk(type=part.type, id=part.id, data=part.data, transient=part.transient).to_json())
    if in_step:
        chunks.append({"type": "finish-step"})
    chunks.append(FinishChunk(finish_reason=finish_reason).to_json())
    return chunks


def _encode_text(part: TextPart | ReasoningPart, index: int) -> list[dict[str, Any]]:
    kind = "reasoning" if isinstance(part, ReasoningPart) else "text"
    # Text ids only need to be unique among open parts of a step; the index makes them unique.
    stream_id = part.id if isinstance(part, ReasoningPart) and part.id is not None else f"{kind[0]}{index}"
    start: dict[str, Any] = {"type": f"{kind}-start", "id": stream_id}
    if part.provider_metadata is not None:
        start["providerMetadata"] = part.provider_metadata
    chunks = [start]
    if part.text:
        chunks.append({"type": f"{kind}-delta", "id": stream_id, "delta": part.text})
    if part.state != "streaming":
        chunks.append({"type": f"{kind}-end", "id": stream_id})
    return chunks


def _encode_tool(part: ToolPart | DynamicToolPart) -> list[dict[str, Any]]:
    dynamic = True if isinstance(part, DynamicToolPart) else None
    call_id, name, executed = part.tool_call_id, part.tool_name, part.provider_executed
    announce = ToolInputAvailableChunk(
        tool_call_id=call_id,
        tool_name=name,
        input=part.input,
        provider_executed=executed,
        provider_metadata=part.call_provider_metadata,
        dynamic=dynamic,
    )
    if part.state == "input-streaming":
        chunks = []
        if part.call_provider_metadata is not None:
            # Only an input-available chunk can attach call metadata; the start below then
            # reverts the part to input-streaming and keeps it, as the client does.
            chunks.append(announce.model_copy(update={"input": ABSENT}).to_json())
        start = ToolInputStartChunk(tool_call_id=call_id, tool_name=name, provider_executed=executed, dynamic=dynamic)
        chunks.append(start.to_json())
        if part.input is not ABSENT:
            text = json.dumps(part.input, separators=(",", ":"), ensure_ascii=False)
            chunks.append(ToolInputDeltaChunk(tool_call_id=call_id, input_text_delta=text).to_json())
        return chunks
    error_text = part.error_text or ""
    if part.state == "output-error" and isinstance(part, ToolPart) and part.raw_input is not ABSENT:
        invalid = ToolInputErrorChunk(
            tool_call_id=call_id,
            tool_name=name,
            input=part.raw_input,
            provider_executed=executed,
            provider_metadata=part.call_provider_metadata,
            error_text=error_text,
        )
        return [invalid.to_json()]
    chunks = [announce.to_json()]
    if part.state == "output-available":
        output = ToolOutputAvailableChunk(
            tool_call_id=call_id, output=part.output, preliminary=part.preliminary, dynamic=dynamic
        )
        chunks.append(output.to_json())
    elif part.state == "output-error":
        chunks.append(ToolOutputErrorChunk(tool_call_id=call_id, error_text=error_text, dynamic=dynamic).to_json())
    return chunks
