"""Text every database can keep.

U+0000 cannot be stored in PostgreSQL text or JSONB, and unpaired UTF-16 surrogates (which JSON
can smuggle in as `\\ud800` escapes) are not encodable as UTF-8 at all. Both are refused up
front, the same way on every backend, with a message that says what is wrong, instead of a
driver error halfway through a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from genvault.errors import InvalidRequest

__all__ = ["check_storable"]


def check_storable(value: Any, what: str) -> None:
    for text in _strings(value):
        if "\x00" in text:
            raise InvalidRequest(f"{what} contains a NUL character (U+0000), which cannot be stored")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{what} contains an unpaired UTF-16 surrogate, which is not valid Unicode text"
            ) from None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
