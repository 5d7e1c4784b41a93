"""Benchmark: what webhooks cost a generation, and how fast the outbox drains.

    .venv/bin/python -m bench.webhooks [--db sqlite --db postgres] [--generations 60] [--rounds 3]

Per round, on a fresh database, three contenders each run `--generations` text generations one
after another (offline test model, no token delay) through `Vault.generate` + `wait`:
`none` (no webhook: the anchor), `subscribed` (one webhook on `generation.completed`, its worker
off: the finalize's outbox insert alone) and `delivering` (the same with the worker on, POSTing to
a local receiver in the same process). The order rotates per round; the table reports the median
round's generations/s and the ratio to `none` of the same round. `drain` is deliveries/s of a
worker sending a backlog of `--generations` events to the local receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import DATABASES, fresh_database, machine, write_result
from genvault.providers import testmodel as tm
from genvault.settings import Settings
from genvault.vault import Vault

CONTENDERS = ("none", "subscribed", "delivering")


async def _receiver() -> tuple[Any, str, list[int]]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    seen: list[int] = []

    async def hook(request: Request) -> Response:
        await request.body()
        seen.append(1)
        return Response(status_code=204)

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(12000):  # up to 120 s on a loaded machine
        if server.started:
            break
        await asyncio.sleep(0.01)
    return (server, task), f"http://127.0.0.1:{port}/hook", seen


async def _vault(url: str, data_dir: Path, *, deliver: bool) -> Vault:
    settings = Settings(database_url=url, data_dir=data_dir, test_model_tps=0, webhook_poll_seconds=0.05)
    vault = Vault(settings, providers={"offline": tm.TestProvider(tokens_per_second=0)}, deliver_webhooks=deliver)
    await vault.start()
    return vault


async def _generations_per_second(vault: Vault, count: int, tag: str) -> float:
    start = time.perf_counter()
    for n in range(count):
        # Distinct prompts: the dedup cache would answer a repeated one without a finalize's work.
        await vault.wait((await vault.generate(f"{tag} question {n} {time.perf_counter_ns()}")).id)
    return count / (time.perf_counter() - start)


async def _round(db: str, count: int, order: list[str], hook_url: str, seen: list[int]) -> dict[str, float]:
    rates: dict[str, float] = {}
    async with fresh_database(db) as url:
        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            setup = await _vault(url, Path(tmp), deliver=False)
            await _generations_per_second(setup, 5, "warm")  # schema, pricing, first connections
            await setup.aclose()
            for name in order:
                vault = await _vault(url, Path(tmp), deliver=name == "delivering")
                hooks = await vault.webhooks.all()
                for hook in hooks:
                    await vault.webhooks.remove(hook.id)
                if name != "none":
                    await vault.webhooks.add(hook_url, ["generation.completed"])
                await vault.webhooks.refresh()
                rates[name] = await _generations_per_second(vault, count, name)
                await vault.aclose()
            # The drain: a backlog of `count` events, then one worker sends them all.
            vault = await _vault(url, Path(tmp), deliver=False)
            for hook in await vault.webhooks.all():
                await vault.webhooks.remove(hook.id)
            await vault.webhooks.add(hook_url, ["generation.completed"])
            before = len(seen)
            await _generations_per_second(vault, count, "backlog")
            start = time.perf_counter()
            while len(seen) - before < count:
                if await vault.webhooks.deliver_due() == 0:
                    if time.perf_counter() - start > 300:
                        raise RuntimeError(f"the backlog did not drain: {len(seen) - before} of {count} arrived")
                    await asyncio.sleep(0.01)
            rates["drain"] = count / (time.perf_counter() - start)
            await vault.aclose()
    return rates


async def run(*, dbs: list[str], count: int, rounds: int) -> dict[str, Any]:
    (server, task), hook_url, seen = await _receiver()
    results: dict[str, Any] = {}
    try:
        for db in dbs:
            per_round = []
            for index in range(rounds):
                order = CONTENDERS[index % 3 :] + CONTENDERS[: index % 3]
                per_round.append(await _round(db, count, list(order), hook_url, seen))
                print(f"{db} round {index + 1}: {per_round[-1]}", flush=True)
            table = {}
            for name in (*CONTENDERS, "drain"):
                values = [r[name] for r in per_round]
                table[name] = {"median_per_s": statistics.median(values), "runs": values}
            for name in ("subscribed", "delivering"):
                table[name]["ratio_to_none"] = statistics.median([r[name] / r["none"] for r in per_round])
            results[db] = table
    finally:
        server.should_exit = True
        await task
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES)
    parser.add_argument("--generations", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dbs = args.db or list(DATABASES)

    async def go() -> None:
        results = await run(dbs=dbs, count=args.generations, rounds=args.rounds)
        data = {"machine": await machine(), "generations": args.generations, "rounds": args.rounds, "results": results}
        path = write_result("webhooks", data)
        for db, table in results.items():
            print(f"{db}:")
            for name, row in table.items():
                extra = f"  ×{row['ratio_to_none']:.2f} of none" if "ratio_to_none" in row else ""
                print(f"  {name:11} {row['median_per_s']:8.1f}/s{extra}")
        print(f"wrote {path}")

    asyncio.run(go())


if __name__ == "__main__":
    main()
