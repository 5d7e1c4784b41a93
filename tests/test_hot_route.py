"""`POST /api/chat` in front of the framework's layers (`server/hot_route.py`): the same answers
as through the app's stack (errors by the app's handlers, the genvault middlewares' refusals),
everything else to the stack, and a reply whose client goes away ends its request normally."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi.responses import StreamingResponse
from starlette.types import Message

from genvault.messages.sse import encode_delta_sse, parse_sse
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.server.hot_route import send_following
from genvault.server.streaming import HubReply, LastFrame, hub_reply_response, ui_message_stream_response
from genvault.streams import MemoryHub


def user(message_id: str, text: str = "hello") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def chat_scope() -> dict[str, Any]:
    """`POST /api/chat` as uvicorn hands it to the app."""
    return {
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

    scope = chat_scope()
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


# -- a chat turn's tokens written by the generation's task (`streaming.DirectSend`) ----------------

DELTAS = [{"type": "text-delta", "id": "t", "delta": f" w{i}"} for i in range(8)]
OPENING = [{"type": "start", "messageId": "m"}, {"type": "start-step"}, {"type": "text-start", "id": "t"}]
ENDING = [{"type": "text-end", "id": "t"}, {"type": "finish-step"}, {"type": "finish"}]


async def settle() -> None:
    """Every task that can run, runs (no I/O here: a fixed number of loop turns is enough)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Client:
    """A reply's client for `send_following`: records what is sent (after `before(message)`, a
    send's own wait or failure); `gone.set()` disconnects it."""

    def __init__(self, before: Callable[[Message], Awaitable[None]] | None = None) -> None:
        self.before = before
        self.sent: list[Message] = []
        self.gone = asyncio.Event()
        self.left_at: int | None = None  # how many messages had been sent when the response saw it leave

    async def receive(self) -> Message:
        await self.gone.wait()
        self.left_at = len(self.sent)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.before is not None:
            await self.before(message)
        self.sent.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.sent if m["type"] == "http.response.body")


async def opened() -> MemoryHub:
    """A hub whose stream "s" has its opening chunks."""
    hub = MemoryHub()
    await hub.open("s")
    for chunk in OPENING:
        hub.publish_nowait("s", chunk)
    return hub


async def following(hub: MemoryHub, client: Client, compat: str = "5.0.0") -> asyncio.Task[None]:
    """The hot route's response to a reply followed in `hub` (stream "s"), caught up with it."""
    response = ui_message_stream_response(HubReply(hub, "s", compat), compat=compat)
    task = asyncio.create_task(send_following(response, {"type": "http"}, client.receive, client.send))
    await settle()
    return task


async def old_path_body(hub: MemoryHub, compat: str = "5.0.0") -> bytes:
    """What the response sent before: the closed stream's batches as `_sse_batches` frames them."""
    return b"".join([frame async for frame in HubReply(hub, "s", compat)])


@pytest.mark.parametrize("delta", [False, True])  # True: as the engine publishes its text deltas
async def test_a_token_published_once_the_response_caught_up_is_written_at_once_by_the_publisher(delta: bool) -> None:
    hub = await opened()
    client = Client()
    task = await following(hub, client)
    written = len(client.sent)
    for n, chunk in enumerate(DELTAS, 1):
        hub.publish_nowait("s", chunk, delta=delta)  # no await: written in this call, by this task
        assert len(client.sent) == written + n
        assert client.sent[-1] == {
            "type": "http.response.body",
            "body": encode_delta_sse("text-delta", "t", chunk["delta"]),
            "more_body": True,
        }
    hub.publish_nowait("s", ENDING[0])  # a boundary: the response's, with what comes along
    hub.publish_nowait("s", ENDING[1])
    assert len(client.sent) == written + len(DELTAS)
    await settle()
    assert len(client.sent) == written + len(DELTAS) + 1  # both in one write
    hub.publish_nowait("s", ENDING[2])
    await hub.close("s")
    await task
    last = client.sent[-1]
    assert last["more_body"] is False
    assert parse_sse(last["body"]) == [ENDING[2], "[DONE]"]  # `finish` with `[DONE]`, as before
    assert client.body == await old_path_body(hub)


async def test_plain_deltas_of_several_parts_are_written_as_the_response_would_write_them() -> None:
    """`DirectSend.write_delta` keeps each event's start per part (its type and id): parts that
    change, a reasoning part with a text part's id, ids and texts that JSON escapes."""
    hub = await opened()
    client = Client()
    task = await following(hub, client)
    published = [
        {"type": "text-delta", "id": "t", "delta": ' "w0"'},
        {"type": "reasoning-delta", "id": "t", "delta": "hm\n"},
        {"type": "reasoning-delta", "id": "t", "delta": "\\ é"},
        {"type": "text-delta", "id": 'u"\u2028', "delta": "x\x00"},
        {"type": "text-delta", "id": "t", "delta": "😀"},
    ]
    for chunk in published:
        hub.publish_nowait("s", chunk, delta=True)
    assert parse_sse(client.body)[len(OPENING) :] == published  # each written at once
    for chunk in ENDING:
        hub.publish_nowait("s", chunk)
    await hub.close("s")
    await task
    assert client.body == await old_path_body(hub)


async def test_a_client_that_holds_up_a_write_never_holds_up_the_publisher_and_misses_nothing() -> None:
    held = encode_delta_sse("text-delta", "t", DELTAS[2]["delta"])
    drained = asyncio.Event()

    async def paused(message: Message) -> None:
        if message.get("body") == held:
            await drained.wait()  # as uvicorn's `send` while the transport is paused

    hub = await opened()
    client = Client(paused)
    task = await following(hub, client)
    for chunk in DELTAS:
        hub.publish_nowait("s", chunk)  # returns at once, the held write included
    await settle()
    before = parse_sse(client.body)
    assert [c["delta"] for c in before[3:] if isinstance(c, dict)] == [" w0", " w1"]  # the rest waits
    drained.set()
    await settle()
    for chunk in ENDING:
        hub.publish_nowait("s", chunk)
    await hub.close("s")
    await task
    assert client.body == await old_path_body(hub)  # every chunk once, in order


async def test_a_failing_write_ends_the_response_with_its_error_and_the_publisher_goes_on() -> None:
    broken = encode_delta_sse("text-delta", "t", DELTAS[1]["delta"])

    async def failing(message: Message) -> None:
        if message.get("body") == broken:
            raise ConnectionResetError("the client's socket broke")

    hub = await opened()
    client = Client(failing)
    task = await following(hub, client)
    for chunk in DELTAS + ENDING:
        hub.publish_nowait("s", chunk)  # never raises
    await hub.close("s")
    with pytest.raises(ConnectionResetError):
        await task
    assert len(hub.chunks("s")) == len(OPENING + DELTAS + ENDING)


@pytest.mark.parametrize("delta", [False, True])
async def test_a_token_that_cannot_be_encoded_fails_the_response_not_the_publisher(delta: bool) -> None:
    hub = await opened()
    client = Client()
    task = await following(hub, client)
    hub.publish_nowait("s", {"type": "text-delta", "id": "t", "delta": "\ud800"}, delta=delta)  # never raises
    for chunk in ENDING:
        hub.publish_nowait("s", chunk)
    await hub.close("s")
    with pytest.raises(UnicodeEncodeError):  # as when the response encoded it itself
        await task


async def test_after_a_disconnect_the_publisher_writes_nothing_more() -> None:
    hub = await opened()
    client = Client()
    task = await following(hub, client)
    hub.publish_nowait("s", DELTAS[0])
    client.gone.set()
    await asyncio.sleep(0)  # the response's watcher runs (sees the disconnect), nothing else yet
    assert client.left_at == len(client.sent)
    hub.publish_nowait("s", DELTAS[1])  # before the response's task has taken its cancellation
    await task  # ends normally
    for chunk in DELTAS[2:] + ENDING:
        hub.publish_nowait("s", chunk)
    await hub.close("s")
    assert len(client.sent) == client.left_at
    assert hub.chunks("s")[-1] == ENDING[-1]


@pytest.mark.parametrize("compat", ["5.0.0", "latest"])
async def test_a_turns_body_is_the_same_bytes_with_its_tokens_written_by_the_generations_task(
    vault_factory: Any, monkeypatch: pytest.MonkeyPatch, cache_backend: dict[str, str], compat: str
) -> None:
    """With the in-process hub the tokens go out from the generation's task, everything else from
    the response's (`finish` once the record is final); with Redis's, all from the response's, as
    before. Either way the body is what a plain follower of the stream would have sent."""
    settings = {**cache_backend, "stream_compat": compat}  # Redis's settings: its hub too
    provider = tm.TestProvider(tokens_per_second=0)
    provider.enqueue(
        tm.reasoning("First, think it over.", provider_metadata={"anthropic": {"signature": "sig"}}),
        tm.text("Herons stand still in shallow water"),
        tm.source("https://example.com/herons", "Herons"),
        tm.text(" and wait for fish to come close."),
    )
    vault = await vault_factory(providers={"offline": provider}, settings_overrides=settings)
    app = create_app(vault=vault)
    servers_send: list[Any] = []

    async def send_following_seen(response: Any, scope: Any, receive: Any, send: Any) -> None:
        servers_send.append(send)
        await send_following(response, scope, receive, send)

    monkeypatch.setattr("genvault.server.hot_route.send_following", send_following_seen)
    client = Client()
    writers: list[tuple[str, bytes]] = []
    finished: list[str] = []
    request_body = json.dumps({"id": "c", "messages": [user("u1", "herons?")], "trigger": "submit-message"}).encode()
    messages = [{"type": "http.request", "body": request_body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else await client.receive()

    async def send(message: Message) -> None:
        await client.send(message)
        if message["type"] != "http.response.body":
            return
        task = asyncio.current_task()
        assert task is not None
        writers.append((task.get_name(), message["body"]))
        if b'"type":"finish"' in message["body"]:
            generation_id = dict(client.sent[0]["headers"])[b"x-genvault-generation-id"].decode()
            finished.append((await vault.get_generation(generation_id)).status)

    await app(chat_scope(), receive, send)
    assert servers_send == [send]  # no middleware wraps it: the generation's task may call it
    generation_id = dict(client.sent[0]["headers"])[b"x-genvault-generation-id"].decode()
    await vault.engine.wait(generation_id)
    assert finished == ["complete"]  # `finish` sent only once the record was final
    plain = ui_message_stream_response(vault.hub.follow(generation_id), compat=compat)
    assert client.body == b"".join([frame async for frame in plain.body_iterator])  # type: ignore[misc]
    by_generation = [body for name, body in writers if name.startswith("genvault:")]
    if isinstance(vault.hub, MemoryHub):
        assert by_generation, writers
        assert all(len(parse_sse(body)) == 1 and b'-delta"' in body for body in by_generation), by_generation
    else:
        assert by_generation == []


def test_a_hub_replys_response_is_the_one_starlette_makes() -> None:
    """`hub_reply_response` skips `StreamingResponse.__init__`: the same object it would make,
    attribute for attribute, headers in the same order (the body not iterated here)."""
    reply = HubReply(MemoryHub(), "gen_x", "v5")
    made = hub_reply_response(reply, "gen_01jd3q0000000000000000000z")
    starlette = ui_message_stream_response(
        reply, compat="v5", headers={"X-Genvault-Generation-Id": made.raw_headers[-1][1].decode()}
    )
    assert type(made) is type(starlette) is StreamingResponse
    assert vars(made) == vars(starlette)
    assert made.headers["content-type"] == "text/event-stream"
    assert made.headers["x-genvault-generation-id"] == "gen_01jd3q0000000000000000000z"
    assert made.charset == starlette.charset
