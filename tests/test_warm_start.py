"""Warm start (`server/warm.py`): the pools' connections opened before the first request, within
the configured sizes, and a database that cannot be reached then leaving the start as it was."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from genvault.server.metrics import Metrics
from genvault.server.warm import warm_store
from genvault.store import Store


@pytest.mark.postgres
async def test_postgres_pools_are_opened_up_to_their_sizes(pg_schema: tuple[str, str]) -> None:
    store = Store(pg_schema[0], schema=pg_schema[1], pool_size=2, max_overflow=2)
    try:
        await warm_store(store)
        drivers = store._drivers
        assert drivers is not None
        assert drivers.open == drivers.size == 2
        pool = store.engine.sync_engine.pool
        assert pool.checkedin() == pool.size() == 2  # type: ignore[attr-defined]
        assert pool.overflow() <= 0  # type: ignore[attr-defined]
        async with store.driver() as driver:  # the opened connections serve as usual
            assert await driver.run(lambda conn: conn.fetchval("SELECT 1"), what="read") == 1
        assert drivers.open == 2
    finally:
        await store.aclose()


async def test_sqlite_writer_readers_and_pool_are_opened_up_to_their_sizes(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=2, max_overflow=1)
    try:
        await warm_store(store)
        assert store._sqlite_writer is not None
        readers = store._sqlite_readers
        assert readers is not None
        assert len(readers._idle) == readers._size == 3
        pool = store.engine.sync_engine.pool
        assert pool.checkedin() == pool.size() == 2  # type: ignore[attr-defined]
        async with store.sqlite_reader() as reader:
            assert reader is not None
        assert len(readers._idle) == 3
    finally:
        await store.aclose()


async def test_an_unreachable_database_leaves_the_pools_to_open_on_demand(caplog: pytest.LogCaptureFixture) -> None:
    store = Store("postgresql://genvault@127.0.0.1:1/none", pool_size=2, max_overflow=2, pool_timeout=1)
    try:
        with caplog.at_level(logging.WARNING, logger="genvault.server.warm"):
            await warm_store(store)  # no exception: the start goes on as before
        assert "could not open the database pools' connections" in caplog.text
        assert store._drivers is not None
        assert store._drivers.open == 0
    finally:
        await store.aclose()


def test_metrics_series_of_the_known_models_exist_before_any_turn() -> None:
    metrics = Metrics()
    metrics.prepare(["offline/test-model"])
    before = len(metrics._series)
    assert before == 4  # one per final status
    metrics._children("offline/test-model", "complete")
    assert len(metrics._series) == before  # a finishing turn makes nothing new
