"""The public surface of genvault.messages is pinned, like httpx's tests/test_exported_members.py."""

from __future__ import annotations

import genvault.messages as messages


def test_every_exported_name_exists_and_nothing_is_listed_twice() -> None:
    assert len(set(messages.__all__)) == len(messages.__all__)
    for name in messages.__all__:
        assert hasattr(messages, name), name


def test_the_exported_names_are_exactly_the_curated_api() -> None:
    assert set(messages.__all__) == {
        "ABSENT",
        "Absent",
        "CLIENT_5_0_0",
        "CLIENT_LATEST",
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
        "SSE_DONE",
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
        "UI_MESSAGE_STREAM_HEADERS",
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
    }


def test_the_package_imports_nothing_of_genvault_but_errors() -> None:
    import ast
    from pathlib import Path

    package = Path(messages.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genvault"):
                assert node.module == "genvault.errors" or node.module.startswith("genvault.messages"), (
                    f"{module.name} imports {node.module}"
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("genvault") or alias.name.startswith("genvault.messages")
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    top = name.split(".")[0]
                    assert top in _ALLOWED_TOP_LEVEL, f"{module.name} imports {name}"


_ALLOWED_TOP_LEVEL = {
    "__future__",
    "ast",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "genvault",
    "json",
    "jsonschema",
    "pydantic",
    "pydantic_core",
    "re",
    "typing",
}
