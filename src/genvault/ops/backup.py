"""Backups of a running deployment, and restoring one into an empty database.

A backup is a directory:

    manifest.json        format, version, dialect, schema revision, row counts per table
    database.sqlite3     SQLite: a page-for-page copy made with SQLite's online backup API
    database.jsonl       PostgreSQL: the whole-database archive (docs/archive-format.md)
    objects.jsonl        the blob manifest: {"sha256", "size"} of every object the rows name
    objects/ab/abcd…     those objects' bytes, each checked against its sha256 when copied

Blobs are copied after the database snapshot, by the hashes the snapshot's rows name: objects are
content-addressed and immutable, so the copy matches the snapshot (an object erased in between is
reported, not silently skipped).

Consistency while the server writes: SQLite's backup API copies the database in one step under
one read transaction (WAL lets writers go on meanwhile), so the copy is one committed state. On
PostgreSQL the archive is read in one REPEATABLE READ READ ONLY transaction, one snapshot. We use
the logical archive rather than `pg_dump` because it needs no client binary matching the server's
major version, restores into SQLite as well as PostgreSQL (it is also how a SQLite deployment
moves to PostgreSQL), and is checked line by line with the same code as `genvault import`.

The backup is written under `<path>.partial` and renamed when complete, so a directory named
`path` is always a whole backup. Restore refuses a target that already holds any row, loads the
backup in one transaction, marks `interrupted` the generations the snapshot caught running
(nothing will finish them), then checks the row counts against the manifest and runs `verify`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select, text

from genvault.blobs import BlobNotFound, BlobStore
from genvault.errors import Conflict, InvalidRequest, StorageError
from genvault.ops.archive import count_rows, export_lines, import_lines, read_archive_lines, snapshot
from genvault.ops.verify import VerifyReport, verify
from genvault.store import Store
from genvault.store.generations import ACTIVE, sweep_expired
from genvault.store.schema import LOCAL_USER_ID, blobs, data_tables, generations, users

__all__ = ["BACKUP_FORMAT", "BackupManifest", "RestoreReport", "backup", "restore"]

BACKUP_FORMAT = "genvault-backup"
Progress = Callable[[str, int], None]


class BackupManifest(BaseModel):
    format: str = BACKUP_FORMAT
    version: int = 1
    created_at: datetime
    dialect: str
    database: str  # the file in the backup directory
    schema_revision: str | None
    counts: dict[str, int]
    objects: int = 0


class RestoreReport(BaseModel):
    counts: dict[str, int]
    objects: int
    # Generations the backup caught running: nothing runs them after a restore, so they end
    # `interrupted` with their last checkpoint, as the sweeper would mark them.
    interrupted: int
    verify: VerifyReport


async def _referenced(conn: Any) -> list[tuple[str, int]]:
    query = select(blobs.c.sha256, func.max(blobs.c.size)).group_by(blobs.c.sha256).order_by(blobs.c.sha256)
    return [(str(sha), int(size)) for sha, size in (await conn.execute(query)).all()]


def _write_object(partial: Path, sha256: str, data: bytes) -> None:
    folder = partial / "objects" / sha256[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / sha256).write_bytes(data)


async def _copy_objects(store: BlobStore, partial: Path, referenced: list[tuple[str, int]]) -> None:
    lines = []
    for sha256, size in referenced:
        try:
            data = await store.get(sha256)
        except BlobNotFound:
            raise StorageError(
                f"blob {sha256} is referenced but missing from the blob store; run genvault verify"
            ) from None
        if hashlib.sha256(data).hexdigest() != sha256 or len(data) != size:
            raise StorageError(f"blob {sha256} does not match its hash or size; run genvault verify")
        await asyncio.to_thread(_write_object, partial, sha256, data)
        lines.append(json.dumps({"sha256": sha256, "size": size}, separators=(",", ":")) + "\n")
    await asyncio.to_thread((partial / "objects.jsonl").write_text, "".join(lines))


async def _revision(conn: Any) -> str | None:
    try:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()  # type: ignore[no-any-return]
    except Exception:  # pragma: no cover - a database older than Alembic
        return None


def _sqlite_path(store: Store) -> Path:
    database = store.engine.url.database
    if not database or database == ":memory:":
        raise InvalidRequest("an in-memory SQLite database cannot be backed up; use a file database")
    return Path(database)


def _online_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        # pages=-1: the whole database in one step, so the copy is one committed state.
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()


def _prepare(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidRequest(f"{path} already exists; give a new directory for the backup")
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def _publish(partial: Path, path: Path, manifest: BackupManifest) -> None:
    """The manifest last, then the rename: a directory named `path` is always a whole backup."""
    (partial / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    if path.exists():
        path.rmdir()
    partial.rename(path)


async def backup(
    store: Store, path: Path, *, blobs: BlobStore | None = None, progress: Progress | None = None
) -> BackupManifest:
    """Write a consistent backup of the database behind `store` (and of the objects its rows
    reference, with `blobs`) to the new directory `path`."""
    partial = _prepare(path)
    try:
        if store.dialect == "sqlite":
            target = partial / "database.sqlite3"
            await asyncio.to_thread(_online_copy, _sqlite_path(store), target)
            copy = Store(f"sqlite:///{target}")
            try:
                async with snapshot(copy) as conn:
                    counts = await count_rows(conn, "all", None)
                    revision = await _revision(conn)
                    referenced = await _referenced(conn)
            finally:
                await copy.aclose()
            name = "database.sqlite3"
        else:
            name = "database.jsonl"
            async with snapshot(store) as conn:
                counts = await count_rows(conn, "all", None)
                revision = await _revision(conn)
                referenced = await _referenced(conn)
                with (partial / name).open("wb") as out:
                    async for data in export_lines(conn, progress=progress):
                        out.write(data)
        if referenced and blobs is None:
            raise InvalidRequest("the database references files, but no blob store was given to copy them from")
        if blobs is not None:
            await _copy_objects(blobs, partial, referenced)
        manifest = BackupManifest(
            objects=len(referenced),
            created_at=datetime.now(UTC),
            dialect=store.dialect,
            database=name,
            schema_revision=revision,
            counts=counts,
        )
        _publish(partial, path, manifest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def read_manifest(path: Path) -> BackupManifest:
    try:
        data = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        raise InvalidRequest(f"{path} is not a genvault backup (no readable manifest.json)") from None
    if data.get("format") != BACKUP_FORMAT or data.get("version") != 1:
        raise InvalidRequest(f"{path}/manifest.json is not a version 1 genvault backup")
    return BackupManifest.model_validate(data)


async def _table_counts(store: Store) -> dict[str, int]:
    async with store.read() as conn:
        return {
            t.name: int((await conn.execute(select(func.count()).select_from(t))).scalar() or 0) for t in data_tables()
        }


async def _only_local_user(store: Store) -> bool:
    async with store.read() as conn:
        ids = (await conn.execute(select(users.c.id))).scalars().all()
    return list(ids) == [LOCAL_USER_ID]


def _read_object(path: Path, sha256: str, size: int) -> bytes:
    try:
        data = (path / "objects" / sha256[:2] / sha256).read_bytes()
    except OSError:
        raise InvalidRequest(f"the backup is missing object {sha256}") from None
    if hashlib.sha256(data).hexdigest() != sha256 or len(data) != size:
        raise InvalidRequest(f"object {sha256} in the backup does not match its hash or size: the backup is damaged")
    return data


async def _restore_objects(path: Path, manifest: BackupManifest, blobs: BlobStore | None) -> int:
    listing = path / "objects.jsonl"
    entries = [json.loads(line) for line in listing.read_text().splitlines()] if manifest.objects else []
    if len(entries) != manifest.objects:
        raise InvalidRequest(f"the backup lists {len(entries)} objects, its manifest {manifest.objects}")
    if entries and blobs is None:
        raise InvalidRequest("the backup holds files, but no blob store was given to restore them into")
    for entry in entries:
        data = await asyncio.to_thread(_read_object, path, str(entry["sha256"]), int(entry["size"]))
        assert blobs is not None
        await blobs.put(data)
    return len(entries)


async def restore(
    path: Path, target: Store, *, blobs: BlobStore | None = None, progress: Progress | None = None
) -> RestoreReport:
    """Load the backup at `path` into `target`, which must hold no rows, and its objects into
    `blobs`; then check counts, hashes and the invariants `verify` checks."""
    manifest = read_manifest(path)
    await target.upgrade()
    present = {name: n for name, n in (await _table_counts(target)).items() if n}
    if present == {"users": 1} and await _only_local_user(target):
        present = {}  # what any Vault creates on start; the backup's row replaces it
    if present:
        listing = ", ".join(f"{n} {name}" for name, n in sorted(present.items()))
        raise Conflict(f"the target database is not empty ({listing}); restore into a new database")
    source = path / manifest.database
    if not source.is_file():
        raise InvalidRequest(f"the backup is missing {manifest.database}")
    objects = await _restore_objects(path, manifest, blobs)
    if manifest.dialect == "sqlite":
        with tempfile.TemporaryDirectory() as scratch:
            # Work on a copy: bringing an older backup's schema up to date must not change it.
            copy_path = Path(scratch) / "restore.sqlite3"
            shutil.copyfile(source, copy_path)
            copy = Store(f"sqlite:///{copy_path}")
            try:
                await copy.upgrade()
                async with snapshot(copy) as conn, target.write() as out:
                    await import_lines(out, export_lines(conn), progress=progress)
            finally:
                await copy.aclose()
    else:
        async with target.write() as out:
            await import_lines(out, read_archive_lines(source), progress=progress)
    async with target.write() as conn:
        owners = (
            await conn.execute(select(generations.c.lease_owner).where(generations.c.status.in_(ACTIVE)).distinct())
        ).scalars()
        swept = await sweep_expired(conn, now=datetime.now(UTC), dead_owners=[o for o in owners if o is not None])
    counts = await _table_counts(target)
    wrong = {
        name: (n, counts.get(name, 0))
        for name, n in manifest.counts.items()
        if counts.get(name, 0) != n and not (name == "users" and counts.get(name, 0) == n + 1)
    }
    if wrong:
        detail = ", ".join(f"{name}: {want} in the backup, {got} restored" for name, (want, got) in wrong.items())
        raise StorageError(f"the restored database does not match the backup ({detail})")
    report = await verify(target, blobs=blobs)
    return RestoreReport(counts=counts, objects=objects, interrupted=len(swept), verify=report)
