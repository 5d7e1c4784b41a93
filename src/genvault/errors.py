"""Every error genvault raises on purpose.

    GenvaultError
    ├── CallerError            the request is wrong; retrying it unchanged fails again (HTTP 4xx)
    │   ├── InvalidRequest     malformed or out-of-range input (400 / 422)
    │   │   ├── PayloadTooLarge  a body or file over a configured limit (413)
    │   │   └── UnsupportedMediaType  a file whose media type is not allowed (415)
    │   ├── Unauthorized       no or bad credentials (401)
    │   ├── Forbidden          authenticated, but not allowed (403)
    │   ├── NotFound           no such record, or not visible to this user (404)
    │   │   └── BlobNotFound   no object under that sha256 in the blob store
    │   ├── Conflict           the record's state forbids the operation (409)
    │   └── LimitExceeded      a budget, rate or concurrency limit refused the request (429)
    └── RuntimeFailure         something outside the caller's control failed
        ├── StorageError       the database or blob store failed (503)
        │   └── Busy           saturated: no connection within the bounded wait (503 + Retry-After)
        └── ProviderError      the model provider failed or refused

`server/errors.py` is the only place that maps these to HTTP status codes; store and provider
code never import FastAPI.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "BlobNotFound",
    "Busy",
    "CallerError",
    "Conflict",
    "Forbidden",
    "GenvaultError",
    "InvalidRequest",
    "LimitExceeded",
    "NotFound",
    "PayloadTooLarge",
    "ProviderError",
    "RuntimeFailure",
    "StorageError",
    "Unauthorized",
    "UnsupportedMediaType",
]


class GenvaultError(Exception):
    """Root of every error genvault raises on purpose. `code` is a stable machine-readable name."""

    code = "genvault_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallerError(GenvaultError):
    code = "caller_error"


class InvalidRequest(CallerError):
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"


class Unauthorized(CallerError):
    code = "unauthorized"


class Forbidden(CallerError):
    code = "forbidden"


class NotFound(CallerError):
    code = "not_found"


class BlobNotFound(NotFound):
    """The blob store has no object under this sha256 (never written, deleted, or erased)."""

    code = "blob_not_found"

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no stored object with sha256 {sha256}")
        self.sha256 = sha256


class Conflict(CallerError):
    code = "conflict"


class LimitExceeded(CallerError):
    """A limit (`genvault.limits`) refused the request before anything was written.

    `limit` names it (`daily_usd`, `monthly_usd`, `total_usd`, `rpm`, `tpm`, `concurrent`),
    `subject` whose it is (`user:<id>`, `key:<id>`); `limit_value` and `used` are in the limit's
    unit (USD as a decimal string, or a count); `resets_at` is when the window next frees room
    (None: never, for a total budget), `retry_after` the whole seconds until then."""

    code = "limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        subject: str,
        limit_value: str,
        used: str,
        resets_at: datetime | None,
        retry_after: int | None,
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.subject = subject
        self.limit_value = limit_value
        self.used = used
        self.resets_at = resets_at
        self.retry_after = retry_after


class RuntimeFailure(GenvaultError):
    code = "runtime_failure"


class StorageError(RuntimeFailure):
    code = "storage_error"


class Busy(StorageError):
    """The server is saturated: a new turn waited its bounded time for a database connection (or
    a turn slot) and got none. Nothing was written; retry after `retry_after` seconds."""

    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(RuntimeFailure):
    """A provider call failed. `status` is the provider's HTTP status when there was one.

    `sent` is False only when the request certainly never reached the provider (the connection
    was refused, the name did not resolve, connecting timed out: no byte of it went out), so the
    provider cannot have billed it; True otherwise, including every failure after it was sent."""

    code = "provider_error"

    def __init__(
        self, message: str, *, provider: str | None = None, status: int | None = None, sent: bool = True
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.sent = sent
