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


def test_the_webhooks_and_feedback_packages_export_what_they_pin() -> None:
    from genvault import feedback, webhooks

    assert webhooks.__all__ == [
        "EVENTS",
        "Delivery",
        "DeliveryStatus",
        "Webhook",
        "WebhookCreated",
        "Webhooks",
        "enqueue",
        "enqueue_chat_deleted",
        "enqueue_generation",
        "enqueue_user_erased",
        "generation_data",
        "sign",
        "verify",
    ]
    assert feedback.__all__ == ["MAX_COMMENT", "FeedbackService", "Rating", "RatingValue"]
    for module in (webhooks, feedback):  # the order: ruff's RUF022 (isort-style)
        for name in module.__all__:
            assert getattr(module, name) is not None
