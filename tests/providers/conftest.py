"""Fixtures that serve recorded wire transcripts to the real SDKs through `httpx.MockTransport`.

Nothing here opens a socket: every provider under test gets an `httpx.AsyncClient` whose
transport is a `MockServer`, which answers from a queue of canned responses and records each
request it was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def transcript(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


@dataclass
class Recorded:
    method: str
    url: str
    headers: httpx.Headers
    json: Any


class BlockingStream(httpx.AsyncByteStream):
    """Sends `first`, then waits forever; remembers whether it was closed."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.sent_first = asyncio.Event()
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        self.sent_first.set()
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class MockServer:
    """Answers requests from a FIFO of responses and records every request."""

    responses: list[httpx.Response] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def sse(self, name: str) -> MockServer:
        self.responses.append(
            httpx.Response(200, content=transcript(name), headers={"content-type": "text/event-stream"})
        )
        return self

    def error(self, status: int, name: str) -> MockServer:
        # x-should-retry keeps the SDKs from retrying, whatever their max_retries.
        headers = {"content-type": "application/json", "x-should-retry": "false"}
        self.responses.append(httpx.Response(status, content=transcript(name), headers=headers))
        return self

    def stream(self, stream: httpx.AsyncByteStream) -> MockServer:
        self.responses.append(httpx.Response(200, stream=stream, headers={"content-type": "text/event-stream"}))
        return self

    async def handler(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(Recorded(request.method, str(request.url), request.headers, json.loads(body or b"null")))
        if not self.responses:
            return httpx.Response(500, json={"error": {"message": "MockServer: no response queued"}})
        return self.responses.pop(0)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]


@pytest.fixture
def server() -> MockServer:
    return MockServer()


@pytest.fixture
async def http_client(server: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as client:
        yield client


@pytest.fixture
def blocking_stream() -> type[BlockingStream]:
    return BlockingStream
