"""A provider asked for a stream must answer with one.

Asked for `stream: true`, a server that answers something else (`application/json`, an HTML
error page from a proxy) would look to the SDKs like a stream with no events, and so like an empty
success. This refuses it, with the provider's own message when the body is a JSON error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from genvault.errors import ProviderError
from genvault.providers._errors import error_message

__all__ = ["check_is_stream"]

_EXCERPT = 200


async def check_is_stream(response: Any, provider: str, close: Callable[[], Awaitable[None]]) -> None:
    """Raise `ProviderError` (and close the response) unless `response` (an httpx or httpx2
    response) is a server-sent event stream."""
    media_type = str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    if media_type == "text/event-stream":
        return
    try:
        body = (await response.aread()).decode("utf-8", "replace")
    except Exception:  # the reason is what the caller needs; the body is only a detail
        body = ""
    finally:
        await close()
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    detail = error_message(parsed, "") if parsed is not None else ""
    if not detail:
        detail = body.strip()[:_EXCERPT] or "an empty body"
    raise ProviderError(
        f"{provider} answered {media_type or 'without a content type'} instead of an event stream: {detail}",
        provider=provider,
        status=502,
    )
