"""Searching a user's chats and generations: ranked hits with snippets, filters, cursor pages.

Three kinds of document, each with its own index in the database (see `genvault.search.ddl`):
a message's text part, a chat's title, and a finished text or image generation's prompt and
output. (A chat turn's generation is found through its reply, a message, rather than twice.)

Ownership is in the query, never after it: a user's search names their owner token in the index
query (SQLite: the `owner` column; PostgreSQL: the `#md5(user_id)` lexeme), which keeps the
ranking to their own rows, and checks `user_id` exactly on top. Only a search with `user_id=None`
(an operator, or an admin through the server) reaches everyone's rows.

Ranking: ts_rank_cd on PostgreSQL; on SQLite `genvault_rank` for a user's search
(`genvault.search.rank`: BM25 from the row's own text, without bm25()'s read of the whole index)
and bm25 for a search of everyone; as a `score` where lower is better (bm25's sign; ts_rank_cd
negated), then the document's key. An unfiltered search of everyone ranks a window of candidates
(`_windowed`). A page's cursor is the last hit's (score, source, key): the next page continues
strictly after it in that order.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest
from genvault.search.ddl import SQLITE_QUEUE
from genvault.search.query import TextQuery, parse_query
from genvault.search.rank import FUNCTION as RANK_FUNCTION
from genvault.search.rank import rank_terms
from genvault.search.snippet import snippet
from genvault.store.schema import UTCDateTime

__all__ = [
    "MAX_LIMIT",
    "SOURCES",
    "SearchFilters",
    "SearchHit",
    "SearchPage",
    "matching_chats",
    "matching_generations",
    "search",
]

MAX_LIMIT = 100
# How many matches per source an unfiltered search of everyone ranks (`_windowed`).
ADMIN_WINDOW = 200
Kind = Literal["message", "chat", "generation"]
SOURCES: tuple[Kind, ...] = ("message", "chat", "generation")


class SearchHit(BaseModel):
    """One found document and what to open: a message (chat id + message id), a chat (its
    title matched) or a generation."""

    kind: Kind
    score: float  # lower is better (bm25 on SQLite; -ts_rank_cd on PostgreSQL)
    snippet: str  # HTML-escaped, matched words in <mark>…</mark>
    user_id: str
    chat_id: str | None = None
    chat_title: str | None = None
    message_id: str | None = None
    role: str | None = None
    generation_id: str | None = None
    model: str | None = None
    status: str | None = None
    created_at: datetime
    url: str


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None = None


@dataclass(frozen=True)
class SearchFilters:
    """What a search is limited to. `user_id=None`: every user's documents (operators, admins)."""

    user_id: str | None
    chat_id: str | None = None
    kind: Kind | None = None
    model: str | None = None
    role: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # A tag on the document's chat (messages, titles) or generation (`genvault.labels`).
    tag: str | None = None

    def sources(self) -> list[Kind]:
        chosen = [self.kind] if self.kind else list(SOURCES)
        if self.role is not None:  # only messages have a role
            chosen = [k for k in chosen if k == "message"]
        if self.model is not None or self.status is not None:  # titles have neither
            chosen = [k for k in chosen if k != "chat"]
        return chosen


# -- the SQL of each source ----------------------------------------------------------------------


@dataclass
class _Select:
    """One source's ranked query, assembled from parts."""

    score: str
    keys: list[str]  # the document's key columns, in cursor order
    frm: str
    where: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    def sql(self, limit: int) -> str:
        keys = ", ".join(f"{k} AS k{i}" for i, k in enumerate(self.keys))
        order = ", ".join(["score", *self.keys])
        return (
            f"SELECT {self.score} AS score, {keys} FROM {self.frm} WHERE {' AND '.join(self.where) or 'true'} "
            f"ORDER BY {order} LIMIT {int(limit)}"
        )


def _owner_token(user_id: str) -> str:
    return "u" + user_id.encode().hex()


def _pg_tsquery(query: TextQuery, params: dict[str, Any]) -> str:
    """The query as a tsquery expression over bound parameters: each term parsed by PostgreSQL's
    own functions with the index's configuration, joined with && and !!."""
    parts: list[str] = []
    for i, term in enumerate(query.terms):
        name = f"t{i}"
        if term.kind == "prefix":
            params[name] = f"'{term.words[0]}':*"  # letters and digits only (parse_query)
            expr = f"to_tsquery('simple', :{name})"
        else:
            params[name] = " ".join(term.words)
            expr = f"phraseto_tsquery('simple', :{name})"
        parts.append(f"!!{expr}" if term.negated else expr)
    return "(" + " && ".join(parts) + ")"


# The indexed vectors (revision 0009): a stored `search_vector` on parts and generations, an
# expression on chats, which a query must spell exactly as the index does to use it.
PG_CHATS_VECTOR = "(to_tsvector('simple', c.title) || array_to_tsvector(ARRAY['#' || md5(c.user_id)]))"


# A user with fewer rows than this in a table has a prefix search read their rows (`_pg_matched`).
PG_OWN_ROWS = 5000
# The rows of a table that can match, where not all can: what a prefix search reads and counts by
# owner. `parts`' index by user holds only these (revision 0032: a chat turn's other parts took an
# entry each for nothing but this), and a query must say it to use that index.
_PG_SEARCHABLE = {"parts": "type = 'text'"}


def _pg_matched(
    table: str,
    match: str,
    user_id: str | None,
    alias: str,
    window: int | None = None,
    *,
    prefix: str | None = None,
) -> tuple[str, list[str]]:
    """The FROM item and conditions that find the rows matching `match` on PostgreSQL.

    For a user's search the match names their owner lexeme, so the GIN index alone narrows the
    rows to theirs that match (an intersection of posting lists). Left to itself the planner may
    prefer the btree on `user_id` (about 1/1000 of the rows) and recheck `@@` on each of the
    user's rows, reading every one of their tsvectors: a subquery with `OFFSET 0` (which
    PostgreSQL never flattens nor pushes the outer conditions into) makes the index match come
    first; the exact `user_id` check (a hash is not an identity) and the filters apply on top.

    Except for a prefix (`migra*`, `prefix`: the match without the owner lexeme): GIN answers a
    prefix by gathering every entry that starts with it, every user's rows, into a bitmap before
    the owner's posting list narrows it (no skipping for a partial match). At a million parts
    `migra*` is 46,000 of them: 37-124 ms for one user's 48, under load. Reading the user's own
    rows by the btree on `user_id` and checking `@@` on each is 2.6-7.7 ms for 1,000 rows, but it
    grows with the user's rows: so the statement holds both ways, each behind a one-time filter
    on whether the user has fewer than `PG_OWN_ROWS` rows in the table (an index-only count that
    stops there), and runs only the one that applies."""
    if user_id is None:
        if window is not None:  # an unfiltered search of everyone: the first `window` in table order
            return f"(SELECT * FROM {table} WHERE {match} LIMIT {int(window)}) {alias}", []
        return table, [match]
    if prefix is None:
        return f"(SELECT * FROM {table} WHERE {match} OFFSET 0) {alias}", []
    name = table.split()[0]
    searchable = _PG_SEARCHABLE.get(name)
    few = (
        f"(SELECT count(*) < {PG_OWN_ROWS} FROM (SELECT 1 FROM {name} WHERE user_id = :user_id "
        f"{f'AND {searchable} ' if searchable else ''}LIMIT {PG_OWN_ROWS}) AS owned)"
    )
    by_index = f"(SELECT * FROM {table} WHERE {match} AND NOT {few} OFFSET 0)"
    own = f"{alias}.user_id = :user_id" + (f" AND {alias}.{searchable}" if searchable else "")
    by_owner = f"(SELECT * FROM (SELECT * FROM {table} WHERE {own} AND {few} OFFSET 0) {alias} WHERE {prefix})"
    return f"({by_index} UNION ALL {by_owner}) {alias}", []


def _sqlite_matched(
    fts: str, score: str, table: str, window: int | None, where: list[str]
) -> tuple[str, str, list[str]]:
    """The FROM item, score and key of the rows of `table` matching `:match` on SQLite; with a
    window, only the newest `window` matches (by rowid) are scored."""
    alias = table.split()[1]
    if window is None:
        where.append(f"{fts} MATCH :match")
        return f"{fts} f JOIN {table} ON {alias}.rowid = f.rowid", score, ["f.rowid"]
    # Scored inside the index by bm25() (its term weights read the terms' doclists once, a few ms
    # for common words): `genvault_rank` would read each candidate's row, 200 random pages per
    # kind, which cold took 3-6 times as long at 1M.
    candidates = (
        f"SELECT rowid AS rid, {score} AS rank_score FROM {fts} WHERE {fts} MATCH :match "
        f"ORDER BY rowid DESC LIMIT {int(window)}"
    )
    return f"({candidates}) f JOIN {table} ON {alias}.rowid = f.rid", "f.rank_score", ["f.rid"]


def _windowed(f: SearchFilters) -> int | None:
    """The number of candidates an unfiltered search of everyone ranks per source (None: all).

    Ranking every match in the corpus is what makes an admin's search of common words slow (at a
    million messages `migra*` matches 46,000 parts, each scored and sorted):
    instead it ranks a window of them, the newest `ADMIN_WINDOW` on SQLite (FTS5 walks its
    doclists by rowid, descending, and stops; scored with bm25), the first
    `ADMIN_WINDOW` in the table's physical order on PostgreSQL (a bitmap heap scan, from the
    first page: in a table only appended to, the oldest matches; a sequential scan of a big
    table may start where another scan is, `synchronize_seqscans`; the newest would mean
    fetching and sorting every match, as no index orders parts by time).
    At 1M, "table error": 110-218 ms with a window of 1,000, 36-46 ms with 200, under load. Any filter (a user, a
    chat, role, model, status, tag, dates) turns it off, so a narrower search is always exact;
    paging an unfiltered one ends with its window."""
    narrowed = (f.user_id, f.chat_id, f.role, f.model, f.status, f.since, f.until, f.tag)
    return ADMIN_WINDOW if all(v is None for v in narrowed) else None


def _source(dialect: str, kind: Kind, query: TextQuery, f: SearchFilters, *, ranked: bool = False) -> _Select:
    """One source's query; `ranked` (a search's, not a list filter's): an unfiltered search of
    everyone ranks a window of candidates (`_windowed`)."""
    params: dict[str, Any] = {}
    where: list[str] = []
    pg = dialect == "postgresql"
    window = _windowed(f) if ranked else None
    # A user's ranked search on SQLite scores their matches by their own text (`genvault.search.
    # rank`) rather than with bm25(), which reads the terms' whole doclists for its term weights
    # (every user's rows, to rank one user's).
    own_rank = ranked and f.user_id is not None and not pg
    if own_rank:
        params["rank_terms"] = rank_terms(query)

    def own_prefix(vector: str) -> str | None:
        """A PostgreSQL user's search with a prefix term: the match on their own rows (`_pg_matched`)."""
        if not pg or f.user_id is None or not any(t.kind == "prefix" for t in query.wanted):
            return None
        return f"{vector} @@ {tsq}"

    if pg:
        tsq = _pg_tsquery(query, params)
        if f.user_id is not None:
            params["owner"] = f.user_id
            match_q = f"({tsq} && (('''#' || md5(:owner) || ''''))::tsquery)"
        else:
            match_q = tsq
    else:
        columns = "{prompt output}" if kind == "generation" else "body"
        match = query.fts5(columns=columns)
        if f.user_id is not None:
            match = f'owner : "{_owner_token(f.user_id)}" AND {match}'
        params["match"] = match

    if kind == "message":
        need_messages = any(v is not None for v in (f.role, f.since, f.until, f.model, f.status))
        if pg:
            frm, match_where = _pg_matched(
                "parts p", f"p.search_vector @@ {match_q}", f.user_id, "p", window, prefix=own_prefix("p.search_vector")
            )
            score = f"(-ts_rank_cd(p.search_vector, {tsq}))::float8"
            where += match_where
            keys = ["p.chat_id", "p.message_id", "p.position"]
        else:
            frm, score, keys = _sqlite_matched("search_parts", "bm25(search_parts, 1.0, 0.0)", "parts p", window, where)
            if own_rank:
                score = f"{RANK_FUNCTION}(p.text_text, :rank_terms)"
        if need_messages:
            frm += " JOIN messages m ON m.chat_id = p.chat_id AND m.id = p.message_id"
        if f.model is not None or f.status is not None:
            frm += " JOIN generations g ON g.id = m.generation_id"
        if f.user_id is not None:
            where.append("p.user_id = :user_id")
        if f.chat_id is not None:
            where.append("p.chat_id = :chat_id")
        if f.role is not None:
            where.append("m.role = :role")
        date_col = "m.created_at"
    elif kind == "chat":
        if pg:
            frm, match_where = _pg_matched("chats c", f"{PG_CHATS_VECTOR} @@ {match_q}", f.user_id, "c", window)
            score = f"(-ts_rank_cd(to_tsvector('simple', c.title), {tsq}))::float8"
            where += match_where
            keys = ["c.id"]
        else:
            frm, score, keys = _sqlite_matched("search_chats", "bm25(search_chats, 1.0, 0.0)", "chats c", window, where)
            if own_rank:
                score = f"{RANK_FUNCTION}(c.title, :rank_terms)"
        if f.user_id is not None:
            where.append("c.user_id = :user_id")
        if f.chat_id is not None:
            where.append("c.id = :chat_id")
        date_col = "c.created_at"
    else:
        if pg:
            frm, match_where = _pg_matched(
                "generations g",
                f"g.search_vector @@ {match_q}",
                f.user_id,
                "g",
                window,
                prefix=own_prefix("g.search_vector"),
            )
            score = f"(-ts_rank_cd(g.search_vector, {tsq}))::float8"
            where += match_where
            keys = ["g.id"]
        else:
            frm, score, keys = _sqlite_matched(
                "search_generations", "bm25(search_generations, 1.0, 1.0, 0.0)", "generations g", window, where
            )
            if own_rank:
                texts = "coalesce(json_extract(g.request, '$.prompt'), '') || ' ' || coalesce(g.result_text, '')"
                score = f"{RANK_FUNCTION}({texts}, :rank_terms)"
        if f.user_id is not None:
            where.append("g.user_id = :user_id")
        if f.chat_id is not None:
            where.append("g.chat_id = :chat_id")
        date_col = "g.created_at"
    if f.model is not None:
        where.append("g.model = :model")
    if f.status is not None:
        where.append("g.status = :status")
    if f.tag is not None:
        if kind == "message":
            frm += " JOIN chats c ON c.id = p.chat_id"
        labelled = "g" if kind == "generation" else "c"
        if pg:
            where.append(f"{labelled}.tags @> CAST(:tag AS jsonb)")
            params["tag"] = json.dumps([f.tag])
        else:
            where.append(f"EXISTS (SELECT 1 FROM json_each({labelled}.tags) WHERE json_each.value = :tag)")
            params["tag"] = f.tag
    if f.since is not None:
        where.append(f"{date_col} >= :since")
    if f.until is not None:
        where.append(f"{date_col} < :until")
    params.update(
        {k: v for k, v in {"user_id": f.user_id, "chat_id": f.chat_id, "role": f.role}.items() if v is not None}
    )
    params.update({k: v for k, v in {"model": f.model, "status": f.status}.items() if v is not None})
    return _Select(score=score, keys=keys, frm=frm, where=where, params=params)


# -- cursors -------------------------------------------------------------------------------------


def _encode_cursor(score: float, source: int, keys: Sequence[Any]) -> str:
    raw = json.dumps([score, source, list(keys)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, int, list[Any]]:
    try:
        score, source, keys = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(keys, list) or not 0 <= int(source) < len(SOURCES):
            raise ValueError
        return float(score), int(source), keys
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"invalid cursor {cursor!r}: pass back a next_cursor from a previous page") from exc


def _after(select: _Select, source: int, cursor: tuple[float, int, list[Any]] | None) -> None:
    """Limit `select` (source number `source`) to what sorts after the cursor in (score, source,
    key) order."""
    if cursor is None:
        return
    score, at_source, keys = cursor
    select.params["c_score"] = score
    if source < at_source:
        select.where.append(f"{select.score} > :c_score")
    elif source > at_source:
        select.where.append(f"{select.score} >= :c_score")
    else:
        if len(keys) != len(select.keys):
            raise InvalidRequest("invalid cursor: it belongs to a different search")
        names = []
        for i, key in enumerate(keys):
            select.params[f"c_k{i}"] = key
            names.append(f":c_k{i}")
        select.where.append(f"({select.score}, {', '.join(select.keys)}) > (:c_score, {', '.join(names)})")


# -- the search ----------------------------------------------------------------------------------

# The source number of the row that says SQLite's index has queued changes (`unless_pending`).
_PENDING = -1


def _bind(statement: Any, params: dict[str, Any]) -> Any:
    """Bind with the column type of dates (UTC on both databases)."""
    from sqlalchemy import bindparam

    dates = [bindparam(k, type_=UTCDateTime) for k in params if k.endswith(("since", "until"))]
    return statement.bindparams(*dates) if dates else statement


async def search(
    conn: AsyncConnection,
    q: str | TextQuery,
    filters: SearchFilters,
    *,
    limit: int = 20,
    cursor: str | None = None,
    unless_pending: bool = False,
) -> SearchPage | None:
    """The best `limit` hits after `cursor`, each with its snippet and what to open.

    `unless_pending` (SQLite): None instead when the index has queued changes to apply first
    (`genvault.search.pending`), checked in the search statement itself, in its snapshot: one
    round trip through aiosqlite's thread less than a query of its own (0.3-0.9 ms under load)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise InvalidRequest("since must be before until")
    query = parse_query(q) if isinstance(q, str) else q
    after = _decode_cursor(cursor) if cursor else None
    dialect = conn.dialect.name
    # One statement for every source (one round trip): each source's ranked top `limit + 1`, its
    # key columns padded to the widest source's.
    parts: list[str] = []
    params: dict[str, Any] = {}
    widths: dict[int, int] = {}
    width = 3 if dialect == "postgresql" else 1
    pads = ["NULL::varchar", "NULL::int"]
    for kind in filters.sources():
        number = SOURCES.index(kind)
        select = _source(dialect, kind, query, filters, ranked=True)
        for name in ("since", "until"):
            value = getattr(filters, name)
            if value is not None:
                select.params[name] = value
        _after(select, number, after)
        widths[number] = len(select.keys)
        padding = "".join(f", {pads[i - 1]} AS k{i}" for i in range(len(select.keys), width))
        sql, source_params = _prefixed(select.sql(limit + 1), select.params, kind)
        parts.append(f"SELECT {number} AS src, s{number}.*{padding} FROM ({sql}) AS s{number}")
        params |= source_params
    if unless_pending and dialect == "sqlite":
        parts.append(f"SELECT {_PENDING} AS src, 0.0 AS score, NULL AS k0 WHERE EXISTS (SELECT 1 FROM {SQLITE_QUEUE})")
    ranked: list[tuple[float, int, tuple[Any, ...]]] = []
    if parts:
        statement = _bind(text(" UNION ALL ".join(parts)), params)
        for row in (await conn.execute(statement, params)).all():
            number = int(row[0])
            if number == _PENDING:
                return None
            ranked.append((float(row[1]), number, tuple(row[2 : 2 + widths[number]])))
    ranked.sort()
    page = ranked[:limit]
    next_cursor = _encode_cursor(*page[-1][:2], page[-1][2]) if len(ranked) > limit and page else None
    items = await _hydrate(conn, dialect, query, page)
    return SearchPage(items=items, next_cursor=next_cursor)


async def _hydrate(
    conn: AsyncConnection, dialect: str, query: TextQuery, page: list[tuple[float, int, tuple[Any, ...]]]
) -> list[SearchHit]:
    """The page's documents, read by key, with their snippets."""
    by_source: dict[int, list[tuple[Any, ...]]] = {}
    for _, number, keys in page:
        by_source.setdefault(number, []).append(keys)
    found: dict[tuple[int, tuple[Any, ...]], dict[str, Any]] = {}
    for number, document in await _read_documents(conn, dialect, by_source):
        found[(number, document["_key"])] = document
    hits: list[SearchHit] = []
    for score, number, keys in page:
        row = found.get((number, keys))
        if row is None:  # deleted between the two reads
            continue
        texts = [row.get("body"), row.get("output"), row.get("prompt")]
        shown = next((s for s in (snippet(t, query) for t in texts if t) if s), None)
        if shown is None:
            shown = snippet(" ".join(t for t in texts if t), query) or ""
        kind = SOURCES[number]
        url = (
            f"/chat/{quote(row['chat_id'], safe='')}?message={quote(row['message_id'], safe='')}"
            if kind == "message"
            else f"/chat/{quote(row['chat_id'], safe='')}"
            if kind == "chat"
            else f"/generate/{quote(row['generation_id'], safe='')}"
        )
        hits.append(
            SearchHit(
                kind=kind,
                score=score,
                snippet=shown,
                user_id=row["user_id"],
                chat_id=row.get("chat_id"),
                chat_title=row.get("chat_title"),
                message_id=row.get("message_id"),
                role=row.get("role"),
                generation_id=row.get("generation_id"),
                model=row.get("model"),
                status=row.get("status"),
                created_at=row["created_at"],
                url=url,
            )
        )
    return hits


_DATE = UTCDateTime()


# The columns every source's document query returns, in this order (a source without one returns
# NULL), so that one statement reads the documents of a page's every source.
_DOC_COLUMNS = (
    ("chat_id", "varchar"),
    ("message_id", "varchar"),
    ("generation_id", "varchar"),
    ("user_id", "varchar"),
    ("body", "text"),
    ("prompt", "text"),
    ("output", "text"),
    ("role", "varchar"),
    ("created_at", None),
    ("chat_title", "varchar"),
    ("model", "varchar"),
    ("status", "varchar"),
)


def _document_select(dialect: str, kind: Kind, keys: list[tuple[Any, ...]]) -> tuple[str, dict[str, Any], int]:
    """One source's documents by key: (SQL with `_k0…_k2` and `_DOC_COLUMNS`, params, key width)."""
    params: dict[str, Any]
    if dialect == "sqlite":
        params = {f"r{i}": k[0] for i, k in enumerate(keys)}
        where = {"message": "p.rowid", "chat": "c.rowid", "generation": "g.rowid"}[kind]
        cond = f"{where} IN ({', '.join(':' + n for n in params)})"
        key_cols = [where]
    else:
        # The keys as arrays, so the statement's text is the same for every page (one prepared
        # statement, planned once, instead of a new `IN ((…), (…))` list to plan on every search:
        # planning that join took longer than running it).
        key_cols = {"message": ["p.chat_id", "p.message_id", "p.position"], "chat": ["c.id"], "generation": ["g.id"]}[
            kind
        ]
        if kind == "message":
            params = {"kc": [k[0] for k in keys], "km": [k[1] for k in keys], "kp": [int(k[2]) for k in keys]}
            cond = (
                "(p.chat_id, p.message_id, p.position) IN (SELECT * FROM unnest(CAST(:kc AS varchar[]), "
                "CAST(:km AS varchar[]), CAST(:kp AS int[])))"
            )
        else:
            params = {"ids": [k[0] for k in keys]}
            cond = f"{key_cols[0]} = ANY(CAST(:ids AS varchar[]))"
    pg = dialect == "postgresql"
    key_pads = ["NULL::varchar", "NULL::int"] if pg else ["NULL", "NULL"]
    keys_sql = ", ".join(
        [f"{c} AS _k{i}" for i, c in enumerate(key_cols)]
        + [f"{key_pads[i - 1]} AS _k{i}" for i in range(len(key_cols), 3)]
    )
    if kind == "message":
        values = {
            "chat_id": "p.chat_id",
            "message_id": "p.message_id",
            "user_id": "p.user_id",
            "body": "p.text_text",
            "role": "m.role",
            "created_at": "m.created_at",
            "chat_title": "c.title",
            "model": "g.model",
            "status": "g.status",
        }
        frm = (
            "parts p JOIN messages m ON m.chat_id = p.chat_id AND m.id = p.message_id "
            "JOIN chats c ON c.id = p.chat_id LEFT JOIN generations g ON g.id = m.generation_id"
        )
        values["generation_id"] = "m.generation_id"
    elif kind == "chat":
        values = {
            "chat_id": "c.id",
            "user_id": "c.user_id",
            "body": "c.title",
            "chat_title": "c.title",
            "created_at": "c.created_at",
        }
        frm = "chats c"
    else:
        values = {
            "generation_id": "g.id",
            "user_id": "g.user_id",
            "chat_id": "g.chat_id",
            "prompt": "json_extract(g.request, '$.prompt')" if dialect == "sqlite" else "g.request ->> 'prompt'",
            "output": "g.result_text",
            "model": "g.model",
            "status": "g.status",
            "created_at": "g.created_at",
        }
        frm = "generations g"
    columns = ", ".join(
        f"{values[name]} AS {name}" if name in values else (f"NULL::{cast} AS {name}" if pg else f"NULL AS {name}")
        for name, cast in _DOC_COLUMNS
    )
    return f"SELECT {keys_sql}, {columns} FROM {frm} WHERE {cond}", params, len(key_cols)


async def _read_documents(
    conn: AsyncConnection, dialect: str, keys: dict[int, list[tuple[Any, ...]]]
) -> list[tuple[int, dict[str, Any]]]:
    """The documents of a page, every source's in one statement (one round trip)."""
    if not keys:
        return []
    parts: list[str] = []
    params: dict[str, Any] = {}
    widths: dict[int, int] = {}
    for number, source_keys in keys.items():
        kind = SOURCES[number]
        sql, source_params, widths[number] = _document_select(dialect, kind, source_keys)
        sql, source_params = _prefixed(sql, source_params, kind)
        parts.append(f"SELECT {number} AS _src, d{number}.* FROM ({sql}) AS d{number}")
        params |= source_params
    rows = (await conn.execute(text(" UNION ALL ".join(parts)), params)).all()
    out = []
    for row in rows:
        number = int(row[0])
        record = {k: v for k, v in row._mapping.items() if not k.startswith("_")}
        record["_key"] = tuple(row[1 : 1 + widths[number]])
        created = record.get("created_at")
        if isinstance(created, str):  # SQLite: text through the column type's own reader
            record["created_at"] = _DATE.process_result_value(datetime.fromisoformat(created), conn.dialect)
        else:
            record["created_at"] = _DATE.process_result_value(created, conn.dialect)
        out.append((number, record))
    return out


# -- list filters (GET /api/chats?q=, /api/generations?q=) ---------------------------------------


def _id_select(
    dialect: str, kind: Kind, query: TextQuery, user_id: str | None, column: str
) -> tuple[str, dict[str, Any]]:
    select = _source(dialect, kind, query, SearchFilters(user_id=user_id))
    return _prefixed(f"SELECT {column} FROM {select.frm} WHERE {' AND '.join(select.where)}", select.params, kind)


def _prefixed(sql: str, params: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """`sql` with its parameters renamed `prefix_name`, so two sources' SQL can share a statement."""
    for name in sorted(params, key=len, reverse=True):
        sql = re.sub(rf"(?<![:\w]):{name}\b", f":{prefix}_{name}", sql)
    return sql, {f"{prefix}_{k}": v for k, v in params.items()}


def matching_chats(dialect: str, q: str, user_id: str | None) -> tuple[str, dict[str, Any]]:
    """SQL for the ids of the chats whose title or any message matches `q` (and its params)."""
    query = parse_query(q)
    by_title, params = _id_select(dialect, "chat", query, user_id, "c.id")
    by_message, more = _id_select(dialect, "message", query, user_id, "p.chat_id")
    return f"{by_title} UNION {by_message}", params | more


def matching_generations(dialect: str, q: str, user_id: str | None) -> tuple[str, dict[str, Any]]:
    """SQL for the ids of the generations whose prompt or output matches `q`, or whose reply
    message (a chat turn's) does."""
    query = parse_query(q)
    direct, params = _id_select(dialect, "generation", query, user_id, "g.id")
    select = _source(dialect, "message", query, SearchFilters(user_id=user_id))
    by_reply, more = _prefixed(
        f"SELECT m.generation_id FROM {select.frm} JOIN messages m ON m.chat_id = p.chat_id AND m.id = p.message_id "
        f"WHERE {' AND '.join(select.where)} AND m.generation_id IS NOT NULL",
        select.params,
        "message",
    )
    return f"{direct} UNION {by_reply}", params | more
