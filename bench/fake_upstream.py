"""A scripted fake upstream that speaks the OpenAI Chat Completions and Anthropic Messages wire
formats (and OpenAI Embeddings) on a real socket: what the gateway tests and `bench.gateway` put behind genvault (and
call directly, as the baseline).

By default each call answers `chunks` words, streamed as the real APIs stream them (or as one
JSON object when the request does not stream), with usage. `enqueue(...)` scripts the next
answers instead: recorded SSE transcripts, an error with a status and a body, or a stream that
pauses until a gate opens. Every request body is kept in `requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["Answer", "FakeUpstream"]


@dataclass
class Answer:
    """One scripted answer: `sse` bytes (sent in `pieces` parts, the gate awaited after the first
    `gate_after` of them), or an error `status` with a JSON `body`."""

    sse: bytes | None = None
    status: int = 200
    body: Any = None
    gate: asyncio.Event | None = None
    gate_after: int = 1
    pieces: int = 1


def _split(data: bytes, pieces: int) -> list[bytes]:
    events = [e + b"\n\n" for e in data.split(b"\n\n") if e.strip()]
    if pieces <= 1:
        return [b"".join(events)]
    return events


@dataclass
class FakeUpstream:
    chunks: int = 20
    requests: list[dict[str, Any]] = field(default_factory=list)
    queue: list[Answer] = field(default_factory=list)

    def enqueue(self, answer: Answer) -> None:
        self.queue.append(answer)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/healthz", lambda _request: JSONResponse({"status": "ok"})),
            ]
        )

    async def _scripted(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        body = json.loads(await request.body())
        self.requests.append(body)
        if not self.queue:
            return body, None
        answer = self.queue.pop(0)
        if answer.sse is None:
            headers = {"x-should-retry": "false"}
            return body, JSONResponse(answer.body, status_code=answer.status, headers=headers)
        parts = _split(answer.sse, 2 if answer.gate is not None else answer.pieces)

        async def send() -> AsyncIterator[bytes]:
            for index, part in enumerate(parts):
                if answer.gate is not None and index == answer.gate_after:
                    await answer.gate.wait()
                yield part

        return body, StreamingResponse(send(), media_type="text/event-stream")

    # -- OpenAI Chat Completions -----------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        body, scripted = await self._scripted(request)
        if scripted is not None:
            return scripted
        words = [f"w{i} " for i in range(self.chunks)]
        usage = {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}
        head = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body.get("model")}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        return StreamingResponse(self._chat_stream(head, words, usage), media_type="text/event-stream")

    @staticmethod
    async def _chat_stream(head: dict[str, Any], words: list[str], usage: dict[str, Any]) -> AsyncIterator[bytes]:
        base = {**head, "object": "chat.completion.chunk"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for word in words:
            yield chunk({"content": word})
        yield chunk({}, "stop")
        yield b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    # -- OpenAI Embeddings -------------------------------------------------------------------------

    async def _embeddings(self, request: Request) -> Response:
        body, scripted = await self._scripted(request)
        if scripted is not None:
            return scripted
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        size = int(body.get("dimensions") or 8)
        data = []
        for index, text in enumerate(inputs):
            # A vector anyone can recompute from the text: (length + i) / (i + 1) at position i.
            vector = [(len(str(text)) + i) / (i + 1) for i in range(size)]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(text).split()) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    # -- Anthropic Messages ------------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        body, scripted = await self._scripted(request)
        if scripted is not None:
            return scripted
        words = [f"w{i} " for i in range(self.chunks)]
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "stop_sequence": None,
        }
        if not body.get("stream"):
            usage = {"input_tokens": 5, "output_tokens": len(words)}
            content = [{"type": "text", "text": "".join(words)}]
            return JSONResponse({**message, "content": content, "stop_reason": "end_turn", "usage": usage})
        return StreamingResponse(self._messages_stream(message, words), media_type="text/event-stream")

    @staticmethod
    async def _messages_stream(message: dict[str, Any], words: list[str]) -> AsyncIterator[bytes]:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
        yield event("message_start", {"type": "message_start", "message": start})
        block = {"type": "text", "text": ""}
        yield event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        for word in words:
            delta = {"type": "text_delta", "text": word}
            yield event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
        delta = {"stop_reason": "end_turn", "stop_sequence": None}
        yield event("message_delta", {"type": "message_delta", "delta": delta, "usage": {"output_tokens": len(words)}})
        yield event("message_stop", {"type": "message_stop"})


def main() -> None:
    """`python -m bench.fake_upstream --port P [--chunks N]`: serve it (uvloop + httptools)."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=50)
    args = parser.parse_args()
    app = FakeUpstream(chunks=args.chunks).app()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
    )


if __name__ == "__main__":
    main()
