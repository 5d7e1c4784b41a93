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

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from genvault.records import FileRecord, Generation, Page, Usage, UsageRow
    from genvault.settings import Settings
    from genvault.vault import GenerationParams, Vault

# Imported on first use (PEP 562), so `import genvault.cli` (and `genvault --help`) does not load
# Pydantic, SQLAlchemy and the engine before a command needs them.
_LAZY = {
    "FileRecord": "genvault.records",
    "Generation": "genvault.records",
    "Page": "genvault.records",
    "Usage": "genvault.records",
    "UsageRow": "genvault.records",
    "Settings": "genvault.settings",
    "GenerationParams": "genvault.vault",
    "Vault": "genvault.vault",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genvault' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
