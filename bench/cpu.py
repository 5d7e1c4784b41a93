"""CPU per operation of the library's hot paths, in one process: how the fixes were measured.

    .venv/bin/python -m bench.cpu append [--db sqlite|postgres] [--n 2000]
    .venv/bin/python -m bench.cpu page   [--db sqlite|postgres] [--n 2000]
    .venv/bin/python -m bench.cpu stream [--db sqlite|postgres] [--n 3] [--tokens 2000] [--tps 1000]
                                         [--checkpoint-ms 250]
    .venv/bin/python -m bench.cpu turn   [--db sqlite|postgres] [--n 300] [--tokens-turn 20] [--existing]
                                         [--profile FILE] [--callgrind]
    .venv/bin/python -m bench.cpu gateway [--db sqlite|postgres] [--n 300] [--stream] [--profile FILE]
    .venv/bin/python -m bench.cpu slow   [--db sqlite|postgres] [--n 50] [--tokens 200] [--callgrind]
                                         [--checkpoint-ticks 5]

`append`: `Vault.append_messages` of the bench turn (validation off), after 300 warm-up appends.
`page`: `Vault.chat_messages(limit=50)` of a 200-message chat. Both report the process's CPU time
(user + system, all threads: aiosqlite's too) and wall time per operation; on PostgreSQL the
server's CPU is not included.

`stream`: a chat turn of the offline test model's `--tokens`-token reply at `--tps` tokens/s
(0: as fast as it goes), consumed as SSE bytes in this process, beside two baselines on the same
model: `bare` (the stream through the translator and SSE encoding, nothing stored) and `bare+hub`
(the same, handed to the consumer through the in-process hub as genvault's response gets it).
CPU per token is the process's CPU over the turns / tokens. No HTTP: `bench.streaming` measures
the whole server.

`turn`: `POST /api/chat` through the ASGI app (`create_app`, in process, httpx's ASGI transport),
a `--tokens-turn`-token reply of the offline test model at full speed, read to its end; each turn a
new chat's first (or, with `--existing`, the second turn of a chat that holds one), beside
`bare`, the bare relay's app (`bench._server.bare_app`) answering the same POST. CPU per turn is
the whole process's (client included). `--profile FILE`: the genvault turns under cProfile (CPU
clock), saved to FILE, with the top costs and each package's share printed.

`turn --callgrind` (default `--n 100`): instructions per turn instead of time, run under
callgrind with instrumentation off at the start and one file per thread:

    cd /tmp && PYTHONHASHSEED=0 PYTHONPATH=TREE/src:TREE valgrind --tool=callgrind \
        --instr-atstart=no --separate-threads=yes --callgrind-out-file=OUT \
        TREE/.venv/bin/python -m bench.cpu turn --callgrind --n 100
    .venv/bin/python -m bench.cgturns OUT --n 100

Three apps on the same httpx ASGI transport in one process: the *floor* (a raw ASGI app that
reads the body and answers 200 with an empty body: the client and the transport alone), the bare
relay and genvault. After 20 warm-ups of each, `callgrind_control -i on`, then `--n` requests of
each in turn with a dump after each (the garbage collector frozen and its young threshold raised
before, as `genvault serve` sets them) (`callgrind_control -d floor|bare|genvault`: one dump part
each, one file per thread), then `-i off`. The timers are quietened as in docs/benchmarks.md
"liteturn4" (checkpoint interval 60 s, webhook poll and limits refresh 3,600 s, lease 600 s):
under valgrind a turn takes ~50x its wall time, and those loops' work would follow the wall time.
So does the search index's catch-up (once a second, `vault.SEARCH_CATCH_UP_SECONDS`): its timer
is set to an hour and the harness runs `Searcher.catch_up` after every 10th genvault turn
(`SEARCH_EVERY`), so its work is counted, the same in every sitting (with the timer, a turn
took as many catch-ups as its wall time under that sitting's load allowed).
`bench.cgturns OUT` prints instructions per turn per phase and thread (thread 1: the event loop)
and the genvault/bare ratios. Compare trees only side by side (started together): a turn's
first-token mark depends on its wall time, so the same code's genvault count moves by a few per
cent between sittings; the floor and the bare relay move by < 2 %.

`gateway`: `POST /v1/chat/completions` (model `openai/fake-model`) through the ASGI app in
process, answered by the fake upstream (`bench.fake_upstream`, 50 words, its own process), read
to its end, non-streamed (or `--stream`ed); each call a record. CPU per call is this process's
(client included, the upstream's not); `direct` is the same POST sent to the upstream itself by
this process's client (the client's share of the anchor).

`slow`: `--n` concurrent `POST /api/chat` turns through the ASGI app (`create_app`: the hot route,
`server/hot_route.py`), each a `--tokens`-token reply of the offline test model, the server's
`send` a plain coroutine that takes the bytes (as uvicorn's writes to its transport), no client.
The replies are paced by a shared tick instead of the clock: each tick releases one token of every
stream, and the next waits until every generation waits again and every response has sent every
token so far. So each token finds its response idle, as at 20 tokens/s, however slowly the process
runs (under valgrind too), and the instructions per token do not depend on the machine's load.
The checkpoints follow the tick too: every `--checkpoint-ticks` ticks (default 5: 250 ms at
20 tokens/s; 0: none) the ticker flushes the checkpoint writer while every generation waits, so
each flush writes 5 tokens of every stream, as the writer's own 250 ms loop would at that pace
(that loop and the per-second loops are slowed to 60 s: they follow wall time). CPU per token
is the whole process's over one round after a warm-up round, with `gc.freeze()` and the young
threshold as `genvault serve` sets them; `--callgrind` switches callgrind's instrumentation on for
that round only (run under `valgrind --tool=callgrind --instr-atstart=no`; docs/benchmarks.md,
"direct").

Runs on uvloop (`--loop asyncio` for the standard loop); a PostgreSQL run uses a fresh database.
Nothing is written to `bench/results`: these are the micro-runs behind the fixes table in
docs/benchmarks.md, whose rows name the command.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import _conversation as conv
from bench._common import DATABASES, LOOPS, fresh_database, run_on
from bench._server import LongReplyModel, bare_chunks

USER = "bench-user"


Row = dict[str, Any]


async def _timed(label: str, count: int, unit: str, op: Callable[[], Awaitable[Any]], times: int) -> Row:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(times):
        await op()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    row = {"what": label, "unit": unit, "cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6}
    print(f"{label:10} CPU {row['cpu_us']:9.1f} µs/{unit}   wall {row['wall_us']:9.1f} µs/{unit}")
    return row


async def _vault(url: str, tmp: str, checkpoint_ms: int = 250, *, quiet: bool = False, **providers: Any) -> Any:
    """A started Vault; `quiet`: without its per-second loops (webhook poll, limits refresh, lease
    renewal), whose work would follow the run's wall time rather than what it measures."""
    from genvault import Settings, Vault

    loops = {"webhook_poll_seconds": 3600, "limits_refresh_seconds": 3600, "lease_seconds": 600} if quiet else {}
    settings = Settings(database_url=url, data_dir=Path(tmp), checkpoint_ms=checkpoint_ms, **loops)
    vault = Vault(settings, providers=providers or None)
    await vault.start()
    await vault.ensure_user(USER)
    return vault


async def _filled_chat(vault: Any, turns: int) -> str:
    """A new chat holding `turns` bench turns, then planner statistics (this PostgreSQL runs
    without autovacuum). Returns its id."""
    chat = await vault.create_chat(user_id=USER)
    for _ in range(turns):
        await vault.append_messages(chat.id, conv.genvault_turn(), user_id=USER, validate=False)
    if vault.store.dialect == "postgresql":
        async with vault.store.write() as conn:
            await conn.exec_driver_sql("ANALYZE")
    return str(chat.id)


async def append(url: str, n: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        vault = await _vault(url, tmp)
        chat_id = await _filled_chat(vault, 300)  # doubles as the warm-up
        turns = iter([conv.genvault_turn() for _ in range(n)])

        async def one() -> None:
            await vault.append_messages(chat_id, next(turns), user_id=USER, validate=False)

        row = await _timed("append", n, "turn", one, n)
        await vault.aclose()
    return [row]


async def page(url: str, n: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        vault = await _vault(url, tmp)
        chat_id = await _filled_chat(vault, 100)

        async def one() -> None:
            await vault.chat_messages(chat_id, user_id=USER, limit=50)

        for _ in range(200):
            await one()
        row = await _timed("page", n, "read", one, n)
        await vault.aclose()
    return [row]


async def stream(url: str, turns: int, tokens: int, tps: float, checkpoint_ms: int = 250) -> list[Row]:
    from genvault.ids import new_id
    from genvault.server.streaming import _sse
    from genvault.streams import MemoryHub

    bare_model = LongReplyModel(tps, tokens)
    hub = MemoryHub()

    async def drain(source: AsyncIterator[dict[str, Any]]) -> None:
        async for _ in _sse(source, "5.0.0", None):
            pass

    async def bare() -> None:
        await drain(bare_chunks(bare_model))

    async def bare_hub() -> None:
        stream_id = new_id("s")
        await hub.open(stream_id)

        async def produce() -> None:
            async for chunk in bare_chunks(bare_model):
                hub.publish_nowait(stream_id, chunk)
            await hub.close(stream_id)

        producer = asyncio.create_task(produce())
        await drain(hub.follow(stream_id))
        await producer

    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        vault = await _vault(url, tmp, checkpoint_ms, offline=LongReplyModel(tps, tokens))

        async def genvault() -> None:
            message = {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": new_id("q")}]}
            turn = await vault.chat(new_id("chat"), message=message, user_id=USER)
            following = vault.follow_here(turn.generation.id, user_id=None)
            assert following is not None
            await drain(following)
            final = await vault.wait(turn.generation.id, user_id=USER)
            assert final.status == "complete", final.error

        rows = []
        for label, op in (("bare", bare), ("bare+hub", bare_hub), ("genvault", genvault)):
            await op()  # warm-up
            rows.append(await _timed(label, turns * tokens, "token", op, turns))
        await vault.aclose()
    return rows


async def turn(
    url: str, turns: int, tokens: int, *, existing: bool = False, profile: str | None = None, callgrind: bool = False
) -> list[Row]:
    import httpx

    from bench._server import bare_app
    from genvault.ids import new_id
    from genvault.server import create_app

    def body(chat_id: str) -> dict[str, Any]:
        message = {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": new_id("q")}]}
        return {"id": chat_id, "messages": [message], "trigger": "submit-message"}

    async def post(client: httpx.AsyncClient, chat_id: str) -> None:
        async with client.stream("POST", "/api/chat", json=body(chat_id)) as response:
            assert response.status_code == 200, await response.aread()
            async for _ in response.aiter_bytes():
                pass

    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        if callgrind:  # the timers quietened: under valgrind a turn takes ~50x its wall time
            import genvault.vault

            # The search index's catch-up too (once a second: one per turn or two under valgrind,
            # as many as the sitting's load made it): run every `SEARCH_EVERY` turns below instead.
            genvault.vault.SEARCH_CATCH_UP_SECONDS = 3600.0
            vault = await _vault(url, tmp, 60_000, quiet=True, offline=LongReplyModel(0, tokens))
        else:
            vault = await _vault(url, tmp, offline=LongReplyModel(0, tokens))
        app = create_app(vault=vault)
        bare = bare_app(argparse.Namespace(tps=0, tokens=tokens, concurrent=False))
        genvault_client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
        bare_client = httpx.AsyncClient(transport=httpx.ASGITransport(bare), base_url="http://t")
        chats = [new_id("chat") for _ in range(turns + 30)]
        if existing:  # each chat's first turn before: the measured turn is its second
            for chat_id in chats:
                await post(genvault_client, chat_id)
                await _idle(vault)
        ids = iter(chats)

        done = 0

        async def one() -> None:
            nonlocal done
            await post(genvault_client, next(ids))
            await _idle(vault)
            done += 1
            if callgrind and done % SEARCH_EVERY == 0:
                await vault.searcher.catch_up()

        async def one_bare() -> None:
            await post(bare_client, "bare")

        if callgrind:
            floor_client = httpx.AsyncClient(transport=httpx.ASGITransport(_floor_app), base_url="http://t")

            async def one_floor() -> None:
                await post(floor_client, "floor")

            rows = await _instrumented(turns, [("floor", one_floor), ("bare", one_bare), ("genvault", one)])
            await floor_client.aclose()
        else:
            rows = await _beside(("bare", one_bare), one, turns, "turn", profile)
        await genvault_client.aclose()
        await bare_client.aclose()
        await vault.aclose()
    return rows


# `turn --callgrind`: the search index caught up every this many genvault turns (its timer's
# work, counted the same in every sitting).
SEARCH_EVERY = 10


async def _floor_app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    """The floor: a raw ASGI app that reads the request's body and answers 200 with none (the
    client and the transport alone)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _instrumented(n: int, phases: list[tuple[str, Callable[[], Awaitable[None]]]]) -> list[Row]:
    """`turn --callgrind`: 20 warm-ups of each phase, then callgrind's instrumentation on for `n`
    operations of each phase in turn, its counters dumped (`callgrind_control -d PHASE`) after
    each, so each phase's instructions are one dump part (one file per thread with
    `--separate-threads=yes`); `bench.cgturns` reads them."""
    import os
    import subprocess

    def callgrind(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)

    import gc

    from genvault.server.app import YOUNG_COLLECTION_THRESHOLD

    for _ in range(20):
        for _, op in phases:
            await op()
    # The garbage collector as `genvault serve` sets it (`create_app(freeze_gc=True)`): what
    # exists now frozen, the young generation's threshold raised. Without it a full collection
    # (~10-20 M instructions, by the objects alive) fell into whichever phase the allocation
    # counts happened to reach it in: the bare relay's read 3.2 M a turn in one run, 3.8 M in
    # another.
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    callgrind("-z")  # the warm-ups' counts (none while instrumentation is off) out of the first part
    callgrind("-i", "on")
    rows = []
    for label, op in phases:
        row = await _timed(label, n, "turn (under callgrind)", op, n)
        callgrind("-d", label)
        rows.append(row)
    callgrind("-i", "off")
    return rows


async def gateway(url: str, calls: int, *, stream: bool = False, profile: str | None = None) -> list[Row]:
    import os
    import subprocess
    import sys

    import httpx

    from bench._proc import ROOT, free_port, wait_healthy
    from genvault import Settings, Vault
    from genvault.ids import new_id
    from genvault.server import create_app

    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "bench.fake_upstream", "--port", str(port), "--chunks", "50"]
    os.environ.setdefault("OPENAI_API_KEY", "sk-upstream")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220

    async def post(client: httpx.AsyncClient, model: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": new_id("q")}], "stream": stream}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200, await response.aread()
            async for _ in response.aiter_bytes():
                pass

    try:
        wait_healthy(upstream, proc, timeout=60)
        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            settings = Settings(database_url=url, data_dir=Path(tmp), openai_base_url=f"{upstream}/v1")
            vault = Vault(settings)
            await vault.start()
            app = create_app(vault=vault)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
            direct = httpx.AsyncClient(base_url=upstream)

            async def one() -> None:
                await post(client, "openai/fake-model")
                await _idle(vault)

            async def one_direct() -> None:
                await post(direct, "fake-model")

            rows = await _beside(("direct", one_direct), one, calls, "call", profile)
            await client.aclose()
            await direct.aclose()
            await vault.aclose()
    finally:
        proc.terminate()
        proc.wait()
    return rows


class _Ticker:
    """The `slow` mode's pace: the model's sleep before each token waits for the next tick."""

    def __init__(self, streams: int, checkpoint: Callable[[], Awaitable[Any]] | None, every: int) -> None:
        self.streams = streams
        self.checkpoint, self.every = checkpoint, every
        self.waiting = 0  # generations waiting for the tick
        self.sent = 0  # text-delta events sent, all streams
        self.target = 0  # what `sent` reaches when every response caught up with the last tick
        self.tick: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready: asyncio.Future[None] | None = None

    def check(self) -> None:
        ready = self.ready
        if ready is not None and not ready.done() and self.waiting == self.streams and self.sent >= self.target:
            ready.set_result(None)

    async def sleep(self, _seconds: float) -> None:
        self.waiting += 1
        self.check()
        await self.tick

    async def run(self, ticks: int) -> None:
        loop = asyncio.get_running_loop()
        for n in range(1, ticks + 1):
            self.ready = loop.create_future()
            self.check()
            await self.ready
            if self.checkpoint is not None and n % self.every == 0:
                await self.checkpoint()
            self.waiting, self.target = 0, n * self.streams
            tick, self.tick = self.tick, loop.create_future()
            tick.set_result(None)


async def slow(url: str, streams: int, tokens: int, *, checkpoint_ticks: int = 5, callgrind: bool = False) -> list[Row]:
    import gc
    import json
    import os
    import subprocess

    from bench._server import long_reply
    from genvault.ids import new_id
    from genvault.server import create_app
    from genvault.server.app import YOUNG_COLLECTION_THRESHOLD

    # What the route reads of uvicorn's scope.
    headers = [(b"content-type", b"application/json"), (b"host", b"t")]
    scope = {"type": "http", "method": "POST", "path": "/api/chat", "headers": headers, "query_string": b""}
    model = LongReplyModel(20, tokens, paced=False)
    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        vault = await _vault(url, tmp, 60_000, quiet=True, offline=model)
        app = create_app(vault=vault)
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def turn(ticker: _Ticker) -> None:
            message = {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": new_id("q")}]}
            body = json.dumps({"id": new_id("chat"), "messages": [message], "trigger": "submit-message"})
            requests = [{"type": "http.request", "body": body.encode(), "more_body": False}]

            async def receive() -> dict[str, Any]:
                if requests:
                    return requests.pop()
                await never  # the client stays
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                if message.get("body"):
                    ticker.sent += message["body"].count(b'"type":"text-delta"')
                    ticker.check()

            await app({**scope, "state": {}}, receive, send)

        async def round_of(length: int) -> None:
            model.reply = long_reply(length)
            flush = vault.engine.liveness.flush if checkpoint_ticks else None
            ticker = _Ticker(streams, flush, checkpoint_ticks)
            model._sleep = ticker.sleep
            ticks = asyncio.ensure_future(ticker.run(length))
            await asyncio.gather(*[turn(ticker) for _ in range(streams)])
            await ticks
            await _idle(vault)

        await round_of(20)  # warm-up
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])

        def instrument(state: str) -> None:
            if callgrind:
                command = ["callgrind_control", "-i", state, str(os.getpid())]
                subprocess.run(command, check=True, capture_output=True)

        instrument("on")
        flushes = vault.engine.liveness.flushes
        main_thread = time.thread_time()
        row = await _timed("genvault", streams * tokens, "token", lambda: round_of(tokens), 1)
        main_thread = time.thread_time() - main_thread
        instrument("off")
        row["main_thread_cpu_us"] = main_thread / (streams * tokens) * 1e6
        row["checkpoints"] = vault.engine.liveness.flushes - flushes
        print(f"{'':10} main thread {row['main_thread_cpu_us']:9.1f} µs/token")
        gc.unfreeze()
        await vault.aclose()
    return [row]


async def _idle(vault: Any) -> None:
    """Until the turn's generation task ended (its finalize is part of the turn's cost)."""
    tasks = list(vault.engine._tasks.values())
    if tasks:
        await asyncio.wait(tasks)


async def _beside(
    baseline: tuple[str, Callable[[], Awaitable[Any]]],
    one: Callable[[], Awaitable[Any]],
    count: int,
    unit: str,
    profile: str | None,
) -> list[Row]:
    """After 30 warm-ups of each, the baseline's row, then genvault's: timed, or profiled into
    `profile`."""
    name, other = baseline
    for _ in range(30):  # warm-up
        await one()
        await other()
    first = await _timed(name, count, unit, other, count)
    if profile is None:
        return [first, await _timed("genvault", count, unit, one, count)]
    return [first, await _profiled(profile, count, one)]


async def _profiled(path: str, turns: int, op: Callable[[], Awaitable[Any]]) -> Row:
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    row = await _timed("genvault", turns, "turn (profiled)", op, turns)
    profiler.disable()
    profiler.dump_stats(path)
    stats = pstats.Stats(path)
    total = sum(tt for (_, _, tt, _, _) in stats.stats.values())  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for (filename, _, _), (_, _, tt, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        shares[_package(filename)] = shares.get(_package(filename), 0.0) + tt
    print(f"profiled CPU {total / turns * 1e3:.2f} ms/turn; share by package (own time):")
    for name, tt in sorted(shares.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {name:28} {tt / total:6.1%}")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats("genvault", 40)
    return row


def _package(filename: str) -> str:
    """A profiled function's package: `genvault.store`, `sqlalchemy`, `asyncio`, ..."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/src/genvault/" in filename:
        rest = filename.split("/src/genvault/", 1)[1].split("/")
        return "genvault." + (rest[0].removesuffix(".py") if len(rest) > 1 or rest[0] else "")
    if "/bench/" in filename:
        return "bench"
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    return "stdlib:" + filename.rsplit("/", 1)[-1].removesuffix(".py")


async def run(args: argparse.Namespace) -> list[Row]:
    async with fresh_database(args.db) as url:
        if args.what == "turn":
            n = args.n or (100 if args.callgrind else 300)
            return await turn(
                url, n, args.tokens_turn, existing=args.existing, profile=args.profile, callgrind=args.callgrind
            )
        if args.what == "gateway":
            return await gateway(url, args.n or 300, stream=args.stream, profile=args.profile)
        if args.what == "slow":
            return await slow(
                url, args.n or 50, args.tokens, checkpoint_ticks=args.checkpoint_ticks, callgrind=args.callgrind
            )
        if args.what == "append":
            return await append(url, args.n or 2000)
        if args.what == "page":
            return await page(url, args.n or 2000)
        return await stream(url, args.n or 3, args.tokens, args.tps, args.checkpoint_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("append", "gateway", "page", "slow", "stream", "turn"))
    parser.add_argument("--db", choices=DATABASES, default="sqlite")
    parser.add_argument("--n", type=int, help="operations (append, page: 2000) or turns (stream: 3, slow: 50)")
    parser.add_argument("--tokens", type=int, default=2000, help="stream, slow: tokens per reply")
    parser.add_argument("--tps", type=float, default=1000, help="stream: tokens/s (0: unpaced)")
    parser.add_argument("--checkpoint-ms", type=int, default=250, help="stream: checkpoint interval")
    parser.add_argument("--tokens-turn", type=int, default=20, help="turn: tokens per reply")
    parser.add_argument("--existing", action="store_true", help="turn: the second turn of a chat, not the first")
    parser.add_argument("--stream", action="store_true", help="gateway: streamed calls")
    parser.add_argument("--profile", help="turn: profile genvault's turns into this file (cProfile, CPU clock)")
    parser.add_argument("--checkpoint-ticks", type=int, default=5, help="slow: ticks between checkpoints (0: none)")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="slow: instrument the measured round only; turn: floor, bare and genvault phases, each dumped",
    )
    parser.add_argument("--loop", choices=LOOPS, default="uvloop", help="event loop (default: uvloop)")
    args = parser.parse_args()
    run_on(args.loop, run(args))


if __name__ == "__main__":
    main()
