"""One running generation's state in memory (`Run`), as the engine (`genvault.engine`) folds its
stream into it, the checkpoint writer copies it out and the finalize writes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genvault import pricing
from genvault.cache.dedup import CachePolicy
from genvault.limits import Admission
from genvault.providers.base import ModelRequest, StreamUsage
from genvault.records import Generation, GenerationKind
from genvault.store.finishes import CacheEntry

__all__ = ["FinishAlone", "Run", "sdk_usage"]

# The finalize in one step of its own (a chat turn's: `store.finishes`), tried before the
# transaction: given the final values and the cache entry to write, True when it wrote them all,
# False (nothing written) to take the transaction with the engine's `FinalizeHook` instead.
FinishAlone = Callable[["Run", dict[str, Any], CacheEntry | None], Awaitable[bool]]


@dataclass
class Run:
    """What one running generation has produced so far (in memory; checkpoints copy it out)."""

    generation_id: str
    kind: GenerationKind
    user_id: str
    provider: str
    model: str
    message_id: str
    text: list[str] = field(default_factory=list)
    usage: StreamUsage | None = None
    finish_reason: str | None = None
    started_at: datetime | None = None
    first_token_at: datetime | None = None
    dirty: bool = False
    # For chat turns: returns the assistant UIMessage JSON assembled so far.
    snapshot: Callable[[], dict[str, Any]] | None = None
    cancel_requested: bool = False
    cost: pricing.Cost | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the last chunk is published (the final state committed, or its failure told),
    # before the lead in the dedup cache is given up: a non-streamed answer can go out then.
    told: asyncio.Event = field(default_factory=asyncio.Event)
    cache_key: str | None = None
    cache_policy: CachePolicy | None = None
    # A copy of another generation (a cache hit, or a joined identical request).
    cached_from: str | None = None
    # The provider's HTTP status when its call failed (the gateway answers with it).
    provider_status: int | None = None
    saved_nano_usd: int | None = None
    # The dedup cache entry was written in the finalize transaction (`Dedup.remember_in`).
    cache_stored: bool = False
    # The record as inserted: with the finalize's values, the final record for the listeners.
    pending: Generation | None = None
    # The model request (for a usage estimate when the provider sends no usage).
    request: ModelRequest | None = None
    usage_estimated: bool = False
    # The run failed before its request reached the provider (`ProviderError.sent` False).
    never_sent: bool = False
    # The record was already final when this run finalized (cancelled from another process).
    ended_elsewhere: bool = False
    # What admission reserved against the limits; settled in the finalize transaction.
    admission: Admission | None = None
    finish_alone: FinishAlone | None = None
    # Its finalize is writing: the engine's cancellers leave its task alone until it returns
    # (a cancel would interrupt the write; no `asyncio.shield` task a turn).
    finalizing: bool = False

    @property
    def result_text(self) -> str:
        return "".join(self.text)

    def timing(self) -> dict[str, int]:
        """`{"durationMs": …}`, from the request to now (as the reply ends), for the message footer."""
        if self.pending is None:
            return {}
        return {"durationMs": max(0, int((datetime.now(UTC) - self.pending.created_at).total_seconds() * 1000))}

    def add_usage(self, usage: StreamUsage) -> None:
        """Usage summed over the model calls of a multi-step turn (None + None stays None)."""
        if self.usage is None:
            self.usage = usage
            return

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        self.usage = StreamUsage(
            input_tokens=add(self.usage.input_tokens, usage.input_tokens),
            output_tokens=add(self.usage.output_tokens, usage.output_tokens),
            cached_input_tokens=add(self.usage.cached_input_tokens, usage.cached_input_tokens),
            cache_write_tokens=add(self.usage.cache_write_tokens, usage.cache_write_tokens),
            reasoning_tokens=add(self.usage.reasoning_tokens, usage.reasoning_tokens),
            total_tokens=add(self.usage.total_tokens, usage.total_tokens),
        )


def sdk_usage(usage: StreamUsage) -> dict[str, int]:
    """AI SDK `LanguageModelUsage` JSON (spec §9.1): absent fields omitted."""
    fields = {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.total_tokens,
        "reasoningTokens": usage.reasoning_tokens,
        "cachedInputTokens": usage.cached_input_tokens,
    }
    return {k: v for k, v in fields.items() if v is not None}
