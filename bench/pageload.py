"""Benchmark 2, history page load: the latest 50 messages with all their parts, by chat size.

    .venv/bin/python -m bench.pageload [--db sqlite --db postgres] [--sizes 100,1000,10000,100000]
                                       [--seconds 2] [--no-peers] [--interleave] [--out-dir DIR]

Chats are filled by bulk inserts (the same turn repeated) so a 100k-message chat takes seconds
to build. genvault reads through `Vault.chat_messages` (one statement: ownership check, page window and
parts, by index probes); the raw-SQL baseline runs two indexed queries by hand (the page's
messages, then their parts) without building UIMessages. Peers: the Agents SDK's
`get_items(limit=50)`, and langchain-postgres's `aget_messages()`, which has no page read and
returns the whole history (its column shows what that costs).

`--interleave`: the contenders take turns read by read (the order rotating) instead of in five
rounds of `seconds / 5` each, so a burst of load on a shared machine lands on all of them alike;
the default keeps the published figures comparable.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench import _conversation as conv
from bench._common import DATABASES, LOOPS, fresh_database, machine, ratio, run_on, summarize, write_result
from bench._contenders import USER, AgentsSession, Contender, Genvault, LangchainPostgres, RawSQL, peers_available

PAGE = 50
ROUNDS = 5
BATCH = 5000


def _cycle(make: Any, count: int) -> list[Any]:
    """`count` messages taken from repeated turns, in order."""
    out: list[Any] = []
    while len(out) < count:
        out.extend(make())
    return out[:count]


async def _seed_genvault(contender: Genvault, chat_id: str, count: int) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert, update

    from genvault.store.parts import part_to_row
    from genvault.store.schema import chats, messages, parts

    now = datetime.now(UTC)
    items = _cycle(conv.genvault_turn, count)
    for start in range(0, count, BATCH):
        chunk = items[start : start + BATCH]
        message_rows = [
            {
                "chat_id": chat_id,
                "id": m["id"],
                "seq": start + i + 1,
                "user_id": USER,
                "role": m["role"],
                "created_at": now,
            }
            for i, m in enumerate(chunk)
        ]
        part_rows = [
            {**part_to_row(p), "chat_id": chat_id, "message_id": m["id"], "position": pos, "user_id": USER}
            for m in chunk
            for pos, p in enumerate(m["parts"])
        ]
        async with contender.vault.store.write() as conn:
            await conn.execute(insert(messages), message_rows)
        if contender.vault.store.dialect == "postgresql":
            # Fresh tables have no statistics: the foreign-key checks of the parts insert would
            # scan `messages` row by row (quadratic load time) until PostgreSQL learns its size.
            async with contender.vault.store.write() as conn:
                await conn.exec_driver_sql("ANALYZE messages")
        async with contender.vault.store.write() as conn:
            await conn.execute(insert(parts), part_rows)
    async with contender.vault.store.write() as conn:
        await conn.execute(update(chats).where(chats.c.id == chat_id).values(last_seq=count))


async def _seed_langchain(contender: LangchainPostgres, writer: int, count: int) -> None:
    from langchain_core.messages import message_to_dict

    conn = contender.conns[writer]
    items = _cycle(conv.langchain_turn, count)
    async with conn.cursor() as cursor:
        sql = f"COPY {contender.table} (session_id, message) FROM STDIN"
        async with cursor.copy(sql) as copy:
            for message in items:
                await copy.write_row((contender.session_ids[writer], json.dumps(message_to_dict(message))))
    await conn.commit()


async def _seed_agents(contender: AgentsSession, writer: int, count: int) -> None:
    from sqlalchemy import insert

    session = contender.sessions[writer]
    first = conv.agents_turn()[:1]
    await session.add_items(first)  # creates the session row the messages reference
    items = _cycle(conv.agents_turn, count - 1)
    table = session._messages
    for start in range(0, len(items), BATCH):
        rows = [
            {"session_id": session.session_id, "message_data": json.dumps(item, separators=(",", ":"))}
            for item in items[start : start + BATCH]
        ]
        async with contender.engine.begin() as conn:
            await conn.execute(insert(table), rows)


async def _measure(contender: Contender, writer: int, seconds: float, expect: int, cap: int) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while (time.perf_counter() < deadline or len(samples) < 1) and len(samples) < cap:
        start = time.perf_counter()
        got = await contender.latest_page(writer, PAGE)
        samples.append(time.perf_counter() - start)
        if got != expect:
            raise AssertionError(f"{contender.name} read {got} messages, expected {expect}")
    return samples


async def _interleaved(
    contenders: list[Contender], writer: int, seconds: float, expects: dict[str, int], samples: dict[str, list[float]]
) -> None:
    """One read of each contender in turn (the order rotating) until `seconds` per contender
    have passed: every contender meets the same moments of the shared machine's load."""
    deadline = time.perf_counter() + seconds * len(contenders)
    turn = 0
    while time.perf_counter() < deadline and turn < 2000:
        shift = turn % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            start = time.perf_counter()
            got = await contender.latest_page(writer, PAGE)
            samples[contender.name].append(time.perf_counter() - start)
            if got != expects[contender.name]:
                raise AssertionError(f"{contender.name} read {got} messages, expected {expects[contender.name]}")
        turn += 1


async def run(
    *,
    dbs: list[str],
    sizes: list[int],
    seconds: float,
    peers: bool,
    interleave: bool = False,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for db in dbs:
        async with fresh_database(db) as url:
            genvault = Genvault()
            await genvault.setup(url, len(sizes))
            raw = RawSQL()
            await raw.setup(url, len(sizes))
            raw.chat_ids = genvault.chat_ids  # the same chats, read by hand-written SQL
            live: list[tuple[Contender, Any]] = [(genvault, _seed_genvault), (raw, None)]
            if peers and peers_available():
                if db == "postgres":
                    lc = LangchainPostgres()
                    await lc.setup(url, len(sizes))
                    live.append((lc, _seed_langchain))
                agents = AgentsSession()
                await agents.setup(url, len(sizes))
                live.append((agents, _seed_agents))
            try:
                for index, size in enumerate(sizes):
                    started = time.perf_counter()
                    await _seed_genvault(genvault, genvault.chat_ids[index], size)
                    for contender, seed in live[2:]:
                        await seed(contender, index, size)
                    print(f"{db}: seeded {size} messages per contender in {time.perf_counter() - started:.1f} s")
                if db == "postgres":
                    # Fresh tables have no planner statistics yet; autovacuum gathers them soon after
                    # a real bulk load. Without them PostgreSQL may scan instead of using an index.
                    async with genvault.vault.store.write() as conn:
                        await conn.exec_driver_sql("ANALYZE")
                for index, size in enumerate(sizes):
                    expects = {c.name: size if c.name == "langchain-postgres" else min(PAGE, size) for c, _seed in live}
                    samples: dict[str, list[float]] = {c.name: [] for c, _seed in live}
                    for contender, _seed in live:  # warm-up
                        await _measure(contender, index, 0, expects[contender.name], 3)
                    if interleave:
                        await _interleaved([c for c, _seed in live], index, seconds, expects, samples)
                    # Rounds alternate the contenders, so a burst of load on the shared machine
                    # does not land on one of them only.
                    for round_index in range(0 if interleave else ROUNDS):
                        shift = round_index % len(live)
                        for contender, _seed in live[shift:] + live[:shift]:
                            samples[contender.name] += await _measure(
                                contender, index, seconds / ROUNDS, expects[contender.name], 2000 // ROUNDS
                            )
                    for contender, _seed in live:
                        stats = summarize(samples[contender.name])
                        results.append({"db": db, "size": size, "contender": contender.name, "latency_s": stats})
                        print(
                            f"{db:8} {size:>7} {contender.name:20} p50 {stats['p50'] * 1000:8.3f} ms "
                            f"p99 {stats['p99'] * 1000:8.3f} ms (n={stats['n']})"
                        )
            finally:
                for contender, _seed in live:
                    await contender.close()
    by_key = {(r["db"], r["size"], r["contender"]): r for r in results}
    for r in results:
        smallest = by_key.get((r["db"], sizes[0], r["contender"]))
        raw_row = by_key.get((r["db"], r["size"], "raw SQL"))
        r["vs_smallest_p50"] = ratio(r["latency_s"]["p50"], smallest["latency_s"]["p50"] if smallest else None)
        r["vs_raw_sql_p50"] = ratio(r["latency_s"]["p50"], raw_row["latency_s"]["p50"] if raw_row else None)
    data = {
        "params": {
            "dbs": dbs,
            "sizes": sizes,
            "page": PAGE,
            "seconds": seconds,
            "peers": peers,
            "interleave": interleave,
        },
        "machine": await machine(),
        "results": results,
    }
    write_result("pageload", data, out_dir)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--sizes", default="100,1000,10000,100000", help="messages per chat, comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="sampling time per contender and size")
    parser.add_argument("--no-peers", action="store_true", help="genvault and raw SQL only")
    parser.add_argument("--loop", choices=LOOPS, default="uvloop", help="event loop (default: uvloop)")
    parser.add_argument(
        "--interleave", action="store_true", help="alternate the contenders read by read instead of in 5 rounds"
    )
    parser.add_argument("--out-dir", type=Path, help="where the results file goes (default: bench/results)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    run_on(
        args.loop,
        run(
            dbs=args.db or list(DATABASES),
            sizes=sizes,
            seconds=args.seconds,
            peers=not args.no_peers,
            interleave=args.interleave,
            out_dir=args.out_dir,
        ),
    )


if __name__ == "__main__":
    main()
