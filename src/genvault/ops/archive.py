"""The genvault archive: one JSONL stream holding a user's records or the whole database.

Invariants (docs/archive-format.md is the reader's version):
- Deterministic: tables in foreign-key order, rows in primary-key order (byte order on every
  database: `COLLATE "C"` on PostgreSQL), columns in schema order, compact JSON with
  `ensure_ascii=False`, no timestamps of the export itself. The same data exported from SQLite
  or PostgreSQL gives the same bytes, so export → import → export is byte-identical.
- Consistent: everything is read in one transaction (a REPEATABLE READ snapshot on PostgreSQL,
  one WAL read transaction on SQLite), so concurrent writes are either wholly in or wholly out.
- Generic: the rows come from the schema's tables as they are, so a table added later is
  exported, imported and erased without changes here. Client JSON (`JSONText`) keeps its key
  order; an absent key (SQL NULL) is left out of the row, JSON `null` is written as `null`.
  Our own JSON columns are written with sorted keys (JSONB on PostgreSQL does not keep order).
- Checked: the last line counts what came before, so a truncated archive is refused.
- Readable: a user's archive also carries each chat as AI SDK UIMessages (derived from the rows;
  an import rebuilds them from the rows and refuses the archive if they differ).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import JSON, Column, String, Table, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.blobs import BlobStore
from genvault.errors import Conflict, InvalidRequest, StorageError
from genvault.store import Store
from genvault.store.chats import load_all_messages
from genvault.store.schema import (
    MISSING,
    JSONText,
    UTCDateTime,
    blobs,
    chats,
    data_tables,
    generations,
    metadata,
    owned_by,
    users,
)
from genvault.store.text import check_storable
from genvault.validation import MAX_JSON_DEPTH, json_depth_exceeds

__all__ = [
    "FORMAT",
    "VERSION",
    "ArchiveCounts",
    "ObjectSink",
    "ObjectSource",
    "blob_objects",
    "blob_sink",
    "count_objects",
    "count_rows",
    "export_lines",
    "import_lines",
    "open_lines",
    "read_archive_lines",
    "snapshot",
    "tables_for",
]

FORMAT = "genvault-archive"
VERSION = 1
BATCH = 500

Scope = Literal["user", "all"]
ArchiveCounts = dict[str, int]
# Yields (sha256 hex, bytes) of every blob object the exported rows reference, sorted by hash.
ObjectSource = Callable[[AsyncConnection, str | None], AsyncIterator[tuple[str, bytes]]]
# Stores one object during import; returns nothing, raises on a hash mismatch.
ObjectSink = Callable[[str, bytes], Awaitable[None]]
Progress = Callable[[str, int], None]

# Credentials are not a person's content, and a personal export may be handed to anyone: API key
# hashes go only into whole-database archives. Audit events are about users, not of them; cache
# entries are derived state.
_NOT_PERSONAL = {"api_keys", "audit_events", "cache_entries", "user_passwords"}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _sorted_json(value: Any) -> Any:
    """The same JSON with every object's keys in sorted order (JSONB forgets the original order)."""
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def tables_for(scope: Scope) -> list[Table]:
    """The tables an archive of this scope holds, parents before children."""
    if scope == "all":
        return data_tables()
    return [t for t in data_tables() if t.name not in _NOT_PERSONAL and (t is users or "user_id" in t.columns)]


def _encode_row(table: Table, row: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        value = row[column.name]
        if value is MISSING:
            continue  # an absent client-JSON key; see the module docstring
        if value is None or isinstance(column.type, JSONText):
            out[column.name] = value
        elif isinstance(value, datetime):
            out[column.name] = value.isoformat()
        elif isinstance(column.type, JSON):
            out[column.name] = _sorted_json(value)
        elif isinstance(value, bool | int | str):
            out[column.name] = value
        else:  # pragma: no cover - a new column type must be taught here first
            raise TypeError(f"cannot archive {table.name}.{column.name} of type {type(value).__name__}")
    return out


def _decode_row(table: Table, row: Any, line_no: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InvalidRequest(f"line {line_no}: the row of {table.name} must be a JSON object")
    unknown = set(row) - set(table.columns.keys())
    if unknown:
        raise InvalidRequest(
            f"line {line_no}: {table.name} has no column {sorted(unknown)[0]!r}; "
            "was the archive made by a newer genvault? upgrade genvault, then import again"
        )
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in row:
            out[column.name] = MISSING if isinstance(column.type, JSONText) else None
            continue
        value = row[column.name]
        if value is not None and isinstance(column.type, UTCDateTime):
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise InvalidRequest(f"line {line_no}: {table.name}.{column.name} is not an ISO time") from None
            if value.tzinfo is None:
                raise InvalidRequest(f"line {line_no}: {table.name}.{column.name} has no timezone")
        elif isinstance(value, str) and isinstance(column.type, String) and column.type.length is not None:
            # The width PostgreSQL enforces, enforced on SQLite too: an archive loads on both or neither.
            if len(value) > column.type.length:
                raise InvalidRequest(
                    f"line {line_no}: {table.name}.{column.name} has {len(value)} characters; "
                    f"the column holds {column.type.length}"
                )
            check_storable(value, f"line {line_no}: {table.name}.{column.name}")
        out[column.name] = value
    return out


def blob_objects(store: BlobStore) -> ObjectSource:
    """The objects the exported `blobs` rows name, sorted by sha256, each checked against its hash."""

    async def source(conn: AsyncConnection, user_id: str | None) -> AsyncIterator[tuple[str, bytes]]:
        query = select(blobs.c.sha256).group_by(blobs.c.sha256).order_by(*_order(conn, blobs, [blobs.c.sha256]))
        if user_id is not None:
            query = query.where(blobs.c.user_id == user_id)
        for sha256 in (await conn.execute(query)).scalars().all():
            data = await store.get(sha256)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise StorageError(f"blob {sha256} does not match its hash in the blob store; run genvault verify")
            yield sha256, data

    return source


def blob_sink(store: BlobStore) -> ObjectSink:
    async def sink(sha256: str, data: bytes) -> None:
        if await store.put(data) != sha256:  # pragma: no cover - the archive line was checked already
            raise StorageError(f"blob {sha256} changed on its way into the blob store")

    return sink


def _order(conn: AsyncConnection, table: Table, columns: Iterable[Any] | None = None) -> list[Any]:
    """Primary-key order, by bytes on every database (PostgreSQL's default collation is not)."""
    keys: list[Any] = []
    for column in columns if columns is not None else table.primary_key.columns:
        if conn.dialect.name == "postgresql" and column.type.python_type is str:
            keys.append(column.collate("C"))
        else:
            keys.append(column)
    return keys


@asynccontextmanager
async def snapshot(store: Store) -> AsyncIterator[AsyncConnection]:
    """A read-only connection whose reads all see one consistent state of the database."""
    async with store.read() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
            await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            # The first read of the file starts SQLite's WAL snapshot (a bare `SELECT 1` would not);
            # every later read in this transaction sees that same state.
            await conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
        yield conn


async def count_rows(conn: AsyncConnection, scope: Scope, user_id: str | None) -> ArchiveCounts:
    counts: ArchiveCounts = {}
    for table in tables_for(scope):
        query = select(func.count()).select_from(table)
        if scope == "user":
            assert user_id is not None
            query = query.where(owned_by(table, user_id))
        counts[table.name] = int((await conn.execute(query)).scalar() or 0)
    return counts


async def count_objects(conn: AsyncConnection, user_id: str | None) -> int:
    """How many distinct blob objects an archive of this scope holds."""
    query = select(func.count(func.distinct(blobs.c.sha256)))
    if user_id is not None:
        query = query.where(blobs.c.user_id == user_id)
    return int((await conn.execute(query)).scalar() or 0)


async def export_lines(
    conn: AsyncConnection,
    *,
    user_id: str | None = None,
    objects: ObjectSource | None = None,
    progress: Progress | None = None,
) -> AsyncIterator[bytes]:
    """The archive, line by line (each ends with a newline). `user_id=None`: the whole database.

    Run it on a `snapshot` connection. `progress(table, rows)` is told after each batch."""
    scope: Scope = "all" if user_id is None else "user"
    header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "scope": scope}
    if user_id is not None:
        header["user_id"] = user_id
    header["tables"] = [t.name for t in tables_for(scope)]
    digest = hashlib.sha256()

    def line(obj: dict[str, Any]) -> bytes:
        data = (dumps(obj) + "\n").encode()
        digest.update(data)
        return data

    yield line(header)
    counts: ArchiveCounts = {}
    for table in tables_for(scope):
        query = select(table).order_by(*_order(conn, table))
        if user_id is not None:
            query = query.where(owned_by(table, user_id))
        result = await conn.stream(query)
        n = 0
        async for batch in result.mappings().partitions(BATCH):
            for row in batch:
                yield line({"table": table.name, "row": _encode_row(table, row)})
            n += len(batch)
            if progress is not None:
                progress(table.name, len(batch))
        counts[table.name] = n
    n_views = 0
    if user_id is not None:
        # The user's chats as AI SDK UIMessages, for people and tools that read the archive; an
        # import rebuilds them from the rows above and checks they are identical.
        query = select(chats.c.id).where(chats.c.user_id == user_id).order_by(*_order(conn, chats))
        for chat_id in (await conn.execute(query)).scalars().all():
            yield line({"chat": chat_id, "messages": await load_all_messages(conn, chat_id)})
            n_views += 1
    n_objects = 0
    if objects is not None:
        async for sha256, data in objects(conn, user_id):
            yield line({"object": f"sha256:{sha256}", "size": len(data), "data": base64.b64encode(data).decode()})
            n_objects += 1
            if progress is not None:
                progress("objects", 1)
    # The trailer proves the archive is whole: counts, and the hash of every line before it.
    end = {"rows": counts, "uimessages": n_views, "objects": n_objects, "sha256": digest.hexdigest()}
    yield (dumps({"end": end}) + "\n").encode()


def open_lines(path: Path) -> Iterable[bytes]:
    """The lines of an archive file, gunzipped when it is gzip (by its magic bytes, not its name)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            yield from gz
    else:
        with path.open("rb") as raw:
            yield from raw


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InvalidRequest(f"no archive at {path}: give the path of a file `genvault export` wrote")


async def read_archive_lines(path: Path) -> AsyncIterator[bytes]:
    _check_file(path)
    for data in open_lines(path):
        yield data


class _Importer:
    def __init__(self, conn: AsyncConnection, objects: ObjectSink | None) -> None:
        self.conn = conn
        self.objects = objects
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.counts: ArchiveCounts = {}
        self.n_objects = 0
        self.n_views = 0
        self.current: Table | None = None
        # Rows of self-referencing tables (generations.cached_from) go in without the reference,
        # which is set once every row exists: an archive's order need not follow those links
        # (and generations without their reservation, likewise set after: `_deferred_columns`).
        self.deferred: list[tuple[Table, dict[str, Any], dict[str, Any]]] = []

    def _deferred_columns(self, table: Table) -> list[Column[Any]]:
        deferred = [c for c in table.columns if any(fk.column.table is table for fk in c.foreign_keys)]
        if table is generations:
            # A running record's budget hold: the insert's trigger would take it again (or refuse
            # it) on top of the archive's `limit_usage` rows, which count it already.
            deferred.append(generations.c.reservation)
        return deferred

    async def add(self, table: Table, row: dict[str, Any]) -> None:
        if self.current is not None and self.current is not table:
            await self.flush(self.current)  # parents are in before their children's first batch
        self.current = table
        self.pending.setdefault(table.name, []).append(row)
        self.counts[table.name] = self.counts.get(table.name, 0) + 1
        if len(self.pending[table.name]) >= BATCH:
            await self.flush(table)

    async def flush(self, table: Table) -> None:
        rows = self.pending.pop(table.name, [])
        if not rows:
            return
        refs = self._deferred_columns(table)
        if refs:
            for row in rows:
                links = {c.name: row[c.name] for c in refs if row.get(c.name) is not None}
                if links:
                    self.deferred.append((table, {c.name: row[c.name] for c in table.primary_key.columns}, links))
                    row.update(dict.fromkeys(links))
        if table is users:
            # The target may already know the user (the local user, or a user re-imported after
            # erasure): the archive's row wins, the rest is inserted.
            existing = set(
                (await self.conn.execute(select(users.c.id).where(users.c.id.in_([r["id"] for r in rows]))))
                .scalars()
                .all()
            )
            for row in (r for r in rows if r["id"] in existing):
                await self.conn.execute(update(users).where(users.c.id == row["id"]).values(**row))
            rows = [r for r in rows if r["id"] not in existing]
            if not rows:
                return
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(insert(table), rows)
        except IntegrityError as exc:
            if "foreign key" in str(exc.orig).lower():
                raise InvalidRequest(
                    f"a {table.name} row refers to a record that is neither in the archive nor in the target "
                    "database: the archive is damaged or incomplete"
                ) from None
            raise Conflict(
                f"the target database already holds some of these {table.name} rows ({exc.orig}); "
                "import into an empty database, or erase the user there first"
            ) from None

    async def finish(self) -> None:
        for table in metadata.sorted_tables:
            await self.flush(table)
        for table, key, links in self.deferred:
            where = and_(*(table.c[name] == value for name, value in key.items()))
            await self.conn.execute(update(table).where(where).values(**links))
        self.deferred = []


async def import_lines(
    conn: AsyncConnection,
    lines: AsyncIterable[bytes] | Iterable[bytes],
    *,
    objects: ObjectSink | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Load an archive inside the caller's transaction; returns its header with the row counts.

    Everything is checked before the caller commits: the header, every row against the schema,
    the trailer's counts and hash. Any problem raises and the caller's rollback leaves nothing."""
    importer = _Importer(conn, objects)
    digest = hashlib.sha256()
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    line_no = 0
    known = {t.name: t for t in metadata.sorted_tables}

    async def each() -> AsyncIterator[bytes]:
        if isinstance(lines, AsyncIterable):
            async for data in lines:
                yield data
        else:
            for data in lines:
                yield data

    async for data in each():
        line_no += 1
        if trailer is not None:
            raise InvalidRequest(f"line {line_no}: data after the archive's end line")
        raw = data.encode() if isinstance(data, str) else data
        if json_depth_exceeds(raw, MAX_JSON_DEPTH + 4):  # + the line's own envelope
            raise InvalidRequest(f"line {line_no}: nests more than {MAX_JSON_DEPTH} deep; no export does")
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(f"line {line_no}: not JSON; is this a genvault archive?") from None
        if not isinstance(obj, dict):
            raise InvalidRequest(f"line {line_no}: expected a JSON object")
        if header is None:
            if obj.get("format") != FORMAT:
                raise InvalidRequest("this is not a genvault archive (its first line has no format: genvault-archive)")
            if obj.get("version") != VERSION:
                raise InvalidRequest(f"archive version {obj.get('version')!r} is not supported (this genvault reads 1)")
            header = obj
        elif "end" in obj:
            trailer = obj["end"]
            continue
        elif "table" in obj:
            table = known.get(obj["table"])
            if table is None:
                raise InvalidRequest(f"line {line_no}: unknown table {obj['table']!r}; upgrade genvault")
            await importer.add(table, _decode_row(table, obj.get("row"), line_no))
            if progress is not None:
                progress(table.name, 1)
        elif "chat" in obj:
            await importer.finish()
            stored = await load_all_messages(conn, str(obj["chat"]))
            if stored != obj.get("messages"):
                raise InvalidRequest(
                    f"line {line_no}: the UIMessages of chat {obj['chat']!r} differ from its rows: "
                    "the archive is damaged"
                )
            importer.n_views += 1
        elif "object" in obj:
            await _import_object(obj, line_no, objects)
            importer.n_objects += 1
            if progress is not None:
                progress("objects", 1)
        else:
            raise InvalidRequest(f"line {line_no}: neither a row, an object nor the end line")
        digest.update(data if data.endswith(b"\n") else data + b"\n")
    if header is None:
        raise InvalidRequest("the archive is empty")
    if trailer is None:
        raise InvalidRequest("the archive has no end line: it was cut short; export it again")
    await importer.finish()
    expected_rows = {k: v for k, v in (trailer.get("rows") or {}).items() if v}
    if (
        {k: v for k, v in importer.counts.items() if v} != expected_rows
        or trailer.get("objects") != importer.n_objects
        or trailer.get("uimessages", 0) != importer.n_views
    ):
        raise InvalidRequest("the archive's end line does not match its contents: it is damaged")
    if trailer.get("sha256") != digest.hexdigest():
        raise InvalidRequest("the archive's checksum does not match its contents: it is damaged")
    return {**header, "rows": importer.counts, "objects": importer.n_objects}


async def _import_object(obj: dict[str, Any], line_no: int, sink: ObjectSink | None) -> None:
    name = str(obj.get("object", ""))
    if not name.startswith("sha256:"):
        raise InvalidRequest(f"line {line_no}: object names must be sha256:<hex>")
    try:
        data = base64.b64decode(obj.get("data", ""), validate=True)
    except ValueError:
        raise InvalidRequest(f"line {line_no}: object data is not base64") from None
    sha256 = name.removeprefix("sha256:")
    if hashlib.sha256(data).hexdigest() != sha256 or len(data) != obj.get("size"):
        raise InvalidRequest(f"line {line_no}: object {name} does not match its hash or size")
    if sink is None:
        raise InvalidRequest("this archive holds files, but no blob store is configured to receive them")
    await sink(sha256, data)
