"""Configuration: one explicit object, read from flags and `GENVAULT_*` environment variables.

Nothing here connects to anything; `Vault(settings)` does that when it starts.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CompatibleProvider", "PriceOverride", "Settings", "default_data_dir"]


def default_data_dir() -> Path:
    """Where the embedded SQLite file and blob directory live: `$XDG_DATA_HOME/genvault`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "genvault"


class PriceOverride(BaseModel):
    """USD per million tokens for a model genai-prices does not know, or priced differently for you."""

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None


class CompatibleProvider(BaseModel):
    """An OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp, LiteLLM) under its own name."""

    base_url: str
    api_key_env: str | None = None  # the environment variable holding its key, if it needs one


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENVAULT_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    # `sqlite:///path` or `postgresql://…`; genvault picks the async driver. Default: SQLite in data_dir.
    database_url: str | None = None
    # PostgreSQL only: keep genvault's tables in this schema (it must exist).
    database_schema: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    default_model: str = "offline/test-model"
    default_image_model: str = "offline/test-image"
    default_embedding_model: str = "offline/test-embedding"
    # Partial output is written to the database at least this often while a generation streams.
    checkpoint_ms: int = Field(default=250, ge=10, le=60_000)
    # Each process heartbeats its row in `processes` every third of this; a process whose row is
    # this old is declared dead by another's sweeper, which marks its generations `interrupted`.
    lease_seconds: float = Field(default=30.0, gt=0)
    # A generation's final write that fails (a dropped database connection) is tried again for
    # this long before the stream ends with an `error` chunk instead of `finish`.
    finalize_retry_seconds: float = Field(default=10.0, ge=0)
    # Webhooks (`genvault.webhooks`): each process's worker looks for due deliveries this often
    # (and at once when one is retried here); a delivery waits this long for the receiver; a
    # failed one is tried again after backoff·2^(n-1) seconds (at most the maximum, with jitter)
    # until `webhook_max_attempts` failures make it `dead`. A claimed delivery is leased for
    # `webhook_lease_seconds` (keep it above the timeout): a process that dies mid-send leaves it
    # to another after that.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    webhook_backoff_seconds: float = Field(default=2.0, gt=0, le=3600)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1, le=100)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    # The database pool of each process (PostgreSQL default 10 + 20 overflow; SQLite 5 + 10). On
    # PostgreSQL half of it, out of the overflow first, is the hot paths' asyncpg pool (a turn's
    # opening and finalize, the page read: `store.split_pool`); the total stays this. A
    # request waits at most `db_pool_timeout_seconds` for a connection, then gets 503 with
    # Retry-After. New turns may hold at most two thirds of the pool at once, so running streams
    # always find a connection to finalize; checkpoints and heartbeats have their own connection.
    # A new turn queues for one of those slots while other turns get through (a busy database);
    # it gets the 503 when none got through for `db_pool_timeout_seconds` (a stuck one), or
    # after four times that in all.
    db_pool_size: int | None = Field(default=None, ge=1)
    db_max_overflow: int | None = Field(default=None, ge=0)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    # The offline test model's speed, in tokens per second (0 = as fast as possible).
    test_model_tps: float = Field(default=200.0, ge=0)
    # A chat turn whose server-side tools keep getting called stops after this many model calls.
    max_steps: int = Field(default=8, ge=1, le=100)
    # Retention, in days, per kind (None: keep forever). Chats go by their last update, whole;
    # text and image generations by their creation. Applied by `genvault retention run` and by
    # the server every `retention_interval_seconds`.
    retention_days_chat: int | None = Field(default=None, ge=1)
    retention_days_text: int | None = Field(default=None, ge=1)
    retention_days_image: int | None = Field(default=None, ge=1)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    # The dedup cache: a repeated identical request within this many seconds gets the earlier
    # result without a provider call (0 turns the cache off; per request: `cache`, `cache_ttl`).
    cache_ttl_seconds: float = Field(default=3600.0, ge=0)
    # `user`: the cache key includes the user id, so nobody ever receives a record derived from
    # another user's request, and a hit's timing reveals nothing about what others asked.
    # `global`: identical requests share results across users (cheaper; use only when every
    # user trusts every other, e.g. one team).
    cache_scope: Literal["user", "global"] = "user"
    # Redis (`redis://host:6379/0`): the dedup cache, cross-process single-flight and live streams
    # any process can resume. Unset: an SQL cache table and an in-process stream hub.
    redis_url: str | None = None
    redis_prefix: str = Field(default="genvault:", max_length=100)
    # Redis Streams keep at most about this many chunks per generation, and a finished stream
    # this long (then the database record is the replay source). Process memory keeps a finished
    # stream only a few seconds (`streams.memory.CLOSED_RETAIN_SECONDS`), whatever this says.
    stream_maxlen: int = Field(default=100_000, ge=100)
    stream_retain_seconds: float = Field(default=300.0, gt=0)
    # Limits (`genvault limits set`): each process re-reads them this often, so a change made
    # elsewhere applies within this many seconds (at once in the process that made it).
    limits_refresh_seconds: float = Field(default=2.0, ge=0)
    # A request without `max_tokens` is reserved against budgets as if it could produce this
    # many output tokens (capped by the model's context window where the price data knows it).
    limits_max_output_tokens: int = Field(default=16_384, ge=1)
    price_overrides: dict[str, PriceOverride] = Field(default_factory=dict)
    compatible_providers: dict[str, CompatibleProvider] = Field(default_factory=dict)
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None

    # -- files (the blob store) -------------------------------------------------------------
    # `local`: a directory (`blob_dir`, default `data_dir/blobs`). `s3`: any S3-compatible store.
    blob_store: Literal["local", "s3"] = "local"
    blob_dir: Path | None = None
    s3_bucket: str | None = None
    s3_prefix: str | None = None  # keys go under this folder of the bucket
    s3_endpoint: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO; None = AWS
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_allow_http: bool = False  # only for an endpoint on a trusted network
    # File URLs are `/files/{id}`; with this set (`https://vault.example.com`) they are absolute.
    public_url: str | None = None
    # Files uploaded in chats or made by models: larger ones are refused (413), other media types
    # too (415). Patterns are `type/subtype` or `type/*`.
    max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    allowed_media_types: list[str] = Field(
        default_factory=lambda: ["image/*", "audio/*", "video/*", "text/*", "application/pdf", "application/json"]
    )

    # -- the HTTP server --------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # `none`: everything belongs to the one local user (the embedded default). `api_key`:
    # `Authorization: Bearer <key>` (keys from `genvault keys create`). `header`: a trusted reverse
    # proxy names the user in `auth_header` (only safe behind that proxy).
    auth: Literal["none", "api_key", "header"] = "none"
    auth_header: str = "X-Forwarded-User"
    # Under `api_key`, the pages' sign-in (`/login`) sets a session cookie signed with this secret.
    # Unset: a random secret per process, so sessions end when it restarts and a cookie works only
    # on the process that made it; set it (the same on every process) behind a load balancer.
    session_secret: SecretStr | None = Field(default=None, min_length=16)
    # A browser session lasts this long from sign-in (sign-out, key revocation and erasure end it
    # sooner).
    session_days: int = Field(default=14, ge=1, le=365)
    # `GET /metrics` requires `Authorization: Bearer <this>` when set (401 otherwise); unset: open.
    metrics_token: SecretStr | None = Field(default=None, min_length=1)
    # Request bodies over this are refused with 413 before they are read in full.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # OpenTelemetry (on when OTEL_EXPORTER_OTLP_ENDPOINT is set, `genvault.telemetry`): put
    # prompts and outputs on the spans. Off by default: they are personal data.
    otel_capture_content: bool = False
    # Which AI SDK 5.x clients the UI message stream must satisfy: `5.0.0` (the strictest: only
    # fields its schema knows) or `latest`.
    stream_compat: Literal["5.0.0", "latest"] = "5.0.0"

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(f"database URL must start with sqlite:// or postgresql://, got {scheme}://")
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'genvault.db'}"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with some fields replaced, validated again (used by CLI flags)."""
        data = self.model_dump()
        data.update({k: v for k, v in values.items() if v is not None})
        return Settings.model_validate(data)
