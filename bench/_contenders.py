"""The contenders, each behind the same small interface: set up chats, append a turn, read a page.

Every contender gets its own chats (one per writer) in the same fresh database, so they never
contend for one another's rows. Peers are imported lazily: they are only in the `bench` group.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import _conversation as conv
from bench._common import new_id, sqlite_path

USER = "bench"


def peers_available() -> bool:
    try:
        import agents.extensions.memory.sqlalchemy_session  # noqa: F401
        import langchain_postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


class Contender:
    name = ""
    databases: tuple[str, ...] = ("sqlite", "postgres")

    async def setup(self, url: str, chats: int) -> None:
        raise NotImplementedError

    async def append(self, writer: int) -> None:
        raise NotImplementedError

    async def latest_page(self, writer: int, limit: int) -> int:
        """Read the chat's latest `limit` messages (or the peer's nearest read); returns how many."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


# -- genvault ---------------------------------------------------------------------------------------


class Genvault(Contender):
    """`Vault.append_messages`, the library's append (on PostgreSQL one autocommit statement; on
    SQLite one transaction), without validation: the messages are genvault's own."""

    name = "genvault"
    validate = False

    async def setup(self, url: str, chats: int) -> None:
        from genvault import Settings, Vault

        self._tmp = tempfile.TemporaryDirectory(prefix="genvault-bench-")
        self.vault = Vault(Settings(database_url=url, data_dir=Path(self._tmp.name)), sweep_interval=3600)
        await self.vault.start()
        await self.vault.ensure_user(USER)
        self.chat_ids = [new_id("chat") for _ in range(chats)]
        for chat_id in self.chat_ids:
            await self.vault.create_chat(chat_id, user_id=USER)

    async def append(self, writer: int) -> None:
        await self.vault.append_messages(
            self.chat_ids[writer], conv.genvault_turn(), user_id=USER, validate=self.validate
        )

    async def latest_page(self, writer: int, limit: int) -> int:
        page = await self.vault.chat_messages(self.chat_ids[writer], user_id=USER, limit=limit)
        return len(page.messages)

    async def close(self) -> None:
        await self.vault.aclose()
        self._tmp.cleanup()


class GenvaultValidated(Genvault):
    """The same with `validate=True` (the default): the UIMessages are validated first, as the
    HTTP chat route does."""

    name = "genvault+validate"
    validate = True


# -- hand-written SQL through the same driver -------------------------------------------------------

_MSG_COLS = ", ".join(conv.MESSAGE_COLUMNS)
_PART_COLS = ", ".join(conv.PART_COLUMNS)


class RawSQL(Contender):
    """The same rows as genvault, in one transaction, with hand-written SQL on asyncpg/aiosqlite.

    The schema is genvault's (made by its migrations); this is the floor genvault's overhead is
    measured against."""

    name = "raw SQL"

    async def setup(self, url: str, chats: int) -> None:
        from genvault import Settings, Vault

        with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
            vault = Vault(Settings(database_url=url, data_dir=Path(tmp)), sweep_interval=3600)
            await vault.start()  # the schema and migrations
            await vault.ensure_user(USER)
            await vault.aclose()
        self.sqlite = url.startswith("sqlite")
        self.chat_ids = [new_id("chat") for _ in range(chats)]
        now = datetime.now(UTC)
        if self.sqlite:
            import aiosqlite

            self.conns: list[Any] = []
            for _ in range(chats):
                conn = await aiosqlite.connect(sqlite_path(url), timeout=30, isolation_level=None)
                for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
                    await conn.execute(f"PRAGMA {pragma}")
                self.conns.append(conn)
            stamp = conv.sqlite_timestamp(now)
            await self.conns[0].executemany(
                "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
                "VALUES (?, ?, 'private', 0, ?, ?)",
                [(c, USER, stamp, stamp) for c in self.chat_ids],
            )
        else:
            import asyncpg

            self.pool = await asyncpg.create_pool(url, min_size=chats, max_size=chats)
            await self.pool.executemany(
                "INSERT INTO chats (id, user_id, visibility, last_seq, created_at, updated_at) "
                "VALUES ($1, $2, 'private', 0, $3, $3)",
                [(c, USER, now) for c in self.chat_ids],
            )

    async def append(self, writer: int) -> None:
        chat_id = self.chat_ids[writer]
        turn = conv.genvault_turn()
        now = datetime.now(UTC)
        if self.sqlite:
            conn = self.conns[writer]
            stamp = conv.sqlite_timestamp(now)
            await conn.execute("BEGIN IMMEDIATE")
            try:
                async with conn.execute(
                    "UPDATE chats SET last_seq = last_seq + ?, updated_at = ? WHERE id = ? AND user_id = ? "
                    "RETURNING last_seq",
                    (len(turn), stamp, chat_id, USER),
                ) as cursor:
                    last = (await cursor.fetchone())[0]
                messages, parts = conv.raw_rows(chat_id, USER, turn, last - len(turn) + 1, stamp)
                await conn.executemany(f"INSERT INTO messages ({_MSG_COLS}) VALUES (?, ?, ?, ?, ?, ?)", messages)
                marks = ", ".join("?" for _ in conv.PART_COLUMNS)
                await conn.executemany(f"INSERT INTO parts ({_PART_COLS}) VALUES ({marks})", parts)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            return
        async with self.pool.acquire() as conn, conn.transaction():
            last = await conn.fetchval(
                "UPDATE chats SET last_seq = last_seq + $1, updated_at = $2 WHERE id = $3 AND user_id = $4 "
                "RETURNING last_seq",
                len(turn),
                now,
                chat_id,
                USER,
            )
            messages, parts = conv.raw_rows(chat_id, USER, turn, last - len(turn) + 1, now)
            await conn.executemany(f"INSERT INTO messages ({_MSG_COLS}) VALUES ($1, $2, $3, $4, $5, $6)", messages)
            marks = ", ".join(f"${i + 1}" for i in range(len(conv.PART_COLUMNS)))
            await conn.executemany(f"INSERT INTO parts ({_PART_COLS}) VALUES ({marks})", parts)

    async def latest_page(self, writer: int, limit: int) -> int:
        """Two indexed queries: the page's messages by (chat_id, seq), then their parts."""
        chat_id = self.chat_ids[writer]
        if self.sqlite:
            conn = self.conns[writer]
            async with conn.execute(
                "SELECT id, seq, role, metadata FROM messages WHERE chat_id = ? ORDER BY seq DESC LIMIT ?",
                (chat_id, limit),
            ) as cursor:
                rows = await cursor.fetchall()
            ids = [r[0] for r in rows]
            marks = ", ".join("?" for _ in ids)
            async with conn.execute(
                f"SELECT * FROM parts WHERE chat_id = ? AND message_id IN ({marks}) ORDER BY message_id, position",
                (chat_id, *ids),
            ) as cursor:
                await cursor.fetchall()
            return len(rows)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, seq, role, metadata FROM messages WHERE chat_id = $1 ORDER BY seq DESC LIMIT $2",
                chat_id,
                limit,
            )
            await conn.fetch(
                "SELECT * FROM parts WHERE chat_id = $1 AND message_id = ANY($2::text[]) ORDER BY message_id, position",
                chat_id,
                [r["id"] for r in rows],
            )
            return len(rows)

    async def close(self) -> None:
        if self.sqlite:
            for conn in self.conns:
                await conn.close()
        else:
            await self.pool.close()


# -- peers ------------------------------------------------------------------------------------------


class LangchainPostgres(Contender):
    """`PostgresChatMessageHistory.aadd_messages` (psycopg 3), one connection per writer."""

    name = "langchain-postgres"
    databases = ("postgres",)
    table = "langchain_messages"

    async def setup(self, url: str, chats: int) -> None:
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        self.conns = [await psycopg.AsyncConnection.connect(url) for _ in range(chats)]
        await PostgresChatMessageHistory.acreate_tables(self.conns[0], self.table)
        self.session_ids = [str(uuid.uuid4()) for _ in range(chats)]
        self.histories = [
            PostgresChatMessageHistory(self.table, sid, async_connection=conn)
            for sid, conn in zip(self.session_ids, self.conns, strict=True)
        ]

    async def append(self, writer: int) -> None:
        await self.histories[writer].aadd_messages(conv.langchain_turn())

    async def latest_page(self, writer: int, limit: int) -> int:
        # Its API has no page read: `aget_messages` returns the whole history.
        return len(await self.histories[writer].aget_messages())

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()


class AgentsSession(Contender):
    """OpenAI Agents SDK `SQLAlchemySession.add_items` (asyncpg / aiosqlite), one shared engine."""

    name = "openai-agents"

    async def setup(self, url: str, chats: int) -> None:
        from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine

        from genvault.store.db import async_url

        self.engine = create_async_engine(async_url(url), pool_size=max(5, chats))
        self.sessions = [SQLAlchemySession(new_id("s"), engine=self.engine, create_tables=True) for _ in range(chats)]
        for session in self.sessions:
            await session.get_items(limit=1)  # creates the tables once

    async def append(self, writer: int) -> None:
        await self.sessions[writer].add_items(conv.agents_turn())  # type: ignore[arg-type]

    async def latest_page(self, writer: int, limit: int) -> int:
        return len(await self.sessions[writer].get_items(limit=limit))

    async def close(self) -> None:
        await self.engine.dispose()


def contenders(*, peers: bool) -> list[type[Contender]]:
    found: list[type[Contender]] = [Genvault, GenvaultValidated, RawSQL]
    if peers and peers_available():
        found += [LangchainPostgres, AgentsSession]
    return found
