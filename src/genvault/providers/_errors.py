"""Turning a provider's error body into the message a person should read, and telling a call
that never left from one the provider may have billed.

Both SDKs prefix messages with "Error code: 429 - {...}" and a Python repr of the body; the
provider's own sentence is inside, at `error.message` (or `message`). Records keep that sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import httpx2

from genvault.providers._http1 import Http1Error

__all__ = ["error_message", "error_type", "never_sent"]

# Raised only while a new connection is made (TCP connect, DNS, TLS handshake): before a byte
# of the request is written. Read, write and protocol errors may come after the provider read it.
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx2.ConnectError, httpx2.ConnectTimeout)


def never_sent(exc: BaseException) -> bool:
    """Whether the failure `exc` certainly came before the request reached the provider: a
    connection refused, a name that did not resolve, a connect timeout. The SDKs wrap these
    (`openai.APIConnectionError`, `APITimeoutError`, anthropic's likewise) with the transport's
    exception as `__cause__`, which is what is looked at; anything else counts as sent."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Http1Error):
            return not seen.sent
        if isinstance(seen, _CONNECT_ERRORS):
            return True
        seen = seen.__cause__
    return False


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
