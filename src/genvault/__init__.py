"""genvault keeps every AI generation.

Each generation gets an ID and a `pending` record before the model is called, is saved while it
streams, and ends `complete`, `error`, `cancelled` or `interrupted` with its model, token usage,
exact cost, timings and owner::

    from genvault import Vault

    async with Vault() as vault:
        record = await vault.generate("Write a haiku", model="offline/test-model")
        async for chunk in vault.stream(record.id):
            ...
        final = await vault.wait(record.id)
"""

from genvault.errors import (
    BlobNotFound,
    CallerError,
    Conflict,
    Forbidden,
    GenvaultError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RuntimeFailure,
    StorageError,
    Unauthorized,
    UnsupportedMediaType,
)
from genvault.records import FileRecord, Generation, Page, Usage, UsageRow
from genvault.settings import Settings
from genvault.vault import GenerationParams, Vault

__all__ = [
    "BlobNotFound",
    "CallerError",
    "Conflict",
    "FileRecord",
    "Forbidden",
    "Generation",
    "GenerationParams",
    "GenvaultError",
    "InvalidRequest",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "ProviderError",
    "RuntimeFailure",
    "Settings",
    "StorageError",
    "Unauthorized",
    "UnsupportedMediaType",
    "Usage",
    "UsageRow",
    "Vault",
]
