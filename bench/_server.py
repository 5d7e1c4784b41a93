"""A server for the streaming benchmark, run as its own process (uvicorn, one worker).

    python -m bench._server --mode genvault --db URL --port P --tps 1000 --tokens 2000
    python -m bench._server --mode bare --port P --tps 1000 --tokens 2000

`genvault` is `genvault serve`'s app (`create_app`) with the offline test model scripted to reply
with `--tokens` tokens, so every chat turn streams the same long reply. `bare` relays the same
test-model stream through the same translator and SSE framing with nothing else: no records,
no hub, no checkpoints. The difference between them is what persistence costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from genvault.providers.base import ModelRequest, ProviderEvent
from genvault.providers.testmodel import TestProvider, text

WORDS = ("amber", "birch", "canyon", "delta", "ember", "fjord", "glacier", "harbor", "island", "juniper")


def long_reply(tokens: int) -> str:
    return "".join(f" {WORDS[i % len(WORDS)]}" for i in range(tokens)).lstrip()


class Pacer:
    """The test model's sleep, paced against a deadline: at 20,000 tokens/s a plain
    `asyncio.sleep(50 µs)` per token oversleeps; this sleeps only when ahead of schedule."""

    def __init__(self) -> None:
        self._next: float | None = None

    async def __call__(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next = (now if self._next is None else self._next) + seconds
        await asyncio.sleep(max(0.0, self._next - now))


class LongReplyModel(TestProvider):
    """The offline test model, replying to every request with the same `tokens`-token text."""

    def __init__(self, tokens_per_second: float, tokens: int, *, paced: bool = True) -> None:
        super().__init__(tokens_per_second)
        self.reply = long_reply(tokens)
        # `paced=False`: plain `asyncio.sleep` per token, for many concurrent slow streams (a
        # Pacer's one deadline is for one fast stream at a time).
        self.paced = paced

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        if self.paced:
            self._sleep = Pacer()
        self.enqueue(text(self.reply))
        self.calls.clear()  # a long benchmark must not keep every request
        async for event in super().stream(request):
            yield event


def genvault_app(args: argparse.Namespace) -> Any:
    from genvault import Settings, Vault
    from genvault.server import create_app

    settings = Settings(
        database_url=args.db, data_dir=Path(args.data_dir), checkpoint_ms=args.checkpoint_ms, test_model_tps=args.tps
    )
    vault = Vault(settings, providers={"offline": LongReplyModel(args.tps, args.tokens, paced=not args.concurrent)})
    return create_app(vault=vault, freeze_gc=True, warm_pool=True)  # as `genvault serve`


async def bare_chunks(model: TestProvider) -> AsyncIterator[dict[str, Any]]:
    """The model's reply as UI message stream chunks, through the same translator genvault uses,
    and nothing else: the bare relay's stream."""
    from genvault.translate import ChunkTranslator

    translator = ChunkTranslator()
    yield {"type": "start", "messageId": "msg_bare"}
    for chunk in translator.start_step():
        yield chunk
    async for event in model.stream(ModelRequest(model="test-model", messages=[])):
        for chunk in translator.translate(event):
            yield chunk
    for chunk in translator.finish_step():
        yield chunk
    yield {"type": "finish"}


def bare_app(args: argparse.Namespace) -> Any:
    from genvault.server.streaming import ui_message_stream_response

    model = LongReplyModel(args.tps, args.tokens, paced=not args.concurrent)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        await request.body()

        return ui_message_stream_response(bare_chunks(model), compat="5.0.0")

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("genvault", "bare"), required=True)
    parser.add_argument("--db")
    parser.add_argument("--data-dir", default=".")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tps", type=float, default=1000)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--checkpoint-ms", type=int, default=250)
    parser.add_argument("--access-log", action="store_true", help="uvicorn's access log on, as `genvault serve` has it")
    parser.add_argument("--concurrent", action="store_true", help="many streams at once: unpaced sleeps")
    args = parser.parse_args()
    if probe := os.environ.get("BENCH_MEMORY_PROBE"):
        from bench._memprobe import install

        install(probe, int(os.environ.get("BENCH_MEMORY_PROBE_FRAMES", "0")))
    app = genvault_app(args) if args.mode == "genvault" else bare_app(args)
    if args.access_log:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", workers=1)
    else:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
