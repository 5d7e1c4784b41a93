"""The AI SDK v5 data model: UIMessages, stream chunks, SSE framing, assembly, validation,
conversion to model messages and v4 migration.

Invariant: this package is pure — no I/O, no clock, no randomness — and imports nothing of
genvault except `genvault.errors`; every other layer (store, engine, server) builds on it. The
JSON forms it produces are exactly the AI SDK's, so one form serves SQL, Redis, HTTP and exports.

Chunk models live in `genvault.messages.chunks`; the names below are the everyday API.
"""

from genvault.messages._wire import ABSENT, Absent, FinishReason, ProviderMetadata
from genvault.messages.assembler import MessageAssembler, assemble, encode_message, merge_metadata
from genvault.messages.chunks import (
    CLIENT_5_0_0,
    CLIENT_LATEST,
    Chunk,
    chunk_to_json,
    downgrade_for_client,
    parse_chunk,
)
from genvault.messages.convert import to_model_messages, tool_result_output
from genvault.messages.errors import (
    ChunkValidationError,
    MessageValidationError,
    StreamAssemblyError,
    V4ConversionError,
    ValidationIssue,
)
from genvault.messages.sse import SSE_DONE, UI_MESSAGE_STREAM_HEADERS, encode_sse, parse_sse
from genvault.messages.ui import (
    DataPart,
    DynamicToolPart,
    FilePart,
    ReasoningPart,
    Role,
    SourceDocumentPart,
    SourceUrlPart,
    StepStartPart,
    TextPart,
    TextState,
    ToolPart,
    ToolState,
    UIMessage,
    UIPart,
    data_name_of,
    is_data_part,
    is_static_tool_part,
    is_tool_part,
    message_to_json,
    parse_part,
    parse_ui_message,
    part_to_json,
    tool_name_of,
)
from genvault.messages.v4 import V4Conversion, V4ReportEntry, convert_v4_messages
from genvault.messages.validate import Schema, ToolSchemas, validate_ui_messages

__all__ = [
    "ABSENT",
    "CLIENT_5_0_0",
    "CLIENT_LATEST",
    "SSE_DONE",
    "UI_MESSAGE_STREAM_HEADERS",
    "Absent",
    "Chunk",
    "ChunkValidationError",
    "DataPart",
    "DynamicToolPart",
    "FilePart",
    "FinishReason",
    "MessageAssembler",
    "MessageValidationError",
    "ProviderMetadata",
    "ReasoningPart",
    "Role",
    "Schema",
    "SourceDocumentPart",
    "SourceUrlPart",
    "StepStartPart",
    "StreamAssemblyError",
    "TextPart",
    "TextState",
    "ToolPart",
    "ToolSchemas",
    "ToolState",
    "UIMessage",
    "UIPart",
    "V4Conversion",
    "V4ConversionError",
    "V4ReportEntry",
    "ValidationIssue",
    "assemble",
    "chunk_to_json",
    "convert_v4_messages",
    "data_name_of",
    "downgrade_for_client",
    "encode_message",
    "encode_sse",
    "is_data_part",
    "is_static_tool_part",
    "is_tool_part",
    "merge_metadata",
    "message_to_json",
    "parse_chunk",
    "parse_part",
    "parse_sse",
    "parse_ui_message",
    "part_to_json",
    "to_model_messages",
    "tool_name_of",
    "tool_result_output",
    "validate_ui_messages",
]
