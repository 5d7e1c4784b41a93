"""Tags and metadata: the caller's own labels on a generation.

`tags` is a list of short strings (at most `MAX_TAGS`, each 1..`MAX_TAG_CHARS` characters, no
control characters; duplicates dropped, order kept); `metadata` a small JSON object (at most
`MAX_METADATA_BYTES` as compact JSON, nested at most `MAX_METADATA_DEPTH` deep). Both are checked
here before anything is written, so bad labels are an `InvalidRequest` (400) that changes nothing.
They live in the `tags` / `metadata` columns of `generations` and of `chats`, so export, erasure
and restore carry them with the record. A chat turn's generation carries its chat's labels,
merged with the turn's own (`merged`), so usage by tag covers chat turns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, exists, func, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest
from genvault.store.schema import generations
from genvault.validation import check_json_depth, find_bad_char, loads_json

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "METADATA_HEADER",
    "TAGS_HEADER",
    "check_metadata",
    "check_tag",
    "check_tags",
    "checked",
    "from_headers",
    "merged",
    "meta_pairs",
    "store",
    "tag_elements",
    "tagged",
]

MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 5
# The `/v1` gateway's bodies are the providers' own wire formats, so labels come as headers:
# tags comma-separated, metadata as a JSON object (UTF-8 JSON text).
TAGS_HEADER = "X-Genvault-Tags"
METADATA_HEADER = "X-Genvault-Metadata"


def check_tag(value: Any) -> str:
    """One tag as stored (surrounding spaces removed), or `InvalidRequest`."""
    if not isinstance(value, str):
        raise InvalidRequest(f"a tag must be a string, got {type(value).__name__}")
    tag = value.strip()
    if not tag or len(tag) > MAX_TAG_CHARS:
        raise InvalidRequest(f"a tag must be 1 to {MAX_TAG_CHARS} characters, got {len(tag)}")
    if find_bad_char(tag) is not None:
        raise InvalidRequest("a tag must not contain control characters")
    return tag


def check_tags(value: Any) -> list[str] | None:
    """The tags as stored (None when not given), or `InvalidRequest`."""
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise InvalidRequest("tags must be a list of strings")
    tags = list(dict.fromkeys(check_tag(item) for item in value))
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"at most {MAX_TAGS} tags, got {len(tags)}")
    return tags


def check_metadata(value: Any) -> dict[str, Any] | None:
    """The metadata as stored (None when not given), or `InvalidRequest`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object")
    check_json_depth(value, "metadata", limit=MAX_METADATA_DEPTH)
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"metadata must be plain JSON: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    texts: list[str] = []
    stack: list[Any] = [value]
    while stack:  # keys and strings must be storable (no NUL, valid text), as everywhere
        item = stack.pop()
        if isinstance(item, dict):
            texts.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            texts.append(item)
    if any("\x00" in text for text in texts):
        raise InvalidRequest("metadata must not contain NUL characters")
    return value


def tagged(tag: str, dialect: str, table: Table = generations) -> ColumnElement[bool]:
    """Rows of `table` (generations or chats) carrying `tag` (for a list's `among=`)."""
    tag = check_tag(tag)
    if dialect == "postgresql":
        return type_coerce(table.c.tags, JSONB).contains([tag])
    elements = func.json_each(table.c.tags).table_valued("value")
    return exists(select(1).select_from(elements).where(elements.c.value == tag))


def checked(tags: Any, metadata: Any) -> dict[str, Any]:
    """The `generations` column values for the labels given (none given: empty)."""
    values: dict[str, Any] = {}
    if tags is not None:
        values["tags"] = check_tags(tags)
    if metadata is not None:
        values["metadata"] = check_metadata(metadata)
    return values


async def store(conn: AsyncConnection, row_id: str, values: dict[str, Any], table: Table = generations) -> None:
    """Write checked labels (`checked`) onto a generation (whatever its status) or a chat."""
    await conn.execute(update(table).where(table.c.id == row_id).values(**values))


def merged(chat: Any, turn: Mapping[str, Any]) -> dict[str, Any]:
    """A chat turn's generation labels: the chat's tags then the turn's (`checked`) new ones, and
    the chat's metadata with the turn's keys over it. Empty when neither has any. Held to the
    same limits (`InvalidRequest` when the two together are over them)."""
    values: dict[str, Any] = {}
    tags = [*(chat.tags or []), *(turn.get("tags") or [])]
    if tags:
        values["tags"] = check_tags(tags)
    metadata = {**(chat.metadata or {}), **(turn.get("metadata") or {})}
    if metadata:
        values["metadata"] = check_metadata(metadata)
    return values


def meta_pairs(pairs: list[str] | None) -> dict[str, Any] | None:
    """`--meta k=v` options as a metadata object: a value that reads as JSON (`7`, `true`,
    `"7"`, `{"a": 1}`) is that JSON, anything else the string itself; a later key wins."""
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"--meta takes key=value, got {pair[:60]!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def tag_elements(dialect: str) -> Any:
    """A generation's tags as rows (column `value`), to join `generations` on `true()`."""
    if dialect == "postgresql":
        return func.jsonb_array_elements_text(type_coerce(generations.c.tags, JSONB)).table_valued("value").lateral()
    return func.json_each(generations.c.tags).table_valued("value")


def from_headers(headers: Mapping[str, str]) -> tuple[list[str] | None, dict[str, Any] | None]:
    """Tags and metadata from `X-Genvault-Tags: a, b` and `X-Genvault-Metadata: {"k": 1}`
    (unchecked: give them to `checked`); a header left out is None."""
    raw_tags = headers.get(TAGS_HEADER)
    tags = raw_tags.split(",") if raw_tags is not None else None
    raw_meta = headers.get(METADATA_HEADER)
    metadata = None
    if raw_meta is not None:
        # Header values arrive as latin-1 text: back to their bytes, read as UTF-8 JSON.
        metadata = loads_json(raw_meta.encode("latin-1", "replace"), METADATA_HEADER, limit=MAX_METADATA_DEPTH)
        if not isinstance(metadata, dict):
            raise InvalidRequest(f"{METADATA_HEADER} must be a JSON object")
    return tags, metadata
