"""What every `/v1` endpoint shares: who is asking, the JSON body, the per-request headers, and
starting a generation through the Vault and following its stream.

Invariant: a gateway call is an ordinary generation. It starts through `Vault.complete` (the
engine's `start`, as `/api/generate` and chat turns do), so its `pending` row is committed before
the upstream is called, it checkpoints while streaming, and it runs in the engine's task: a
response only follows it, and a client that goes away stops nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import StreamingResponse

from genvault import labels
from genvault.errors import InvalidRequest, Unauthorized
from genvault.limits import acting_key
from genvault.providers.base import ModelRequest
from genvault.providers.tap import OPENED, WireTap
from genvault.records import Generation
from genvault.server.deps import key_user
from genvault.store.text import check_storable
from genvault.store.users import LOCAL_USER_ID
from genvault.streams.memory import MemoryHub, as_chunk
from genvault.vault import Vault

__all__ = [
    "CACHE_HEADER",
    "GENERATION_HEADER",
    "Started",
    "call_options",
    "drain",
    "dumps",
    "event_stream",
    "gateway_user",
    "parse_arguments",
    "read_body",
    "require",
    "start_generation",
    "text_of",
    "usage_of",
]

GENERATION_HEADER = "X-Genvault-Generation-Id"
# `X-Genvault-Cache: off` makes this one request call the model even when an identical one is
# cached or running (and keeps its answer out of the cache).
CACHE_HEADER = "x-genvault-cache"


async def gateway_user(request: Request, vault: Vault) -> str:
    """The acting user: a genvault API key in the header the client's SDK sends (`Authorization:
    Bearer` for OpenAI-style clients, `x-api-key` for Anthropic-style), the proxy's header in
    `header` mode, the local user with auth `none`."""
    acting_key.set(None)
    settings = vault.settings
    if settings.auth == "none":
        return LOCAL_USER_ID
    if settings.auth == "header":
        name = request.headers.get(settings.auth_header, "").strip()
        if not name:
            raise Unauthorized(f"authentication required: send the {settings.auth_header} header from the proxy")
        if len(name) > 64:
            raise Unauthorized(f"{settings.auth_header} is longer than 64 characters")
        await vault.ensure_user(name)
        return name
    token = request.headers.get("x-api-key", "").strip()
    if not token:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = bearer.strip()
    if not token:
        raise Unauthorized("authentication required: send a genvault API key (Authorization: Bearer, or x-api-key)")
    return await key_user(vault, token)


async def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or `InvalidRequest` saying what is wrong with it."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def call_options(request: Request) -> tuple[bool, list[str] | None, dict[str, Any] | None]:
    """What genvault's own headers ask of a `/v1` call: the dedup cache (`X-Genvault-Cache`),
    and the record's tags and metadata; `InvalidRequest` for a bad one."""
    cache = request.headers.get(CACHE_HEADER, "on").strip().lower()
    if cache not in ("on", "off"):
        raise InvalidRequest(f"{CACHE_HEADER} must be on or off, got {cache!r}")
    tags, metadata = labels.from_headers(request.headers)
    return cache == "on", tags, metadata


@dataclass(frozen=True)
class Started:
    """A started (or retried, or joined) generation and its UI message stream chunks."""

    record: Generation
    chunks: AsyncIterator[dict[str, Any]]

    @property
    def headers(self) -> dict[str, str]:
        return {GENERATION_HEADER: self.record.id}


async def start_generation(
    request: Request,
    vault: Vault,
    user_id: str,
    *,
    model: str,
    model_request: ModelRequest,
    request_json: dict[str, Any],
) -> Started:
    """Commit the pending record and start the model (or join an identical running request, or
    copy a cached one), then follow its chunks from the first."""
    check_storable(request_json, "the request")
    cache, tags, metadata = call_options(request)
    record = await vault.complete(
        model_request,
        model=model,
        request_json=request_json,
        user_id=user_id,
        idempotency_key=request.headers.get("idempotency-key"),
        cache=cache,
        tags=tags,
        metadata=metadata,
    )
    # It usually runs here: follow the hub directly, without replay's record read.
    chunks = vault.follow_here(record.id, user_id=None) or vault.replay(record.id, user_id=None)
    return Started(record, chunks)


async def drain(vault: Vault, started: Started, feed: Callable[[dict[str, Any]], object]) -> int | None:
    """Feed every chunk of a non-streamed call to its renderer; returns the upstream's HTTP status
    when the provider call failed here (an error answer carries it), else None."""
    run = vault.engine.run_here(started.record.id)
    hub = vault.hub
    if run is not None and isinstance(hub, MemoryHub):
        # Nothing goes out before the end: wake once, when the final state is committed and the
        # last chunk published (`told`), rather than once per burst of chunks and again at the
        # stream's close, which waits for the dedup cache's release. The run goes on without
        # this if the client leaves: it is its own task.
        await run.told.wait()
        status = None
        for kept in hub.chunks(started.record.id):  # all of them, the last one included
            chunk = as_chunk(kept)  # an old text delta is kept packed
            if chunk["type"] == "error":
                status = run.provider_status
            feed(chunk)
        return status
    status = None
    async for chunk in started.chunks:
        if chunk["type"] == "error":
            status = vault.engine.provider_status(started.record.id)
        feed(chunk)
    return status


def text_of(content: Any, what: str) -> str:
    """A string, or the joined `text` of a list of text parts (both APIs allow either)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                raise InvalidRequest(f"{what}: expected text parts")
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidRequest(f"{what}: expected a string or a list of text parts")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidRequest(message)


def parse_arguments(text: Any) -> Any:
    """A tool call's arguments JSON text as a value (the text itself when it does not parse)."""
    if not isinstance(text, str):
        return text if text is not None else {}
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def usage_of(finish: dict[str, Any]) -> dict[str, int]:
    """The AI SDK usage JSON (`inputTokens`, ...) a `finish` chunk carries, or `{}`."""
    metadata = finish.get("messageMetadata")
    usage = metadata.get("totalUsage") if isinstance(metadata, dict) else None
    return usage if isinstance(usage, dict) else {}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Renderer(Protocol):
    """One wire format's answer, built from the generation's UI message stream chunks."""

    def first(self) -> bytes: ...

    def feed(self, chunk: dict[str, Any]) -> bytes | None: ...


def event_stream(
    renderer: Renderer,
    started: Started,
    *,
    done: bytes = b"",
    tap: WireTap | None = None,
    relay_done: bytes | None = None,
) -> StreamingResponse:
    """The streamed answer in the renderer's wire format, then `done` (OpenAI's `[DONE]`).

    With a `tap` whose upstream stream is passed through (the provider opens it, and holds back
    the upstream's own last event), the client gets the upstream's own bytes instead, and the
    generation's chunks only say how it ended: `relay_done` (default `done`) follows once the
    record is committed, an error or abort comes in the API's own shape."""
    if tap is None:
        return StreamingResponse(_rendered(renderer, started, done), **_sse(started))
    ending = done if relay_done is None else relay_done
    return StreamingResponse(_relayed(renderer, started, done, ending, tap), **_sse(started))


def _sse(started: Started) -> dict[str, Any]:
    return {"media_type": "text/event-stream", "headers": {**_SSE_HEADERS, **started.headers}}


async def _rendered(renderer: Renderer, started: Started, done: bytes) -> AsyncIterator[bytes]:
    yield renderer.first()
    async for chunk in started.chunks:
        out = renderer.feed(chunk)
        if out is not None:
            yield out
    if done:
        yield done


_NOT_CONTENT = frozenset({"start", "start-step"})
# What a relayed (passed-through) answer still takes from the generation's chunks.
_RELAY_ENDINGS = frozenset({"error", "abort"})


async def _relayed(
    renderer: Renderer, started: Started, done: bytes, relay_done: bytes, tap: WireTap
) -> AsyncIterator[bytes]:
    # One buffer, two writers: the provider's tap (synchronously, as it reads each line) and a task
    # following the generation's chunks. A line always precedes the chunks made from it, and the
    # terminal chunk comes after the record's commit, after every line. A list and an event, not
    # an asyncio.Queue: two appends per upstream event, whatever is here goes in one write.
    buffer: list[bytes | dict[str, Any] | None] = []
    ready = asyncio.Event()

    def put(item: bytes | dict[str, Any] | None) -> None:
        buffer.append(item)
        ready.set()

    tap.attach(put)

    async def follow() -> None:
        try:
            async for chunk in started.chunks:
                # Once the upstream's bytes are passed through (the tap opens before the first
                # content chunk is made), only how it ended matters: the rest is not queued.
                if tap.opened and chunk["type"] not in _RELAY_ENDINGS:
                    continue
                put(chunk)
        finally:
            put(None)

    follower = asyncio.create_task(follow())
    relaying = rendering = ended = False
    try:
        while not ended:
            if not buffer:
                ready.clear()
                await ready.wait()
            items = buffer[:]
            del buffer[:]
            out: list[bytes] = []
            for item in items:
                if item is None:
                    ended = True
                    break
                if isinstance(item, bytes):
                    if item == OPENED:
                        relaying = not rendering
                    elif relaying:
                        out.append(item)
                    continue
                if relaying:
                    if item["type"] in _RELAY_ENDINGS and (frame := renderer.feed(item)) is not None:
                        out.append(frame)
                    continue
                if not rendering and item["type"] not in _NOT_CONTENT:
                    # Not passed through (a cache copy, a joined request, a translated call): render.
                    rendering = True
                    tap.detach()
                    out.append(renderer.first())
                if rendering and (frame := renderer.feed(item)) is not None:
                    out.append(frame)
            if ended:
                if not relaying and not rendering:
                    out.append(renderer.first())
                out.append(relay_done if relaying else done)
            if out:
                yield b"".join(out)
    finally:
        tap.detach()
        follower.cancel()
