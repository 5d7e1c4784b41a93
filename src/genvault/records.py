"""The public value types genvault hands out: generation records, usage, pages.

One JSON form (`model_dump(mode="json")`) serves the HTTP API, the CLI's `--json` and exports.
Money is `Decimal` in Python and a string in JSON (`genvault.money.usd_text`: "0.00000075", never an
exponent); the database keeps integer nano-USD.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, computed_field, field_validator

from genvault.money import estimated_cost_cents, nano_to_usd, usd_text

__all__ = [
    "FileRecord",
    "Generation",
    "GenerationKind",
    "GenerationStatus",
    "Page",
    "Usage",
    "UsageRow",
    "UsdJson",
    "nano_to_usd",
]

# Money in a model: a `Decimal` in Python, `money.usd_text` in JSON ("0.00000075", never "7.50E-7").
UsdJson = Annotated[Decimal, PlainSerializer(usd_text, return_type=str, when_used="json")]

GenerationKind = Literal["text", "chat", "image", "embedding"]
GenerationStatus = Literal["pending", "streaming", "complete", "error", "cancelled", "interrupted"]


class Usage(BaseModel):
    """Token counts; `None` where the provider reported nothing."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    # genvault's estimate, not the provider's count: a reply cut short (cancelled, interrupted,
    # failed) before the provider sent usage (`genvault.estimate` says how it is counted).
    estimated: bool = False


class Generation(BaseModel):
    """One generation record, as stored."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: GenerationKind
    user_id: str
    chat_id: str | None = None
    message_id: str | None = None
    status: GenerationStatus
    model: str
    provider: str
    request: dict[str, Any]
    result_text: str | None = None
    result_message: dict[str, Any] | None = None
    error: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_nano_usd: int | None = None
    unit_prices: dict[str, Any] | None = None
    price_source: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    first_token_at: datetime | None = None
    finished_at: datetime | None = None
    checkpoint_at: datetime | None = None
    idempotency_key: str | None = None
    cache_key: str | None = None
    cached_from: str | None = None
    # The API key the request came with (None: library, CLI, or an auth mode without keys).
    api_key_id: str | None = None
    # On a cache hit: what the original cost (this record's own cost is 0).
    saved_nano_usd: int | None = None
    # The caller's labels (`genvault.labels`): short strings and a small JSON object.
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return [] if value is None else value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> UsdJson | None:
        return nano_to_usd(self.cost_nano_usd)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def saved_usd(self) -> UsdJson | None:
        return nano_to_usd(self.saved_nano_usd)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimated_cost_cents(self) -> UsdJson | None:
        """Cost in US cents, for display (derived; the exact value is `cost_nano_usd`)."""
        return estimated_cost_cents(self.cost_nano_usd)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        """Where a person looks at this record."""
        if self.kind == "chat" and self.chat_id:
            return f"/chat/{self.chat_id}"
        if self.kind == "image":
            return f"/image/{self.id}"
        return f"/generate/{self.id}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def image_urls(self) -> list[str]:
        """Image generations: the permanent URLs of the images made, in order."""
        if self.kind != "image" or not self.result_message:
            return []
        return [p["url"] for p in self.result_message.get("parts", []) if p.get("type") == "file" and "url" in p]

    @property
    def is_final(self) -> bool:
        return self.status not in ("pending", "streaming")


class FileRecord(BaseModel):
    """One stored file: an upload in a chat, or an image a generation made. `url` is permanent:
    it answers for as long as the record exists (until its owner erases it)."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    sha256: str
    size: int
    media_type: str
    filename: str | None = None
    user_id: str
    generation_id: str | None = None
    chat_id: str | None = None
    message_id: str | None = None
    part_position: int | None = None
    created_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list; pass `next_cursor` back to get the next page (None: this was the last)."""

    items: list[T]
    next_cursor: str | None = None


class UsageRow(BaseModel):
    """Totals for one group (a model, a user or a day) in a usage report."""

    key: str
    generations: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_nano_usd: int
    # Generations whose cost is unknown (no price for the model) are counted, not guessed.
    unpriced_generations: int
    # Generations answered by the dedup cache (or by joining an identical running request), and
    # what they would have cost.
    cache_hits: int = 0
    saved_nano_usd: int = 0
    # Generations whose usage (and so cost) is genvault's estimate, and the part of the cost
    # that is estimated: included in the totals above.
    estimated_generations: int = 0
    estimated_cost_nano_usd: int = 0
    # Feedback (`genvault.feedback`) on these generations and on the assistant messages they wrote.
    thumbs_up: int = 0
    thumbs_down: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> UsdJson:
        return nano_to_usd(self.cost_nano_usd)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def saved_usd(self) -> UsdJson:
        return nano_to_usd(self.saved_nano_usd)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimated_cost_usd(self) -> UsdJson:
        return nano_to_usd(self.estimated_cost_nano_usd)
