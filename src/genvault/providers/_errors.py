"""Turning a provider's error body into the message a person should read.

Both SDKs prefix messages with "Error code: 429 - {...}" and a Python repr of the body; the
provider's own sentence is inside, at `error.message` (or `message`). Records keep that sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["error_message", "error_type"]


def error_message(body: Any, fallback: str) -> str:
    """The provider's message in an error body, else `fallback`."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str) and inner["message"]:
            return str(inner["message"])
        if isinstance(body.get("message"), str) and body["message"]:
            return str(body["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()
    return fallback


def error_type(body: Any) -> str | None:
    """The provider's error type (`rate_limit_error`, `overloaded_error`, ...) if the body names one."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("type"), str):
            return str(inner["type"])
        if isinstance(body.get("type"), str) and body.get("type") != "error":
            return str(body["type"])
    return None
