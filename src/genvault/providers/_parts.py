"""Reading AI SDK ModelMessage parts (spec §4.2): file data and tool-result outputs.

Pure helpers shared by the provider converters; no SDK imports, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from genvault.errors import InvalidRequest

__all__ = ["FileData", "compact_json", "read_file_part", "tool_output_text"]


@dataclass(frozen=True, slots=True)
class FileData:
    """A file part's content: exactly one of `url` (http/https) and `base64` is set."""

    media_type: str
    url: str | None = None
    base64: str | None = None
    filename: str | None = None

    @property
    def data_url(self) -> str:
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.base64}"

    def decode(self) -> bytes:
        if self.base64 is None:
            raise InvalidRequest(f"the {self.media_type} file at {self.url} must be sent inline, not as a URL")
        return base64.b64decode(self.base64)


def read_file_part(part: dict[str, Any]) -> FileData:
    """Parse a ModelMessage file part (`{"type": "file", "mediaType", "data", "filename"?}`)."""
    media_type = str(part.get("mediaType") or part.get("mimeType") or "application/octet-stream")
    filename = part.get("filename")
    data = part.get("data")
    if isinstance(data, bytes | bytearray):
        return FileData(media_type, base64=base64.b64encode(data).decode(), filename=filename)
    if not isinstance(data, str) or not data:
        raise InvalidRequest("a file part needs `data`: a URL, a data URL or base64 text")
    if data.startswith(("http://", "https://")):
        return FileData(media_type, url=data, filename=filename)
    if data.startswith("data:"):
        header, sep, payload = data[5:].partition(",")
        if not sep:
            raise InvalidRequest("a data URL in a file part has no comma")
        kinds = header.split(";")
        # The part's mediaType may be a wildcard like `image/*`; the data URL knows better.
        if kinds[0] and (media_type.endswith("/*") or media_type == "application/octet-stream"):
            media_type = kinds[0]
        if "base64" in kinds[1:]:
            return FileData(media_type, base64=payload, filename=filename)
        raw = unquote_to_bytes(payload)
        return FileData(media_type, base64=base64.b64encode(raw).decode(), filename=filename)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("file part data is neither an http(s) URL, a data URL nor base64") from None
    return FileData(media_type, base64=data, filename=filename)


def compact_json(value: Any) -> str:
    """JSON as the AI SDK writes it (`JSON.stringify`): compact, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_output_text(output: Any) -> tuple[str, bool]:
    """A ToolResultOutput (`text|json|error-text|error-json|content`) as text, and whether it is an error.

    `content` outputs become their JSON, as the AI SDK's OpenAI adapter sends them; converters
    that can carry media (Anthropic) handle `content` themselves.
    """
    if not isinstance(output, dict):
        return compact_json(output), False
    kind, value = output.get("type"), output.get("value")
    if kind == "text":
        return str(value), False
    if kind == "error-text":
        return str(value), True
    if kind == "error-json":
        return compact_json(value), True
    return compact_json(value), False
