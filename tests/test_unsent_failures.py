"""A provider call that never left (connection refused, no such host, connect timeout) is not
billed by the provider, so its `error` record carries no estimated usage and costs 0; a call that
failed after it was sent (a stream cut mid-way, a read timeout) keeps the estimate, which is what
the provider bills (`genvault.estimate`). Budgets settle the same way.

Real sockets throughout: a port bound and closed refuses the connection; a small asyncio server
answers, then drops the connection mid-stream or goes silent."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from genvault.errors import ProviderError
from genvault.estimate import input_tokens
from genvault.messages.sse import parse_sse
from genvault.providers._errors import never_sent
from genvault.providers._http1 import Http1Error, Http1Pool
from genvault.providers.anthropic import AnthropicProvider
from genvault.providers.base import ModelRequest
from genvault.providers.openai import OpenAIProvider
from genvault.server import create_app

MODEL = "local/m"
PRICES = {MODEL: {"input_mtok": "1", "output_mtok": "2"}}
PROMPT = "Tell me about herons"


def refused_port() -> int:
    """A local port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ]
    await reader.readexactly(lengths[0] if lengths else 0)


EVENT = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Herons"}}]}\n\n'


async def drop_mid_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _done: asyncio.Event) -> None:
    """Reads the request, starts a chunked event stream with one token, then cuts the connection."""
    await read_request(reader)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    writer.write(head + f"{len(EVENT):x}\r\n".encode() + EVENT + b"\r\n")
    await writer.drain()
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter, done: asyncio.Event) -> None:
    """Reads the request and answers nothing (the client's read times out)."""
    await read_request(reader)
    await done.wait()


async def serve(handler: Handler) -> AsyncIterator[int]:
    """A local server running `handler` per connection; every connection closed at the end."""
    done = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer, done)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        done.set()
        server.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
async def dropping_port() -> AsyncIterator[int]:
    async for port in serve(drop_mid_stream):
        yield port


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    async for port in serve(silent):
        yield port


def compatible(port: int, **kwargs: Any) -> OpenAIProvider:
    return OpenAIProvider("local", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, **kwargs)


async def priced_vault(vault_factory: Any, provider: Any) -> Any:
    return await vault_factory(providers={"local": provider}, settings_overrides={"price_overrides": PRICES})


def request() -> ModelRequest:
    return ModelRequest(model="m", messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}])


async def failure(provider: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        async for _event in provider.stream(request()):
            pass
    await provider.aclose()
    return caught.value


class TestTheProviderSays:
    async def test_a_refused_connection_was_never_sent_on_the_lean_client(self) -> None:
        error = await failure(compatible(refused_port()))
        assert "Connection error" in error.message
        assert error.sent is False

    async def test_a_refused_connection_was_never_sent_after_its_retries_either(self) -> None:
        provider = OpenAIProvider("local", base_url=f"http://127.0.0.1:{refused_port()}/v1", max_retries=1)
        assert (await failure(provider)).sent is False

    async def test_a_refused_connection_was_never_sent_through_the_openai_sdk(self) -> None:
        async with httpx.AsyncClient() as http:  # a caller's client: the SDK's own request path
            error = await failure(compatible(refused_port(), http_client=http))
        assert error.sent is False

    async def test_a_refused_connection_was_never_sent_through_the_anthropic_sdk(self) -> None:
        provider = AnthropicProvider(
            api_key="sk-ant-test", base_url=f"http://127.0.0.1:{refused_port()}", max_retries=0
        )
        assert (await failure(provider)).sent is False

    async def test_a_stream_cut_mid_way_was_sent(self, dropping_port: int) -> None:
        assert (await failure(compatible(dropping_port))).sent is True

    async def test_a_read_timeout_was_sent(self, silent_port: int) -> None:
        provider = compatible(silent_port)
        assert provider._pool is not None
        provider._pool.read_timeout = 0.2
        error = await failure(provider)
        assert "timed out" in error.message
        assert error.sent is True

    async def test_a_request_written_on_a_kept_alive_connection_counts_as_sent_though_the_next_connect_fails(
        self,
    ) -> None:
        # The first request is answered on a kept-alive connection. The server then stops
        # listening, reads the second request on that connection and hangs up without an answer.
        # The pool connects afresh (refused), but the server may have read the request.
        closing: list[asyncio.StreamWriter] = []

        async def answer_once_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            server.close()  # no new connections from here on
            await read_request(reader)
            closing.append(writer)
            writer.close()

        server = await asyncio.start_server(answer_once_then_hang_up, "127.0.0.1", 0)
        pool = Http1Pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        try:
            first = await pool.request("POST", "/x", b"", b"{}")
            assert await first.aread() == b"ok"
            with pytest.raises(Http1Error) as caught:
                await pool.request("POST", "/x", b"", b"{}")
            assert closing  # the server read the second request
            assert caught.value.sent is True
        finally:
            await pool.aclose()
            await server.wait_closed()

    async def test_a_fresh_connection_refused_was_never_sent(self) -> None:
        pool = Http1Pool(f"http://127.0.0.1:{refused_port()}")
        with pytest.raises(Http1Error) as caught:
            await pool.request("POST", "/x", b"", b"{}")
        assert caught.value.sent is False

    def test_the_sdks_exceptions_are_told_apart_by_their_cause(self) -> None:
        def wrapped(outer: BaseException, cause: BaseException) -> BaseException:
            outer.__cause__ = cause
            return outer

        sent_request = httpx.Request("POST", "http://provider.test/v1/chat/completions")
        sent_request2 = httpx2.Request("POST", "http://provider.test/v1/messages")
        cases = {
            (openai.APIConnectionError, httpx.ConnectError("refused")): True,
            (openai.APITimeoutError, httpx.ConnectTimeout("connect")): True,
            (openai.APIConnectionError, httpx.ReadError("reset")): False,
            (openai.APITimeoutError, httpx.ReadTimeout("read")): False,
            (openai.APIConnectionError, httpx.RemoteProtocolError("closed")): False,
        }
        for (kind, cause), expected in cases.items():
            assert never_sent(wrapped(kind(request=sent_request), cause)) is expected, (kind, cause)
        anthropic_cases = {
            (anthropic.APIConnectionError, httpx2.ConnectError("refused")): True,
            (anthropic.APITimeoutError, httpx2.ConnectTimeout("connect")): True,
            (anthropic.APIConnectionError, httpx2.ReadError("reset")): False,
        }
        for (kind, cause), expected in anthropic_cases.items():
            assert never_sent(wrapped(kind(request=sent_request2), cause)) is expected, (kind, cause)
        assert never_sent(Http1Error("cannot connect", sent=False)) is True
        assert never_sent(Http1Error("the connection broke")) is False
        assert never_sent(ValueError("anything else")) is False


class TestTheRecord:
    async def test_a_refused_connection_records_no_usage_and_costs_nothing(self, vault_factory: Any) -> None:
        vault = await priced_vault(vault_factory, compatible(refused_port()))
        record = await vault.wait((await vault.generate(PROMPT, model=MODEL)).id)
        assert record.status == "error"
        assert "Connection error" in (record.error or "")
        assert not record.usage.estimated
        assert (record.usage.input_tokens, record.usage.output_tokens) == (None, None)
        assert record.cost_nano_usd == 0
        [row] = await vault.usage()
        assert (row.estimated_generations, row.cost_nano_usd, row.unpriced_generations) == (0, 0, 0)

    async def test_a_stream_cut_mid_way_keeps_the_estimate(self, vault_factory: Any, dropping_port: int) -> None:
        vault = await priced_vault(vault_factory, compatible(dropping_port))
        record = await vault.wait((await vault.generate(PROMPT, model=MODEL)).id)
        assert record.status == "error"
        assert record.result_text == "Herons"
        assert record.usage.estimated
        messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
        assert record.usage.input_tokens == input_tokens(messages, tools=[])
        assert record.cost_nano_usd is not None
        assert record.cost_nano_usd > 0

    async def test_a_read_timeout_keeps_the_estimate(self, vault_factory: Any, silent_port: int) -> None:
        provider = compatible(silent_port)
        assert provider._pool is not None
        provider._pool.read_timeout = 0.2
        vault = await priced_vault(vault_factory, provider)
        record = await vault.wait((await vault.generate(PROMPT, model=MODEL)).id)
        assert record.status == "error"
        assert record.usage.estimated
        assert record.cost_nano_usd is not None
        assert record.cost_nano_usd > 0

    async def test_a_refused_chat_turn_tells_the_page_no_cost_and_no_estimate(self, vault_factory: Any) -> None:
        vault = await priced_vault(vault_factory, compatible(refused_port()))
        transport = httpx.ASGITransport(app=create_app(vault=vault))
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": PROMPT}]}
        async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
            body = {"id": "c1", "messages": [message], "model": MODEL}
            events = parse_sse((await http.post("/api/chat", json=body)).content)
        [status] = [e for e in events if isinstance(e, dict) and e["type"] == "message-metadata"]
        shown = status["messageMetadata"]
        assert shown["genvault"]["status"] == "error"
        assert shown["genvault"]["costUsd"] == "0"
        assert "usageEstimated" not in shown["genvault"]
        assert "totalUsage" not in shown

    async def test_a_budget_releases_its_reservation_with_nothing_spent(self, vault_factory: Any) -> None:
        vault = await priced_vault(vault_factory, compatible(refused_port()))
        await vault.set_limits({"total_usd": "1"}, user_id="local")
        record = await vault.wait((await vault.generate(PROMPT, model=MODEL)).id)
        assert record.status == "error"
        status = await vault.limits_status("local")
        [total] = [u for u in status.usage if u.limit == "total_usd"]
        assert (total.used, total.reserved, total.remaining) == ("0", "0", "1")

    async def test_a_budget_is_charged_the_estimate_of_a_stream_cut_mid_way(
        self, vault_factory: Any, dropping_port: int
    ) -> None:
        vault = await priced_vault(vault_factory, compatible(dropping_port))
        await vault.set_limits({"total_usd": "1"}, user_id="local")
        record = await vault.wait((await vault.generate(PROMPT, model=MODEL)).id)
        assert record.usage.estimated
        status = await vault.limits_status("local")
        [total] = [u for u in status.usage if u.limit == "total_usd"]
        assert total.reserved == "0"
        assert total.used == f"{record.cost_usd:f}".rstrip("0")
