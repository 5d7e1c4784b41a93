"""The lean HTTP/1.1 client (`genvault.providers._http1`) and the OpenAI provider over it, against a
scripted raw socket server: each connection answers the canned bytes of its turn, so framing,
keep-alive, a stale pooled connection, retries and errors are each exercised on the wire."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from genvault.errors import ProviderError
from genvault.providers._http1 import Http1Error, Http1Pool
from genvault.providers.base import ModelRequest, StreamTextDelta, WireRequest
from genvault.providers.openai import OpenAIProvider

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def answer(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(body: bytes, *headers: str, size: int = 7) -> bytes:
    head = "\r\n".join(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", *headers]) + "\r\n\r\n"
    pieces = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return head.encode() + b"".join(pieces) + b"0\r\n\r\n"


@dataclass
class Scripted:
    """Answers requests in order from `answers`; `close_after` answers close their connection.
    Records every request's raw bytes and how many connections were accepted."""

    answers: list[bytes]
    close_after: set[int] = field(default_factory=set)
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.requests.append(head + await reader.readexactly(length))
                turn = len(self.requests) - 1
                writer.write(self.answers[turn])
                await writer.drain()
                if turn in self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def start(scripted: Scripted) -> str:
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for server in servers:
        server.close()


async def test_content_length_chunked_and_gzip_answers_read_whole_over_one_kept_alive_connection(serve) -> None:
    body = json.dumps(COMPLETION).encode()
    scripted = Scripted([answer(200, body), chunked(body), answer(200, gzip.compress(body), "Content-Encoding: gzip")])
    pool = Http1Pool(await serve(scripted))
    for _ in range(3):
        response = await pool.request("POST", "/chat/completions", b"Content-Type: application/json\r\n", b"{}")
        assert response.status == 200
        assert await response.aread() == body
    assert scripted.connections == 1
    assert scripted.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    await pool.aclose()


async def test_a_close_delimited_answer_ends_with_the_connection(serve) -> None:
    scripted = Scripted([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"], close_after={0})
    pool = Http1Pool(await serve(scripted))
    response = await pool.request("POST", "/x", b"", b"")
    assert await response.aread() == b"all of it"
    await pool.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_and_the_request_sent_again(serve) -> None:
    scripted = Scripted([answer(200, b"one"), answer(200, b"two")], close_after={0})
    pool = Http1Pool(await serve(scripted))
    assert await (await pool.request("POST", "/x", b"", b"")).aread() == b"one"
    await asyncio.sleep(0.05)  # the server's close reaches the pooled connection
    assert await (await pool.request("POST", "/x", b"", b"")).aread() == b"two"
    assert scripted.connections == 2
    await pool.aclose()


async def test_an_answer_cut_short_is_an_error_not_a_short_body(serve) -> None:
    scripted = Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"], close_after={0})
    pool = Http1Pool(await serve(scripted))
    response = await pool.request("POST", "/x", b"", b"")
    with pytest.raises(Http1Error, match="in the middle of the answer"):
        await response.aread()
    await pool.aclose()


async def test_nothing_listening_is_an_http1_error() -> None:
    pool = Http1Pool("http://127.0.0.1:9/v1")
    with pytest.raises(Http1Error, match="cannot connect"):
        await pool.request("POST", "/x", b"", b"")


def wire_request(stream: bool) -> ModelRequest:
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "custom_field": 1}
    return ModelRequest(
        model="gpt-x",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        wire=WireRequest("openai.chat", body, whole=not stream),
    )


async def test_the_openai_provider_sends_the_key_and_body_and_retries_a_429_after_its_retry_after(serve) -> None:
    body = json.dumps(COMPLETION).encode()
    limited = answer(429, b'{"error": {"message": "slow down"}}', "Retry-After-Ms: 10")
    scripted = Scripted([limited, answer(200, body, "Content-Type: application/json")])
    provider = OpenAIProvider("openai", api_key="sk-up", base_url=await serve(scripted), max_retries=1)
    events = [event async for event in provider.stream(wire_request(stream=False))]
    assert StreamTextDelta("hi there") in events
    head, _, sent = scripted.requests[1].partition(b"\r\n\r\n")
    assert b"Authorization: Bearer sk-up" in head
    assert b"X-Stainless" not in head
    assert json.loads(sent) == {**wire_request(False).wire.body, "stream": False}  # type: ignore[union-attr]
    await provider.aclose()


async def test_an_error_status_becomes_a_provider_error_with_the_upstreams_message_and_status(serve) -> None:
    scripted = Scripted([answer(400, b'{"error": {"message": "bad model", "type": "invalid_request_error"}}')])
    provider = OpenAIProvider("openai", api_key="sk-up", base_url=await serve(scripted), max_retries=2)
    with pytest.raises(ProviderError, match="bad model") as raised:
        [event async for event in provider.stream(wire_request(stream=False))]
    assert raised.value.status == 400
    assert len(scripted.requests) == 1  # a 400 is not retried
    await provider.aclose()


async def test_a_streamed_answer_is_read_event_by_event(serve) -> None:
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "he"}}]},
        {"choices": [{"index": 0, "delta": {"content": "llo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
    ]
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    scripted = Scripted([chunked(sse, "Content-Type: text/event-stream")])
    provider = OpenAIProvider("openai", api_key="sk-up", base_url=await serve(scripted), max_retries=0)
    texts = [e.text async for e in provider.stream(wire_request(stream=True)) if isinstance(e, StreamTextDelta)]
    assert texts == ["he", "llo"]
    await provider.aclose()


def test_the_sdks_client_carries_the_calls_behind_a_proxy_or_with_an_injected_http_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    assert OpenAIProvider("openai", api_key="k", base_url="http://127.0.0.1:9/v1")._pool is not None
    injected = OpenAIProvider("openai", api_key="k", base_url="http://127.0.0.1:9/v1", http_client=httpx.AsyncClient())
    assert injected._pool is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert OpenAIProvider("openai", api_key="k", base_url="http://upstream.invalid/v1")._pool is None
