"""Blob store backends for the contract suite: every test runs on each of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genvault.blobs import BlobStore


@pytest.fixture(params=["local", "memory"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore.local(tmp_path / "blobs")
    return BlobStore.memory()


@pytest.fixture
def backend(blob_store: BlobStore) -> Any:
    return blob_store.description
