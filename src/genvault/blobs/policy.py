"""What a file must be to be stored: a known media type that settings allow, a size within the
limit, a plain file name. Checked before any byte is written, so a refused file leaves nothing."""

from __future__ import annotations

import fnmatch
import re

from genvault.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from genvault.settings import Settings

__all__ = ["check_file", "check_filename", "check_media_type", "media_type_allowed"]

_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,99}"
MEDIA_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}$")


def media_type_allowed(media_type: str, allowed: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(media_type, pattern.lower()) for pattern in allowed)


def check_media_type(media_type: str, settings: Settings) -> str:
    """The media type without parameters, lower-cased; 415 when settings do not allow it."""
    if not isinstance(media_type, str):
        raise InvalidRequest("a file needs a media type such as image/png")
    essence = media_type.split(";", 1)[0].strip().lower()
    if not MEDIA_TYPE.match(essence):
        raise InvalidRequest(f"{media_type[:100]!r} is not a media type: write it as type/subtype, e.g. image/png")
    if not media_type_allowed(essence, settings.allowed_media_types):
        allowed = ", ".join(settings.allowed_media_types)
        raise UnsupportedMediaType(f"files of type {essence} are not accepted here; allowed: {allowed}")
    return essence


def check_filename(filename: str | None) -> str | None:
    """A display name only, never a path: separators, `..` and control characters are refused."""
    if filename is None:
        return None
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidRequest("a file name, when given, must be non-empty text")
    if len(filename) > 500:
        raise InvalidRequest("a file name must be at most 500 characters")
    if "/" in filename or "\\" in filename or filename.strip() in (".", "..") or ".." in filename.split("."):
        raise InvalidRequest(f"file name {filename[:100]!r} looks like a path: give the bare name, e.g. photo.png")
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        raise InvalidRequest("a file name may not contain control characters")
    return filename


def check_file(data: bytes, media_type: str, filename: str | None, settings: Settings) -> tuple[str, str | None]:
    """(media type, file name) ready to store, or the error that says what to change."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidRequest("file content must be bytes")
    essence = check_media_type(media_type, settings)
    name = check_filename(filename)
    if len(data) > settings.max_file_bytes:
        raise PayloadTooLarge(f"the file is {len(data)} bytes; the limit is {settings.max_file_bytes} bytes")
    return essence, name
