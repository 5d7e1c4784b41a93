"""Benchmark: full-text search at a million messages, SQLite and PostgreSQL in the same run.

    .venv/bin/python -m bench.search [--db sqlite --db postgres] [--messages 1000000 --chats 50000
        --users 1000 --generations 200000] [--seed 20] [--samples 200] [--append-seconds 1.5 --rounds 5]

Per database: a fresh database at revision 0005 (no index) bulk-loaded with the corpus of
`bench._corpus` (raw SQL: executemany on SQLite, COPY on PostgreSQL), then `upgrade` to head,
which builds the search index over the existing rows (timed: on PostgreSQL this is the CREATE
INDEX CONCURRENTLY path). Then each query shape, top 20 with snippets through `Vault.search`:
for one user (a different user each call, the normal case) and for all users (an admin), and
the `LIKE '%a%' AND LIKE '%b%'` scan beside it (top 20, unranked, raw SQL on the same store).
Sizes: the data tables against the index. Last, a chat turn's append throughput with the
index and without it (the same schema with the search objects dropped), two fresh databases,
rounds alternating, as `bench.append` measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench._common import DATABASES, LOOPS, fresh_database, machine, run_on, sqlite_path, summarize, write_result
from bench._corpus import COLUMNS, Corpus
from genvault import Settings, Vault
from genvault.search.ddl import PG_INDEXES, PG_VECTOR_TABLES, SQLITE_FTS_TABLES, SQLITE_TRIGGERS, SQLITE_VIEWS
from genvault.store import Store
from genvault.store.db import upgrade

DATA_TABLES = ("users", "chats", "messages", "parts", "generations")


# -- loading -----------------------------------------------------------------------------------------


def _sqlite_stamp(value: Any) -> Any:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if hasattr(value, "strftime") else value


def _load_sqlite(url: str, corpus: Corpus) -> None:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    for batch in corpus.batches():
        for table, rows in batch.items():
            if rows:
                cols = COLUMNS[table]
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [tuple(_sqlite_stamp(v) for v in row) for row in rows],
                )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


async def _load_postgres(url: str, corpus: Corpus) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for batch in corpus.batches():
            for table in ("users", "chats", "messages", "parts", "generations"):
                rows = batch.get(table)
                if rows:
                    await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _vacuum(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _sizes(store: Store) -> dict[str, int]:
    """Bytes on disk: the data tables (with their own indexes), and the search index."""
    async with store.read() as conn:
        if store.dialect == "sqlite":
            page = (await conn.execute(text("PRAGMA page_size"))).scalar_one()
            try:
                rows = (await conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))).all()
                by_name = {r[0]: int(r[1]) for r in rows}
                search = sum(v for k, v in by_name.items() if k.startswith(SQLITE_FTS_TABLES))
                return {"data_bytes": sum(by_name.values()) - search, "index_bytes": search}
            except Exception:  # no dbstat in this build: the file's pages
                pages = (await conn.execute(text("PRAGMA page_count"))).scalar_one()
                return {"file_bytes": int(page) * int(pages)}
        data = 0
        for table in DATA_TABLES:
            data += (await conn.execute(text(f"SELECT pg_total_relation_size('{table}')"))).scalar_one()
        index = 0
        for name in PG_INDEXES:
            index += (await conn.execute(text(f"SELECT pg_relation_size('{name}')"))).scalar_one()
        return {"data_bytes": int(data) - int(index), "index_bytes": int(index)}


# -- queries -----------------------------------------------------------------------------------------


def _shapes(corpus: Corpus) -> dict[str, str]:
    a, b = corpus.common_pair
    return {"2 common words": f"{a} {b}", "1 rare word": corpus.rare_word, "prefix migra*": "migra*"}


async def _time(call: Any, samples: int) -> list[float]:
    await call(0)  # warm: the statement and the pages
    out = []
    for i in range(samples):
        start = time.perf_counter()
        await call(i + 1)
        out.append(time.perf_counter() - start)
    return out


def _ms(s: dict[str, float]) -> str:
    return f"p50 {s['p50'] * 1000:7.2f} ms  p99 {s['p99'] * 1000:7.2f} ms"


async def _queries(vault: Vault, corpus: Corpus, samples: int, db: str) -> list[dict[str, Any]]:
    rng = random.Random(corpus.seed + 1)
    users = [corpus.user_id(rng.randrange(corpus.users)) for _ in range(samples + 1)]
    results = []
    for shape, q in _shapes(corpus).items():
        for scope in ("one user", "all users"):
            n = samples if scope == "one user" else max(3, samples // 4)
            hits: list[int] = []

            async def call(i: int, q: str = q, scope: str = scope, hits: list[int] = hits) -> None:
                user = users[i % len(users)] if scope == "one user" else None
                page = await vault.search(q, user_id=user, limit=20)
                hits.append(len(page.items))

            times = await _time(call, n)
            row = {
                "db": db,
                "query": shape,
                "q": q,
                "scope": scope,
                "latency_s": summarize(times),
                "mean_hits": statistics.mean(hits),
            }
            results.append(row)
            print(f"{db:8} {shape:15} {scope:9} {_ms(row['latency_s'])}  ({row['mean_hits']:.1f} hits)")
    # The LIKE scan beside it: the two common words, top 20 unranked.
    a, b = corpus.common_pair
    for scope in ("one user", "all users"):
        n = max(3, samples // 4) if scope == "one user" else 3
        owner = "AND user_id = :user " if scope == "one user" else ""
        sql = text(
            "SELECT chat_id, message_id FROM parts WHERE type = 'text' "
            f"{owner}AND text_text LIKE :a AND text_text LIKE :b LIMIT 20"
        )

        async def like(i: int, sql: Any = sql, scope: str = scope) -> None:
            params = {"a": f"%{a}%", "b": f"%{b}%", "user": users[i % len(users)]}
            async with vault.store.read() as conn:
                (await conn.execute(sql, params)).all()

        times = await _time(like, n)
        row = {"db": db, "query": "LIKE '%a%' AND LIKE '%b%'", "q": f"{a} {b}", "scope": scope}
        row["latency_s"] = summarize(times)
        results.append(row)
        print(f"{db:8} {'LIKE scan':15} {scope:9} {_ms(row['latency_s'])}")
    return results


async def _document_frequencies(store: Store, corpus: Corpus) -> dict[str, int]:
    """How many text parts hold each searched word (from the index: so the shapes are described
    by their real selectivity)."""
    out = {}
    async with store.read() as conn:
        for word in (*corpus.common_pair, corpus.rare_word):
            if store.dialect == "sqlite":
                sql = text("SELECT count(*) FROM search_parts WHERE search_parts MATCH :m")
                out[word] = (await conn.execute(sql, {"m": f'body : "{word}"'})).scalar_one()
            else:
                sql = text("SELECT count(*) FROM parts WHERE search_vector @@ phraseto_tsquery('simple', :w)")
                out[word] = (await conn.execute(sql, {"w": word})).scalar_one()
    return out


# -- append with and without the index -----------------------------------------------------------------


async def _drop_search(url: str) -> None:
    store = Store(url)
    try:
        async with store.write() as conn:
            if store.dialect == "sqlite":
                for name in SQLITE_TRIGGERS:
                    await conn.execute(text(f"DROP TRIGGER {name}"))
                for name in SQLITE_FTS_TABLES:
                    await conn.execute(text(f"DROP TABLE {name}"))
                for name in SQLITE_VIEWS:
                    await conn.execute(text(f"DROP VIEW {name}"))
            else:
                for name in PG_INDEXES:
                    await conn.execute(text(f"DROP INDEX {name}"))
                for table in PG_VECTOR_TABLES:
                    await conn.execute(text(f"DROP TRIGGER {table}_search_vector ON {table}"))
                    await conn.execute(text(f"ALTER TABLE {table} DROP COLUMN search_vector"))
    finally:
        await store.aclose()


_TICK = 100.0  # /proc's clock ticks per second (USER_HZ)


def _proc_cpu(pid: int) -> float:
    """A process's CPU seconds (user + system) from /proc; 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _backend_pids(url: str) -> list[int]:
    """The PostgreSQL client backends serving `url`'s database (other than this query's): not
    autovacuum, whose runs landed in one contender's rounds or the other's (CPU per turn grew
    from 1.0 to 2.5 ms over nine rounds, on whichever database it was vacuuming). So the GIN
    pending list's cleanup is counted only when an insert does it, not when autovacuum does."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return [r[0] for r in rows]
    finally:
        await conn.close()


async def _cpu(db: str, url: str) -> dict[int, float]:
    """CPU seconds so far: this process's (key 0; SQLite's work is in its threads) and, on
    PostgreSQL, each server process serving the database. Under a load of 10+ on 2 cores, wall
    clock throughput of 1.5 s rounds swung 154-1,169 turns/s; CPU per turn is what the index adds."""
    out = {0: time.process_time()}
    if db == "postgres":
        for pid in await _backend_pids(url):
            out[pid] = _proc_cpu(pid)
    return out


def _cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[k] - before.get(k, after[k]) for k in after)


async def _append(db: str, seconds: float, rounds: int, writers: int) -> list[dict[str, Any]]:
    from bench._contenders import Genvault
    from bench.append import _analyze, _drive

    async with fresh_database(db) as with_url, fresh_database(db) as without_url:
        contenders: dict[str, Genvault] = {}
        for name, url in (("with index", with_url), ("without index", without_url)):
            contender = Genvault()
            await contender.setup(url, writers)
            if name == "without index":
                await _drop_search(url)
            contenders[name] = contender
        rates: dict[str, list[float]] = {n: [] for n in contenders}
        cpu_per_turn: dict[str, list[float]] = {n: [] for n in contenders}
        urls = {"with index": with_url, "without index": without_url}
        try:
            for c in contenders.values():
                await _drive(c, writers, min(0.3, seconds))
            if db == "postgres":
                await _analyze(with_url)
                await _analyze(without_url)
            order = list(contenders)
            for r in range(rounds):
                for name in order[r % 2 :] + order[: r % 2]:
                    cpu_before = await _cpu(db, urls[name])
                    turns, elapsed, _ = await _drive(contenders[name], writers, seconds)
                    rates[name].append(turns / elapsed)
                    # The index work SQLite defers (its queue) is the round's too: applied here.
                    await contenders[name].vault.searcher.catch_up()
                    cpu_per_turn[name].append(_cpu_spent(cpu_before, await _cpu(db, urls[name])) / turns)
        finally:
            for c in contenders.values():
                await c.close()
    with_rate = statistics.median(rates["with index"])
    without_rate = statistics.median(rates["without index"])
    with_cpu = statistics.median(cpu_per_turn["with index"])
    without_cpu = statistics.median(cpu_per_turn["without index"])
    print(
        f"{db:8} append writers={writers} with index {with_rate:8.1f} turns/s, without {without_rate:8.1f} "
        f"turns/s: x{with_rate / without_rate:.3f}; CPU per turn {with_cpu * 1e3:.3f} / {without_cpu * 1e3:.3f} ms: "
        f"x{with_cpu / without_cpu:.3f}"
    )
    return [
        {
            "db": db,
            "writers": writers,
            "with_index_turns_per_s": with_rate,
            "without_index_turns_per_s": without_rate,
            "ratio": with_rate / without_rate,
            "rounds": rates,
            "cpu_per_turn_s": cpu_per_turn,
            "cpu_ratio": with_cpu / without_cpu,
        }
    ]


@contextlib.asynccontextmanager
async def _database(db: str, keep: bool, reuse: dict[str, str] | None) -> AsyncIterator[tuple[str, bool]]:
    """The database to search: a fresh one (dropped at the end unless `keep`: its URL is printed
    to pass back as --reuse), or one an earlier run kept (`reuse`), already filled."""
    if reuse and db in reuse:
        yield reuse[db], True
        return
    if not keep:
        async with fresh_database(db) as url:
            yield url, False
        return
    if db == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='genvault-bench-kept-')}/bench.db"
    else:
        from bench._common import create_pg_database

        url = await create_pg_database(f"genvault_bench_kept_{uuid.uuid4().hex[:8]}")
    print(f"{db:8} kept: --reuse {url}")
    yield url, False


# -- the run -----------------------------------------------------------------------------------------


async def run(
    *,
    dbs: list[str],
    corpus_args: dict[str, int],
    samples: int,
    append_seconds: float,
    rounds: int,
    writers: list[int],
    out_dir: Path | None = None,
    keep: bool = False,
    reuse: dict[str, str] | None = None,
    append_only: bool = False,
) -> dict[str, Any]:
    queries: list[dict[str, Any]] = []
    builds: list[dict[str, Any]] = []
    appends: list[dict[str, Any]] = []
    for db in dbs:
        corpus = Corpus(**corpus_args)
        if append_only:  # no corpus, no searches: the append comparison alone (fresh databases)
            for w in writers if rounds > 0 else []:
                appends += await _append(db, append_seconds, rounds, w)
            continue
        async with _database(db, keep, reuse) as (url, filled):
            store = Store(url)
            try:
                if filled:  # a database kept by an earlier run with the same corpus: no load, no build
                    loaded = built = 0.0
                    await store.upgrade()  # a revision added since (e.g. a new index) is built here
                else:
                    await upgrade(store.engine, "0005")
                    start = time.perf_counter()
                    if db == "sqlite":
                        await asyncio.to_thread(_load_sqlite, url, corpus)
                    else:
                        await _load_postgres(url, corpus)
                    loaded = time.perf_counter() - start
                    start = time.perf_counter()
                    await store.upgrade()
                    built = time.perf_counter() - start
                # Planner statistics for the new vectors, as autovacuum would gather them: without
                # them PostgreSQL guesses the selectivity of `@@` on a column it has never sampled.
                # On PostgreSQL a VACUUM too, as autovacuum would run one after a bulk load: else
                # the first searches set the hint bits of every row they read (writing the pages).
                if db == "postgres":
                    await _vacuum(url)
                else:
                    async with store.write() as conn:
                        await conn.execute(text("ANALYZE"))
                sizes = await _sizes(store)
                frequencies = await _document_frequencies(store, corpus)
            finally:
                await store.aclose()
            builds.append({"db": db, "load_s": loaded, "index_build_s": built, **sizes, "doc_freq": frequencies})
            print(f"{db:8} loaded in {loaded:.1f} s, index built in {built:.1f} s, {sizes}, parts with {frequencies}")
            with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
                vault = Vault(Settings(database_url=url, data_dir=Path(tmp)), migrate=False, sweep_interval=3600)
                try:
                    queries += await _queries(vault, corpus, samples, db)
                finally:
                    await vault.aclose()
        for w in writers if rounds > 0 else []:
            appends += await _append(db, append_seconds, rounds, w)
    data = {
        "params": {
            "dbs": dbs,
            **corpus_args,
            "samples": samples,
            "append_seconds": append_seconds,
            "rounds": rounds,
            "writers": writers,
            "append_only": append_only,
        },
        "machine": await machine(),
        "builds": builds,
        "queries": queries,
        "append": appends,
    }
    write_result("search", data, out_dir)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeat for both (default: both)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--chats", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200, help="timed searches per shape (one user)")
    parser.add_argument("--append-seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=5, help="append rounds (0: no append measurement)")
    parser.add_argument("--writers", action="append", type=int, help="append writers (default: 1)")
    parser.add_argument("--loop", choices=LOOPS, default="uvloop")
    parser.add_argument("--out", type=Path, help="write search.json here (default: bench/results)")
    parser.add_argument("--append-only", action="store_true", help="only the append comparison (no fill, no search)")
    parser.add_argument("--keep", action="store_true", help="keep the filled databases (prints --reuse URLs)")
    parser.add_argument(
        "--reuse", action="append", default=[], metavar="URL", help="search a database --keep left (same corpus args)"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, as it happens
    run_on(
        args.loop,
        run(
            dbs=args.db or list(DATABASES),
            corpus_args={
                "seed": args.seed,
                "users": args.users,
                "chats": args.chats,
                "messages": args.messages,
                "generations": args.generations,
            },
            samples=args.samples,
            append_seconds=args.append_seconds,
            rounds=args.rounds,
            writers=args.writers or [1],
            keep=args.keep,
            append_only=args.append_only,
            out_dir=args.out,
            reuse={("sqlite" if u.startswith("sqlite") else "postgres"): u for u in args.reuse},
        ),
    )


if __name__ == "__main__":
    main()
