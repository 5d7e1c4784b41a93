"""A lean HTTP/1.1 client for a provider's hot path: one POST with a JSON body, its answer read
whole or as a byte stream, over a small pool of keep-alive connections.

Why not the SDK's client: a gateway call that passes the client's body through does nothing with
the SDK but send bytes and read bytes, and the SDK's layers (request options validated by
pydantic, then httpx2, httpcore2 and h11, all pure Python) cost more CPU per call than everything
else genvault does for it: about 40% of a non-streamed `/v1/chat/completions` call (cProfile,
`bench.cpu gateway`). aiohttp is not a dependency (nor in uv.lock); `httptools`, the C parser
uvicorn already uses for genvault's own side, parses the upstream's answer here.

Invariants:
- Only what the providers need: `POST` (or any method) to one origin, `Content-Length` bodies
  out; `Content-Length`, chunked or close-delimited answers in; gzip/deflate decoded (the
  caller's headers say what it accepts; the OpenAI provider asks for both, as the SDK's client
  did). No proxies, redirects or cookies: the
  provider uses the SDK's client when a proxy is configured.
- A connection goes back to the pool only after its answer was read to the end and the server
  allows keep-alive; a response closed early closes its connection.
- A pooled connection the server closed while idle is replaced and the request sent again, once,
  only when not a byte of an answer came back.
- Every failure to connect, send or read leaves as `Http1Error` (an `OSError` or a timeout as
  its cause); an HTTP error status is an answer, not an exception. `Http1Error.sent` is False
  only for a failure to connect: then not a byte of the request left this process.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = ["Http1Error", "Http1Pool", "Http1Response", "uses_proxy"]

_READ = 65536


class Http1Error(Exception):
    """The connection failed (connect, send, or read); `timeout` says whether it timed out,
    `sent` whether any of the request may have gone out (False: the connection was never made)."""

    def __init__(self, message: str, *, timeout: bool = False, sent: bool = True) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.sent = sent


def uses_proxy(url: str) -> bool:
    """Whether the environment sends requests to `url` through a proxy (then the SDK's client goes)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


class Http1Response:
    """A status line and headers read; the body is read by `aread()` or `aiter_bytes()`."""

    def __init__(self, pool: Http1Pool, connection: _Connection, read_timeout: float) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        self._decoder: Any = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.received = False  # any byte of the answer came back

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self.status = self._parser.get_status_code()
        headers: dict[str, str] = {}
        for name, value in self._headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.headers = headers
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()

    def on_body(self, body: bytes) -> None:
        self._body.append(self._decoder.decompress(body) if self._decoder is not None else body)

    def on_message_complete(self) -> None:
        self._complete = True
        # Asked here: once the message is complete the parser starts over and forgets it.
        self._keep_alive = self._parser.should_keep_alive()

    async def _feed_once(self) -> bool:
        """Read and parse one piece; False at the end of the connection."""
        connection = self._connection
        assert connection is not None
        try:
            data = await asyncio.wait_for(connection.reader.read(_READ), self._timeout)
        except TimeoutError as exc:
            self._discard()
            raise Http1Error("the upstream sent nothing for too long (read timed out)", timeout=True) from exc
        except OSError as exc:
            self._discard()
            raise Http1Error(f"the connection broke: {exc}") from exc
        if not data:
            # A body without a length or chunked framing is close-delimited: it ends here.
            framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
            if self._headers_done and not framed:
                self._complete = True
            return False
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._discard()
            raise Http1Error(f"the upstream's answer is not valid HTTP/1.1: {exc}") from exc
        return True

    async def read_head(self) -> None:
        while not self._headers_done:
            if not await self._feed_once():
                self._discard()
                raise Http1Error("the connection closed before an answer came back")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                if self._body:
                    pieces, self._body = self._body, []
                    yield b"".join(pieces)
                if self._complete:
                    break
                if not await self._feed_once():
                    if self._body:
                        pieces, self._body = self._body, []
                        yield b"".join(pieces)
                    if not self._complete:
                        raise Http1Error("the connection closed in the middle of the answer")
                    break
            if self._decoder is not None and (tail := self._decoder.flush()):
                yield tail
            self._release()
        finally:
            self._discard()

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def aclose(self) -> None:
        self._discard()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            if self._complete and self._keep_alive:
                self._pool.put_back(connection)
            else:
                connection.close()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class Http1Pool:
    """Keep-alive connections to one origin (`base_url`'s scheme, host and port)."""

    def __init__(
        self, base_url: str, *, connect_timeout: float = 5.0, read_timeout: float = 600.0, max_idle: int = 64
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            import certifi  # httpx's dependency: the same trust store as the SDK's client

            self._ssl = ssl.create_default_context(cafile=certifi.where())
        self._connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle

    def put_back(self, connection: _Connection) -> None:
        if len(self._idle) < self._max_idle and connection.usable:
            self._idle.append(connection)
        else:
            connection.close()

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None, limit=_READ
                ),
                self._connect_timeout,
            )
        except TimeoutError as exc:
            raise Http1Error(f"connecting to {self.host_header} timed out", timeout=True, sent=False) from exc
        except OSError as exc:  # refused, unreachable, a name that does not resolve, a TLS handshake
            raise Http1Error(f"cannot connect to {self.host_header}: {exc}", sent=False) from exc
        return _Connection(reader, writer)

    async def request(self, method: str, path: str, headers: bytes, body: bytes) -> Http1Response:
        """Send one request (`headers`: the header lines, each ending CRLF, without Host and
        Content-Length) and read the answer's head."""
        head = (
            f"{method} {self.path}{path} HTTP/1.1\r\nHost: {self.host_header}\r\nContent-Length: {len(body)}\r\n"
        ).encode("latin-1")
        message = head + headers + b"\r\n" + body
        written = False  # on an idle connection that then failed: the server may have read it
        while True:
            reused = False
            connection = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.usable:
                    connection, reused = candidate, True
                    break
                candidate.close()
            if connection is None:
                try:
                    connection = await self._connect()
                except Http1Error as exc:
                    exc.sent = written
                    raise
            response = Http1Response(self, connection, self.read_timeout)
            try:
                connection.writer.write(message)
                await connection.writer.drain()
                await response.read_head()
            except (Http1Error, OSError) as exc:
                connection.close()
                if reused and not response.received:
                    written = True
                    continue  # the server had closed the idle connection: a fresh one
                if isinstance(exc, Http1Error):
                    raise
                raise Http1Error(f"the connection broke: {exc}") from exc
            return response

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
