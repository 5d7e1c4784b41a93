"""Blob store backends for the contract suite: every test runs on each of them (the local
directory, a real S3-protocol server on loopback, and the in-memory twin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genvault.blobs import BlobStore, blob_store_from_settings
from genvault.settings import Settings


@pytest.fixture(params=["local", "s3"])
def persistent_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of a backend another process can open too (for the killed-writer tests)."""
    values: dict[str, Any] = {"data_dir": tmp_path / "data"}
    if request.param == "s3":
        values.update(request.getfixturevalue("s3_settings"))
    return Settings(**values)


@pytest.fixture(params=["local", "s3", "memory"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return BlobStore.memory()
    values: dict[str, Any] = {"data_dir": tmp_path / "data"}
    if request.param == "s3":
        values.update(request.getfixturevalue("s3_settings"))
    return blob_store_from_settings(Settings(**values))
