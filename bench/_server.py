"""A server for the streaming benchmark, run as its own process (uvicorn, one worker).

    python -m bench._server --mode genvault --db URL --port P --tps 1000 --tokens 2000
    python -m bench._server --mode bare --port P --tps 1000 --tokens 2000

    python -m bench._server --mode raw --db URL --rows one|turn --port P --tps 0 --tokens 20

`genvault` is `genvault serve`'s app (`create_app`) with the offline test model scripted to reply
with `--tokens` tokens, so every chat turn streams the same long reply. `bare` relays the same
test-model stream through the same translator and SSE framing with nothing else: no records,
no hub, no checkpoints. The difference between them is what persistence costs.

`raw` (`bench.floor`) is the bare relay plus the least a durable turn needs, written by hand
with no genvault code: the request's JSON parsed, one write before the model call (the pending
record) and one after its last chunk, before `finish` is sent (the final record), each
committed; on PostgreSQL an autocommit statement on an asyncpg pool (a synchronous commit).
`--rows one`: a single row, inserted then updated; `--rows turn`: the rows a chat turn stores
(chat, user message and its part, pending generation; then the generation's end, the reply and
its part, the chat freed) in tables with primary keys only: no foreign keys, CHECKs, triggers,
search or list indexes. On SQLite each end's statements run in one transaction on a connection
of its own thread, as aiosqlite runs genvault's.
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


_RAW_SCHEMA = {
    "one": """
CREATE TABLE IF NOT EXISTS raw_turns (id varchar PRIMARY KEY, chat_id varchar NOT NULL, message_id varchar NOT NULL,
    prompt text NOT NULL, status varchar NOT NULL, reply text, created_at timestamptz NOT NULL,
    finished_at timestamptz)""",
    "turn": """
CREATE TABLE IF NOT EXISTS raw_chats (id varchar PRIMARY KEY, user_id varchar NOT NULL, title varchar,
    last_seq int NOT NULL, active_generation_id varchar, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS raw_messages (chat_id varchar NOT NULL, id varchar NOT NULL, seq int NOT NULL,
    role varchar NOT NULL, generation_id varchar, created_at timestamptz NOT NULL, PRIMARY KEY (chat_id, id));
CREATE TABLE IF NOT EXISTS raw_parts (chat_id varchar NOT NULL, message_id varchar NOT NULL, position int NOT NULL,
    type varchar NOT NULL, text_text text, PRIMARY KEY (chat_id, message_id, position));
CREATE TABLE IF NOT EXISTS raw_generations (id varchar PRIMARY KEY, chat_id varchar, message_id varchar,
    model varchar NOT NULL, status varchar NOT NULL, request jsonb, result_text text, output_tokens int,
    created_at timestamptz NOT NULL, finished_at timestamptz)""",
}
_RAW_OPEN = {
    "one": "INSERT INTO raw_turns (id, chat_id, message_id, prompt, status, created_at) "
    "VALUES ($1, $2, $3, $4, 'pending', now())",
    "turn": """
WITH c AS (INSERT INTO raw_chats VALUES ($2, 'local', NULL, 1, $1, now(), now()) RETURNING id),
m AS (INSERT INTO raw_messages SELECT id, $3, 1, 'user', NULL, now() FROM c),
p AS (INSERT INTO raw_parts SELECT id, $3, 0, 'text', $4 FROM c)
INSERT INTO raw_generations (id, chat_id, message_id, model, status, request, created_at)
SELECT $1, id, $3, 'test-model', 'pending', '{}'::jsonb, now() FROM c""",
}
_RAW_FINISH = {
    "one": "UPDATE raw_turns SET status = 'complete', reply = $2, finished_at = now() WHERE id = $1",
    "turn": """
WITH g AS (UPDATE raw_generations SET status = 'complete', result_text = $2, output_tokens = $5, finished_at = now()
           WHERE id = $1 AND status = 'pending' RETURNING chat_id),
m AS (INSERT INTO raw_messages SELECT chat_id, $4, 2, 'assistant', $1, now() FROM g),
p AS (INSERT INTO raw_parts SELECT chat_id, $4, 0, 'text', $2 FROM g)
UPDATE raw_chats SET last_seq = 2, active_generation_id = NULL WHERE id = $3 AND EXISTS (SELECT 1 FROM g)""",
}


# SQLite: the same rows, a statement each, in one transaction (no data-modifying CTEs); named
# parameters, from the turn's values.
_RAW_SQLITE_OPEN = {
    "one": [
        "INSERT INTO raw_turns (id, chat_id, message_id, prompt, status, created_at) "
        "VALUES (:gen, :chat, :msg, :text, 'pending', :now)"
    ],
    "turn": [
        "INSERT INTO raw_chats VALUES (:chat, 'local', NULL, 1, :gen, :now, :now)",
        "INSERT INTO raw_messages VALUES (:chat, :msg, 1, 'user', NULL, :now)",
        "INSERT INTO raw_parts VALUES (:chat, :msg, 0, 'text', :text)",
        "INSERT INTO raw_generations (id, chat_id, message_id, model, status, request, created_at) "
        "VALUES (:gen, :chat, :msg, 'test-model', 'pending', '{}', :now)",
    ],
}
_RAW_SQLITE_FINISH = {
    "one": ["UPDATE raw_turns SET status = 'complete', reply = :reply, finished_at = :now WHERE id = :gen"],
    "turn": [
        "UPDATE raw_generations SET status = 'complete', result_text = :reply, output_tokens = :tokens, "
        "finished_at = :now WHERE id = :gen AND status = 'pending'",
        "INSERT INTO raw_messages VALUES (:chat, :reply_id, 2, 'assistant', :gen, :now)",
        "INSERT INTO raw_parts VALUES (:chat, :reply_id, 0, 'text', :reply)",
        "UPDATE raw_chats SET last_seq = 2, active_generation_id = NULL WHERE id = :chat",
    ],
}


class _RawSqlite:
    """One SQLite connection on a thread of its own (as aiosqlite's), WAL and `synchronous=NORMAL`
    as genvault's: each write a transaction of its own, committed there."""

    def __init__(self, path: str, rows: str) -> None:
        import concurrent.futures
        import sqlite3

        self._thread = concurrent.futures.ThreadPoolExecutor(1)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_RAW_SCHEMA[rows].replace("jsonb", "text").replace("timestamptz", "text"))

    def _write(self, statements: list[str], values: dict[str, Any]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        for statement in statements:
            self._db.execute(statement, values)
        self._db.execute("COMMIT")

    async def write(self, statements: list[str], values: dict[str, Any]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, statements, values)

    def close(self) -> None:
        self._thread.shutdown()
        self._db.close()


def raw_app(args: argparse.Namespace) -> Any:
    import contextlib
    import json
    import uuid
    from datetime import UTC, datetime

    from genvault.server.streaming import ui_message_stream_response

    model = LongReplyModel(args.tps, args.tokens, paced=not args.concurrent)
    sqlite = args.db.startswith("sqlite")
    store: Any = None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal store
        if sqlite:
            store = _RawSqlite(args.db.removeprefix("sqlite:///"), args.rows)
            yield
            store.close()
            return
        import asyncpg

        store = await asyncpg.create_pool(args.db, min_size=8, max_size=16)
        await store.execute(_RAW_SCHEMA[args.rows])
        yield
        await store.close()

    async def write(ending: bool, turn: dict[str, Any]) -> None:
        """The opening's or the finish's rows, committed."""
        if sqlite:
            statements = (_RAW_SQLITE_FINISH if ending else _RAW_SQLITE_OPEN)[args.rows]
            await store.write(statements, {**turn, "now": datetime.now(UTC).isoformat()})
            return
        if not ending:
            await store.execute(_RAW_OPEN[args.rows], turn["gen"], turn["chat"], turn["msg"], turn["text"])
        elif args.rows == "one":
            await store.execute(_RAW_FINISH["one"], turn["gen"], turn["reply"])
        else:
            params = (turn["gen"], turn["reply"], turn["chat"], turn["reply_id"], turn["tokens"])
            await store.execute(_RAW_FINISH["turn"], *params)

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        message = body["messages"][-1]
        turn = {"gen": uuid.uuid4().hex, "chat": body["id"], "msg": message["id"], "text": message["parts"][0]["text"]}
        await write(False, turn)

        async def stream() -> AsyncIterator[dict[str, Any]]:
            reply: list[str] = []
            async for chunk in bare_chunks(model):
                if chunk["type"] == "text-delta":
                    reply.append(chunk["delta"])
                elif chunk["type"] == "finish":  # the final record committed before the client is told
                    ending = {"reply": "".join(reply), "reply_id": f"msg_{turn['gen']}", "tokens": len(reply)}
                    await write(True, {**turn, **ending})
                yield chunk

        return ui_message_stream_response(stream(), compat="5.0.0")

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("genvault", "bare", "raw"), required=True)
    parser.add_argument("--rows", choices=tuple(_RAW_SCHEMA), default="one", help="raw: what the turn writes")
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
    app = {"genvault": genvault_app, "bare": bare_app, "raw": raw_app}[args.mode](args)
    if args.access_log:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", workers=1)
    else:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
