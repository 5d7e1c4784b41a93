"""UIMessage part JSON ⇄ one `parts` row.

The law this module keeps: `row_to_part(part_to_row(p)) == p` for every valid v5 part `p`, with
the same keys (an absent optional key stays absent; a JSON `null` in an `unknown`-typed field
stays `null`). Parts arrive here already validated by `genvault.messages`; this module only
moves fields between the JSON and typed columns.
"""

from __future__ import annotations

import json
from typing import Any

from genvault.errors import InvalidRequest
from genvault.store.schema import MISSING

__all__ = [
    "PAGE_PART_COLUMNS",
    "PART_COLUMNS",
    "decode_part",
    "dump_json",
    "part_record",
    "part_to_row",
    "row_to_part",
]

# JSON key → column, per part family. Keys not listed are not part of the v5 schema.
_TEXT = {"text": "text_text", "state": "state", "providerMetadata": "provider_metadata"}
_REASONING = {"id": "reasoning_id", "text": "reasoning_text", "state": "state", "providerMetadata": "provider_metadata"}
_TOOL = {
    "toolCallId": "tool_call_id",
    "state": "state",
    "input": "tool_input",
    "output": "tool_output",
    "rawInput": "tool_raw_input",
    "errorText": "tool_error_text",
    "providerExecuted": "tool_provider_executed",
    "preliminary": "tool_preliminary",
    "callProviderMetadata": "tool_call_provider_metadata",
}
_DYNAMIC_TOOL = {**_TOOL, "toolName": "tool_name", "title": "tool_title"}
_SOURCE_URL = {
    "sourceId": "source_id",
    "url": "source_url",
    "title": "source_title",
    "providerMetadata": "provider_metadata",
}
_SOURCE_DOCUMENT = {
    "sourceId": "source_id",
    "mediaType": "source_media_type",
    "title": "source_title",
    "filename": "source_filename",
    "providerMetadata": "provider_metadata",
}
_FILE = {
    "mediaType": "file_media_type",
    "filename": "file_filename",
    "url": "file_url",
    "providerMetadata": "provider_metadata",
}
_DATA = {"id": "data_id", "data": "data_data", "transient": "data_transient"}

# Columns written as JSON text: their values may be any JSON, `null` included.
_JSON_COLUMNS = {
    "provider_metadata",
    "tool_input",
    "tool_output",
    "tool_raw_input",
    "tool_call_provider_metadata",
    "data_data",
}

PART_COLUMNS = sorted(
    {c for m in (_TEXT, _REASONING, _DYNAMIC_TOOL, _SOURCE_URL, _SOURCE_DOCUMENT, _FILE, _DATA) for c in m.values()}
    | {"tool_name"}
)


def _fields(part_type: str) -> dict[str, str]:
    if part_type == "text":
        return _TEXT
    if part_type == "reasoning":
        return _REASONING
    if part_type == "dynamic-tool":
        return _DYNAMIC_TOOL
    if part_type.startswith("tool-"):
        return _TOOL
    if part_type == "source-url":
        return _SOURCE_URL
    if part_type == "source-document":
        return _SOURCE_DOCUMENT
    if part_type == "file":
        return _FILE
    if part_type.startswith("data-"):
        return _DATA
    if part_type == "step-start":
        return {}
    raise InvalidRequest(f"unknown part type {part_type!r}")


def _part_columns(part: dict[str, Any]) -> list[tuple[str, Any]]:
    """(column, value) for each field the part has, `type` and a tool part's `tool_name`
    included; a field its type does not have is an `InvalidRequest`."""
    part_type = part["type"]
    fields = _fields(part_type)
    columns: list[tuple[str, Any]] = [("type", part_type)]
    for key, value in part.items():
        if key == "type":
            continue
        column = fields.get(key)
        if column is None:
            raise InvalidRequest(f"part type {part_type!r} has no field {key!r}")
        columns.append((column, value))
    if part_type.startswith("tool-"):
        columns.append(("tool_name", part_type[len("tool-") :]))
    return columns


def part_to_row(part: dict[str, Any]) -> dict[str, Any]:
    """Column values for one part (without the key columns)."""
    row: dict[str, Any] = {column: (MISSING if column in _JSON_COLUMNS else None) for column in PART_COLUMNS}
    row.update(_part_columns(part))
    return row


def row_to_part(row: Any) -> dict[str, Any]:
    """The part JSON back from a row (a mapping with the part columns)."""
    part_type = row["type"]
    part: dict[str, Any] = {"type": part_type}
    for key, column in _fields(part_type).items():
        value = row[column]
        if column in _JSON_COLUMNS:
            if value is not MISSING:
                part[key] = value
        elif value is not None:
            part[key] = value
    return part


# -- the fast paths (page reads, PostgreSQL appends) ---------------------------------------------
#
# The page read selects the part columns in `PAGE_PART_COLUMNS` order as raw values (JSON columns
# as their stored text, so no per-cell type processor runs) and builds each part from a per-type
# recipe of (key, row index, kind): one tuple index per field the part type has, instead of a
# mapping lookup per column. The append sends each part's non-NULL columns (`part_record`).

PAGE_PART_COLUMNS: tuple[str, ...] = ("type", *(c for c in PART_COLUMNS if c != "type"))
_BOOL_COLUMNS = {"tool_provider_executed", "tool_preliminary", "data_transient"}
_PLAIN, _JSON, _BOOL = 0, 1, 2
_Recipe = tuple[tuple[str, int, int], ...]
_recipes: dict[str, _Recipe] = {}


def _recipe(part_type: str) -> _Recipe:
    recipe = _recipes.get(part_type)
    if recipe is None:
        recipe = tuple(
            (
                key,
                PAGE_PART_COLUMNS.index(column),
                _JSON if column in _JSON_COLUMNS else _BOOL if column in _BOOL_COLUMNS else _PLAIN,
            )
            for key, column in _fields(part_type).items()
        )
        if len(_recipes) < 1000:  # tool-<name> types are open-ended; keep the cache bounded
            _recipes[part_type] = recipe
    return recipe


def decode_part(row: Any, start: int) -> dict[str, Any]:
    """The part JSON from a row holding `PAGE_PART_COLUMNS` from index `start` on, JSON columns as
    text. Equal to `row_to_part` of the same row read through the typed columns."""
    part_type = row[start]
    part: dict[str, Any] = {"type": part_type}
    for key, index, kind in _recipes.get(part_type) or _recipe(part_type):
        value = row[start + index]
        if value is not None:
            part[key] = value if kind == _PLAIN else load_json(value) if kind == _JSON else bool(value)
    return part


_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, untyped


def load_json(text: str) -> Any:
    """`json.loads` of a JSON column's stored text, without its per-call checks (a page read makes
    dozens of these calls): the text genvault stores is compact, so the value ends where the
    text does. Anything else (whitespace around it, invalid JSON) goes through `json.loads`,
    which gives the same value or its usual error."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def dump_json(value: Any) -> str | None:
    """A `JSONText` column's stored text (`MISSING` is SQL NULL), as `JSONText` binds it."""
    if value is MISSING:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def part_record(part: dict[str, Any]) -> dict[str, Any]:
    """The part's non-NULL columns by name, JSON columns as their stored text: what both appends
    write (one record of the PostgreSQL append's `json_populate_recordset`, one row of the SQLite
    append's insert). Same validation as `part_to_row`."""
    return {
        column: dump_json(value) if column in _JSON_COLUMNS else value
        for column, value in _part_columns(part)
        if value is not None or column in _JSON_COLUMNS
    }
