"""UIMessage part JSON ⇄ one `parts` row.

The law this module keeps: `row_to_part(part_to_row(p)) == p` for every valid v5 part `p`, with
the same keys (an absent optional key stays absent; a JSON `null` in an `unknown`-typed field
stays `null`). Parts arrive here already validated by `genvault.messages`; this module only
moves fields between the JSON and typed columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from genvault._json import dump_compact, load_json
from genvault.errors import InvalidRequest
from genvault.store.schema import MISSING

__all__ = [
    "PAGE_PART_COLUMNS",
    "PART_BOOL",
    "PART_COLUMNS",
    "PART_JSON",
    "PART_PLAIN",
    "decode_part",
    "dump_json",
    "load_json",
    "load_json_many",
    "part_json_sql",
    "part_recipe",
    "part_record",
    "part_to_row",
    "pg_part_vector_sql",
    "pg_parts_insert_sql",
    "pg_parts_narrow",
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
# On SQLite the page read has the database write each part's JSON text (`part_json_sql`): the
# stored JSON columns go in as they are, the other columns quoted, an absent (NULL) column leaves
# its key out, so the client parses a page with one JSON decode instead of fetching ~35 mostly-NULL
# columns per part and building ~130 dicts. On PostgreSQL, where that building costs the server
# more than it saves the client, the page read selects the part columns in `PAGE_PART_COLUMNS`
# order as raw values (JSON columns as their stored text) and builds each part from a per-type
# recipe of (key, row index, kind) (`decode_part`). The append sends each part's non-NULL columns
# (`part_record`); `PAGE_PART_COLUMNS` is also the column order of the SQLite inserts.

PAGE_PART_COLUMNS: tuple[str, ...] = ("type", *(c for c in PART_COLUMNS if c != "type"))
_BOOL_COLUMNS = {"tool_provider_executed", "tool_preliminary", "data_transient"}
_PLAIN, _JSON, _BOOL = 0, 1, 2
_Recipe = tuple[tuple[str, int, int], ...]
_recipes: dict[tuple[str, int], _Recipe] = {}


def part_recipe(part_type: str, start: int) -> _Recipe:
    """How to build a part of `part_type` from a row holding `PAGE_PART_COLUMNS` from index
    `start` on: (key, the column's index in the row, kind: `PART_PLAIN`, `PART_JSON` text or
    `PART_BOOL`), in `row_to_part`'s key order. Cached per type and start."""
    recipe = _recipes.get((part_type, start))
    if recipe is None:
        recipe = tuple(
            (
                key,
                start + PAGE_PART_COLUMNS.index(column),
                _JSON if column in _JSON_COLUMNS else _BOOL if column in _BOOL_COLUMNS else _PLAIN,
            )
            for key, column in _fields(part_type).items()
        )
        if len(_recipes) < 1000:  # tool-<name> types are open-ended; keep the cache bounded
            _recipes[(part_type, start)] = recipe
    return recipe


PART_PLAIN, PART_JSON, PART_BOOL = _PLAIN, _JSON, _BOOL


def decode_part(row: Any, start: int) -> dict[str, Any]:
    """The part JSON from a row holding `PAGE_PART_COLUMNS` from index `start` on, JSON columns as
    text. Equal to `row_to_part` of the same row read through the typed columns."""
    part_type = row[start]
    part: dict[str, Any] = {"type": part_type}
    for key, index, kind in _recipes.get((part_type, start)) or part_recipe(part_type, start):
        value = row[index]
        if value is not None:
            part[key] = value if kind == _PLAIN else load_json(value) if kind == _JSON else bool(value)
    return part


# The page read's part types, most frequent first: (type, or the prefix of an open-ended family;
# its fields; the columns the table's CHECK constraints keep non-NULL for it).
_BRANCHES: tuple[tuple[str, dict[str, str], frozenset[str]], ...] = (
    ("text", _TEXT, frozenset({"text_text"})),
    ("tool-", _TOOL, frozenset({"tool_call_id", "state"})),
    ("reasoning", _REASONING, frozenset({"reasoning_text"})),
    ("step-start", {}, frozenset()),
    ("dynamic-tool", _DYNAMIC_TOOL, frozenset({"tool_call_id", "state", "tool_name"})),
    ("source-url", _SOURCE_URL, frozenset({"source_id", "source_url"})),
    ("source-document", _SOURCE_DOCUMENT, frozenset({"source_id", "source_media_type", "source_title"})),
    ("file", _FILE, frozenset({"file_media_type", "file_url"})),
    ("data-", _DATA, frozenset()),
)


def _sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def part_json_sql(dialect: str) -> str:
    """SQL for a `parts` row's UIMessage part as compact JSON text, equal once parsed to
    `row_to_part` of the row, keys in the same order; `dialect` is "sqlite" or "postgresql".
    NULL for a row of NULLs (what an outer join gives a message without parts). A `CASE` on the
    part type reads only that type's columns: JSON columns as their stored text, the others
    quoted, a NULL column's key left out (no NULL test where a CHECK constraint rules NULL out;
    a tool part's `state` is one of four plain words, by its CHECK constraint, so not quoted)."""

    def quote(column: str) -> str:
        return f"json_quote({column})" if dialect == "sqlite" else f"to_json({column})::text"

    def field(key: str, column: str, required: bool, tool: bool) -> str:
        name = f"parts.{column}"
        label = f',"{key}":'
        if column in _JSON_COLUMNS:  # stored as JSON text already
            return f"{_sql_text(label)} || {name}" if required else f"coalesce({_sql_text(label)} || {name}, '')"
        if column in _BOOL_COLUMNS:
            true, false = _sql_text(label + "true"), _sql_text(label + "false")
            return f"CASE WHEN {name} THEN {true} WHEN NOT {name} THEN {false} ELSE '' END"
        if tool and column == "state":  # CHECK: one of four words that need no escaping
            return f"{_sql_text(label + chr(34))} || {name} || '\"'"
        if required:
            return f"{_sql_text(label)} || {quote(name)}"
        if dialect == "sqlite":  # json_quote(NULL) is 'null', not NULL
            return f"CASE WHEN {name} IS NOT NULL THEN {_sql_text(label)} || {quote(name)} ELSE '' END"
        return f"coalesce({_sql_text(label)} || {quote(name)}, '')"  # to_json(NULL) is NULL

    branches = []
    for part_type, fields, required in _BRANCHES:
        tool = part_type in ("tool-", "dynamic-tool")
        if part_type.endswith("-") and part_type != "-":  # an open-ended family: the type is quoted
            condition = f"substr(parts.type, 1, {len(part_type)}) = {_sql_text(part_type)}"
            head = f"""'{{"type":' || {quote("parts.type")}"""
        else:
            condition = f"parts.type = {_sql_text(part_type)}"
            head = _sql_text(f'{{"type":"{part_type}"')
        pieces = [head, *(field(k, c, c in required, tool) for k, c in fields.items()), "'}'"]
        branches.append(f"WHEN {condition} THEN {' || '.join(pieces)}")
    # Types outside the v5 set are never stored (`_fields` refuses them on write).
    return f"CASE {' '.join(branches)} END"


def load_json_many(texts: list[str]) -> list[Any]:
    """`[load_json(text) for text in texts]`, decoded as one JSON array where that gives as many
    values (one parse instead of one per text: a page has ~50 JSON cells, and each call's own
    overhead is most of a small cell's cost). Any text that is not one JSON value on its own
    makes the joined parse fail or miscount in the common case; then each text is parsed alone,
    with its own value or error. Meant for stored JSON text (`dump_json`'s), always one value."""
    if not texts:
        return []
    try:
        values = load_json("[" + ",".join(texts) + "]")
    except ValueError:
        values = None
    if isinstance(values, list) and len(values) == len(texts):
        return values
    return [load_json(text) for text in texts]


def dump_json(value: Any) -> str | None:
    """A `JSONText` column's stored text (`MISSING` is SQL NULL), as `JSONText` binds it."""
    if value is MISSING:
        return None
    return dump_compact(value)  # `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`'s text


def part_record(part: dict[str, Any]) -> dict[str, Any]:
    """The part's non-NULL columns by name, JSON columns as their stored text: what both appends
    write (one record of the PostgreSQL append's `json_populate_recordset`, one row of the SQLite
    append's insert). Same validation as `part_to_row`. (`_part_columns`' walk written out: its
    list of pairs and a comprehension over them were a third of the record's cost, and records
    are built for every part of every append, turn and finalize.)"""
    part_type = part["type"]
    fields = _fields(part_type)
    record: dict[str, Any] = {"type": part_type}
    json_columns: list[str] = []
    for key, value in part.items():
        if key == "type":
            continue
        column = fields.get(key)
        if column is None:
            raise InvalidRequest(f"part type {part_type!r} has no field {key!r}")
        if column in _JSON_COLUMNS:
            record[column] = value
            json_columns.append(column)
        elif value is not None:
            record[column] = value
    if part_type.startswith("tool-"):
        record["tool_name"] = part_type[5:]
    for column in json_columns:  # after every key is known good, as before: the same first error
        record[column] = dump_json(record[column])
    return record


# -- PostgreSQL's parts inserts ------------------------------------------------------------------


def pg_part_vector_sql(part: str, user: str) -> str:
    """A `parts` row's search vector as `parts_search_vector()` sets it (revision 0009): the
    words of a text part's text and its owner's lexeme, NULL for any other type. `part` names
    the row's values (its `type` and `text_text`), `user` its owner's id."""
    return (
        f"CASE WHEN {part}.type = 'text' THEN to_tsvector('simple', {part}.text_text) || "
        f"array_to_tsvector(ARRAY['#' || md5({user})]) END"
    )


# A turn's parts are mostly text, reasoning and step-start parts, whose records hold at most these
# columns (`part_record`). `json_populate_recordset(NULL::parts, …)` sets up and converts every
# column of the row type for each record, ~32 of them; a batch of these types only is inserted from
# `json_to_recordset` over their columns alone (`pg_parts_narrow`): ~84 k fewer backend
# instructions a chat turn (docs/benchmarks.md "pgparts"). Any other type takes every column.
_NARROW_TYPES = frozenset({"text", "reasoning", "step-start"})
_NARROW_COLUMNS = ("type", "state", "provider_metadata", "text_text", "reasoning_id", "reasoning_text")
assert {"type", *_TEXT.values(), *_REASONING.values()} == set(_NARROW_COLUMNS)


def pg_parts_narrow(parts: Iterable[dict[str, Any]]) -> bool:
    """Whether these parts' records hold only `_NARROW_COLUMNS` (every part a text, reasoning or
    step-start part; a field its type does not have fails `part_record` before any insert)."""
    return all(part["type"] in _NARROW_TYPES for part in parts)


def _pg_column_types(columns: Iterable[str]) -> str:
    """`name type, …` of these `parts` columns as PostgreSQL declares them (a `json_to_recordset`
    column list: each value converted as `json_populate_recordset(NULL::parts, …)` converts it,
    length limits included)."""
    from sqlalchemy.dialects import postgresql

    from genvault.store.schema import parts

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return ", ".join(f"{c} {parts.c[c].type.compile(dialect=dialect)}" for c in columns)


def pg_parts_insert_sql(chat: str, user: str, source: str, records: str, *, narrow: bool = False) -> str:
    """The PostgreSQL inserts' `INSERT INTO parts` (the turn's opening and finalize, both
    appends): one row per record of the JSON array `records` (`part_record`s with their
    `message_id` and `position`) in chat `chat` for user `user`, once per row of `source` (the
    CTE that must have returned a row); `narrow`, for records that hold only `_NARROW_COLUMNS`
    (`pg_parts_narrow`), reads those columns alone. The statement writes each row's search vector
    itself (revision 0034): a row inserted with the vector its text gets does not fire
    `parts_insert_search_vector` (its PL/pgSQL call cost ~25 k backend instructions a chat turn
    more than the same vectors computed here); every other insert (the general path, imports,
    SQL of one's own) still gets its vectors from the trigger."""
    if narrow:
        columns: tuple[str, ...] = _NARROW_COLUMNS
        rows = f"json_to_recordset({records}) AS p({_pg_column_types(('message_id', 'position', *columns))})"
    else:
        columns = PAGE_PART_COLUMNS
        rows = f"json_populate_recordset(NULL::parts, {records}) AS p"
    return (
        f"INSERT INTO parts (chat_id, message_id, position, user_id, {', '.join(columns)}, search_vector)\n"
        f"    SELECT {chat}, p.message_id, p.position, {user}, {', '.join('p.' + c for c in columns)},\n"
        f"           {pg_part_vector_sql('p', user)}\n"
        f"    FROM {source}, {rows}"
    )
