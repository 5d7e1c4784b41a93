"""Run an `httpx2`-only SDK (anthropic 2.x) over a caller's `httpx.AsyncClient`.

genvault hands providers one `httpx.AsyncClient` (tests inject `httpx.MockTransport`, servers
share a connection pool). The anthropic SDK refuses `httpx` objects, so this transport carries
each `httpx2.Request` over the `httpx` client and streams the answer back as an `httpx2.Response`.

Invariants: bodies stream through without buffering; closing the bridged response closes the
`httpx` response; closing the bridge never closes the caller's client; `httpx` transport errors
come out as the `httpx2` error of the same name, so the SDK maps them as it would its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2

__all__ = ["bridge_client"]


def bridge_client(client: httpx.AsyncClient) -> httpx2.AsyncClient:
    """An `httpx2.AsyncClient` whose every request goes through `client`."""
    return httpx2.AsyncClient(transport=_HttpxTransport(client))


def _as_httpx2_error(exc: httpx.HTTPError, request: httpx2.Request) -> Exception:
    kind = getattr(httpx2, type(exc).__name__, None)
    if not (isinstance(kind, type) and issubclass(kind, httpx2.RequestError)):
        kind = httpx2.TransportError
    return kind(str(exc) or type(exc).__name__, request=request)


class _HttpxTransport(httpx2.AsyncBaseTransport):
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        timeout: Any = request.extensions.get("timeout")
        legacy = self._client.build_request(
            request.method,
            str(request.url),
            headers=request.headers.raw,
            content=content,
            timeout=httpx.Timeout(None, **timeout) if isinstance(timeout, dict) else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = await self._client.send(legacy, stream=True)
        except httpx.HTTPError as exc:
            raise _as_httpx2_error(exc, request) from exc
        if response.is_stream_consumed:
            # Already read (a mock that answered with `content=`): hand over the decoded body,
            # without the encoding headers that no longer describe it.
            headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
            return httpx2.Response(response.status_code, headers=headers, content=response.content, request=request)
        return httpx2.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=_BridgedStream(response, request),
            request=request,
        )


class _BridgedStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            # Raw bytes: the headers travel unchanged, so httpx2 does any decompression itself.
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise _as_httpx2_error(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._response.aclose()
