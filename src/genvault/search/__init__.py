"""Full-text search over every chat and generation (issue 20).

The index lives in the database and is kept by it (revision 0009: FTS5 tables with triggers on
SQLite, GIN expression indexes on PostgreSQL), so every write path keeps it exact without a line
of search code in it. This package holds the query language (`query`), the ranked, owned,
paginated search (`service`), the snippets (`snippet`) and the objects' names (`ddl`).
`Searcher` is what the `Vault` composes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, String, column, text
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest, StorageError
from genvault.labels import check_tag
from genvault.search import pending
from genvault.search.query import Term, TextQuery, parse_query
from genvault.search.service import SearchFilters, SearchHit, SearchPage, matching_chats, matching_generations, search
from genvault.store import Store
from genvault.store.schema import chats, generations
from genvault.store.sqlite_groups import write_in_group
from genvault.validation import check_aware

log = logging.getLogger(__name__)

__all__ = ["SearchFilters", "SearchHit", "SearchPage", "Searcher", "Term", "TextQuery", "parse_query"]


class Searcher:
    """Searches over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def search(
        self,
        q: str,
        *,
        user_id: str | None,
        chat_id: str | None = None,
        kind: str | None = None,
        model: str | None = None,
        role: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tag: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        if tag is not None:
            tag = check_tag(tag)
        if kind is not None and kind not in ("message", "chat", "generation"):
            raise InvalidRequest(f"kind must be message, chat or generation, got {kind!r}")
        if role is not None and role not in ("system", "user", "assistant"):
            raise InvalidRequest(f"role must be system, user or assistant, got {role!r}")
        check_aware(since, "since")
        check_aware(until, "until")
        query = parse_query(q)
        filters = SearchFilters(
            user_id=user_id,
            chat_id=chat_id,
            kind=kind,  # type: ignore[arg-type]
            model=model,
            role=role,
            status=status,
            since=since,
            until=until,
            tag=tag,
        )

        async def caught_up(conn: AsyncConnection) -> SearchPage | None:
            # SQLite: the queue is checked in the search's own statement (one checkout and one
            # statement, not two; the same snapshot as the search); None when it must be applied first.
            return await search(conn, query, filters, limit=limit, cursor=cursor, unless_pending=True)

        async def after_catching_up(conn: AsyncConnection) -> SearchPage:
            page = await search(conn, query, filters, limit=limit, cursor=cursor)
            assert page is not None  # only `unless_pending` gives None
            return page

        # Without the checkout's ping (a round trip): a read, safe to run again on a dead connection.
        page = await self.store.read_retrying(caught_up)
        if page is None:
            await self.catch_up()
            page = await self.store.read_retrying(after_catching_up)
        return page

    async def catch_up(self) -> int:
        """Apply SQLite's queue of message-part changes to the index (`genvault.search.pending`),
        so what follows sees every committed write. Nothing to do on PostgreSQL."""
        if self.store.dialect != "sqlite":
            return 0
        # One hop to the writer connection's thread, in a group's transaction (and its commit)
        # shared with the turns' writes: the queue's read, the index writes and the queue's
        # delete. An empty queue costs one SELECT there (no read connection, no SQLAlchemy
        # statement on the loop); a transaction that wrote nothing commits without a WAL frame.
        return await write_in_group(self.store, pending.flush)

    async def catch_up_forever(self, interval: float) -> None:
        """`catch_up` every `interval` seconds (the Vault runs this while started)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.catch_up()
            except StorageError:
                log.warning("could not bring the search index up to date", exc_info=True)

    def chats_matching(self, q: str, user_id: str | None) -> ColumnElement[bool]:
        """A condition on `chats`: its title or one of its messages matches `q` (a list filter)."""
        sql, params = matching_chats(self.store.dialect, q, user_id)
        return chats.c.id.in_(text(sql).bindparams(**params).columns(column("id", String)))

    def generations_matching(self, q: str, user_id: str | None) -> ColumnElement[bool]:
        """A condition on `generations`: its prompt or output, or its reply message, matches `q`."""
        sql, params = matching_generations(self.store.dialect, q, user_id)
        return generations.c.id.in_(text(sql).bindparams(**params).columns(column("id", String)))
