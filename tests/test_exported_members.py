"""The public API is what `genvault.__all__` says, and nothing leaks by accident."""

import genvault


def test_all_exports_exist_and_are_sorted() -> None:
    assert genvault.__all__ == sorted(genvault.__all__)
    for name in genvault.__all__:
        assert hasattr(genvault, name), name


def test_the_public_api_is_pinned() -> None:
    assert genvault.__all__ == [
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
