"""`POST /api/chat` in front of the framework's layers (`server/hot_route.py`): the same answers
as through the app's stack (errors by the app's handlers, the genvault middlewares' refusals),
everything else to the stack, and a reply whose client goes away ends its request normally."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.responses import StreamingResponse
from starlette.types import Message

from genvault.messages.sse import parse_sse
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.server.hot_route import send_following
from genvault.server.streaming import LastFrame


def user(message_id: str, text: str = "hello") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


@pytest.fixture
async def app_client(vault_factory: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider})
    app = create_app(vault=vault)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield vault, client


async def test_a_turn_streams_through_the_front(app_client: tuple[Any, httpx.AsyncClient]) -> None:
    vault, client = app_client
    body = {"id": "c", "messages": [user("u1")], "trigger": "submit-message"}
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    events = parse_sse(response.content)
    assert events[0]["type"] == "start"
    assert events[-1] == "[DONE]"
    assert events[-2]["type"] == "finish"
    generation = await vault.get_generation(response.headers["x-genvault-generation-id"])
    assert generation.status == "complete"


async def test_a_turns_reply_ends_with_done_in_the_bodys_last_send(app_client: tuple[Any, httpx.AsyncClient]) -> None:
    """What was published together goes out in one send, and `[DONE]` with the end of the body:
    fewer writes than chunks, the same bytes."""
    vault, _client = app_client
    app = create_app(vault=vault)
    sent: list[Message] = []
    request = json.dumps({"id": "c2", "messages": [user("u1", "one two three")], "trigger": "submit-message"})
    messages = [{"type": "http.request", "body": request.encode(), "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays until the end
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat",
        "raw_path": b"/api/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    loop = asyncio.get_running_loop()
    tasks: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        tasks.append(getattr(coro, "__qualname__", type(coro).__name__))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        await app(scope, receive, send)
        generation_id = dict(sent[0]["headers"])[b"x-genvault-generation-id"].decode()
        await vault.engine.wait(generation_id)  # the run's end, its dedup release included
    finally:
        loop.set_task_factory(None)
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    # `finish`, `[DONE]` and the end of the body in one send: the hub closed right after `finish`.
    last = parse_sse(bodies[-1]["body"])
    assert bodies[-1]["more_body"] is False
    assert last[-1] == "[DONE]"
    assert isinstance(last[0], dict)
    assert last[0]["type"] == "finish"
    assert all(m["more_body"] for m in bodies[:-1])
    events = parse_sse(b"".join(m["body"] for m in bodies))
    # start with start-step, text-start with the first delta, text-end with finish-step: each pair
    # was published at once, so each went out in one send.
    assert len(bodies) < len(events) - 3, [m["body"] for m in bodies]
    # The dedup lead given up without a task of its own (SQL cache, result stored by the
    # finalize), and no follower left for the loop's async-generator finalizer to close.
    assert "async_generator_athrow" not in tasks, tasks
    assert "Dedup.finished" not in tasks, tasks


async def test_the_last_frame_goes_out_with_the_end_of_the_body() -> None:
    sent: list[Message] = []

    async def follower() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        yield LastFrame(b"data: [DONE]\n\n")

    async def receive() -> Message:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    response = StreamingResponse(follower(), media_type="text/event-stream")
    await send_following(response, {"type": "http"}, receive, send)
    assert [(m.get("body"), m.get("more_body")) for m in sent[1:]] == [
        (b"data: first\n\n", True),
        (b"data: [DONE]\n\n", False),
    ]


async def test_errors_are_the_app_handlers_plain_text(app_client: tuple[Any, httpx.AsyncClient]) -> None:
    _vault, client = app_client
    bad = await client.post("/api/chat", json={"id": "c", "messages": []})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("text/plain")
    assert "send the new message" in bad.text
    body = {"id": "c", "messages": [user("u1")], "trigger": "submit-message", "model": "nowhere/model"}
    unknown = await client.post("/api/chat", json=body)
    assert unknown.status_code == 400
    assert unknown.headers["content-type"].startswith("text/plain")


async def test_the_middlewares_still_refuse_first(app_client: tuple[Any, httpx.AsyncClient]) -> None:
    vault, client = app_client
    body = {"id": "c", "messages": [user("u1")], "trigger": "submit-message"}
    cross = await client.post("/api/chat", json=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert "cross-site" in cross.text
    deep = b'{"id": "c", "messages": ' + b"[" * 200 + b"]" * 200 + b"}"
    nested = await client.post("/api/chat", content=deep, headers={"content-type": "application/json"})
    assert nested.status_code == 400
    assert "nests" in nested.text
    huge = b'{"id": "c", "x": "' + b"a" * (vault.settings.max_body_bytes + 1) + b'"}'
    too_big = await client.post("/api/chat", content=huge, headers={"content-type": "application/json"})
    assert too_big.status_code == 413
    assert (await client.get("/api/chats/c")).status_code == 404  # nothing written by any of them


async def test_other_requests_go_through_the_stack(app_client: tuple[Any, httpx.AsyncClient]) -> None:
    _vault, client = app_client
    wrong_method = await client.get("/api/chat")
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]
    assert (await client.get("/api/chats")).status_code == 200


async def test_an_unexpected_error_is_a_500_in_the_routes_shape(
    app_client: tuple[Any, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, client = app_client

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(vault, "chat", broken)
    body = {"id": "c", "messages": [user("u1")], "trigger": "submit-message"}
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 500
    assert response.text == "internal server error"


async def test_a_disconnect_ends_the_request_normally_and_closes_the_follower() -> None:
    closed = asyncio.Event()
    sent: list[Message] = []

    async def follower() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()  # a reply that runs on, with no more chunks yet
            yield b"data: never\n\n"
        finally:
            closed.set()

    gone = asyncio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"data: first\n\n":
            gone.set()  # the client leaves after the first frame

    response = StreamingResponse(follower(), media_type="text/event-stream")
    await send_following(response, {"type": "http"}, receive, send)  # returns: no CancelledError
    assert closed.is_set()
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_cancel_from_outside_still_cancels_the_response() -> None:
    started = asyncio.Event()

    async def follower() -> AsyncIterator[bytes]:
        started.set()
        await asyncio.Event().wait()
        yield b""

    async def receive() -> Message:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(_message: Message) -> None:
        return None

    response = StreamingResponse(follower(), media_type="text/event-stream")
    task = asyncio.create_task(send_following(response, {"type": "http"}, receive, send))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
