"""What a generation the sweeper marked `interrupted` leaves behind (its process died mid-reply).

The sweeper's own update keeps the last checkpoint as the record's output. This completes the
record the way a live process would have at its end: usage and cost (an estimate, marked so,
since the provider's counts died with the process) and, for a chat turn, the partial reply in its
chat, with `interrupted` in the message metadata, so a reload shows what the client was shown (up
to one checkpoint interval) and the next turn's history includes it as the client's would.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault import estimate, pricing
from genvault.errors import InvalidRequest, NotFound
from genvault.messages.assembler import merge_metadata
from genvault.money import nano_usd_text
from genvault.providers.base import StreamUsage
from genvault.records import Generation
from genvault.store import chats as chat_store
from genvault.store.schema import generations

__all__ = ["settle_interrupted"]

log = logging.getLogger(__name__)


async def settle_interrupted(
    conn: AsyncConnection, record: Generation, price_overrides: dict[str, Any] | None = None
) -> None:
    """In the sweeper's transaction, for a record it just marked `interrupted`."""
    history: list[dict[str, Any]] = []
    if record.kind == "chat" and record.chat_id is not None:
        history = [m for m in await chat_store.load_all_messages(conn, record.chat_id) if m["id"] != record.message_id]
    usage, cost = _usage_and_cost(record, history, price_overrides or {})
    if usage is not None:
        await conn.execute(
            update(generations)
            .where(generations.c.id == record.id)
            .values(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
                usage_estimated=True,
                cost_nano_usd=cost.nano_usd,
                unit_prices=cost.unit_prices,
                price_source=cost.source,
            )
        )
    if record.kind == "chat" and record.chat_id is not None and record.message_id is not None:
        await _keep_reply(conn, record, usage, cost)


def _usage_and_cost(
    record: Generation, history: list[dict[str, Any]], price_overrides: dict[str, Any]
) -> tuple[StreamUsage | None, pricing.Cost]:
    none = pricing.Cost(nano_usd=None, source=None)
    if record.cached_from is not None or record.usage.input_tokens is not None:
        return None, none  # a copy called no model; or usage already recorded
    if record.kind == "chat":
        inputs = estimate.input_tokens(history)
    else:
        prompt = record.request.get("prompt")
        inputs = estimate.input_tokens(
            [{"content": prompt}] if isinstance(prompt, str) else [], system=record.request.get("system")
        )
    usage, _estimated = estimate.settle(None, None, record.result_text or "", input_count=inputs)
    if usage is None:
        return None, none
    model = record.model.split("/", 1)[1] if "/" in record.model else record.model
    return usage, pricing.compute_cost(record.provider, model, usage, price_overrides)


async def _keep_reply(conn: AsyncConnection, record: Generation, usage: StreamUsage | None, cost: pricing.Cost) -> None:
    assert record.chat_id is not None
    assert record.message_id is not None
    message = record.result_message or {"id": record.message_id, "role": "assistant", "parts": []}
    status: dict[str, Any] = {
        "generationId": record.id,
        "model": record.model,
        "status": "interrupted",
        "costUsd": nano_usd_text(cost.nano_usd),
        "error": record.error,
    }
    extra: dict[str, Any] = {"genvault": status}
    if usage is not None:
        status["usageEstimated"] = True
        extra["totalUsage"] = {
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "totalTokens": usage.total_tokens,
        }
    base = message.get("metadata")
    message = {**message, "metadata": extra if base is None else merge_metadata(base, extra)}
    try:
        await chat_store.upsert_message(conn, record.chat_id, record.user_id, message, generation_id=record.id)
    except NotFound:
        return  # the chat is gone
    except InvalidRequest:  # refused before any statement ran
        log.warning("the partial reply of %s could not be kept in its chat", record.id, exc_info=True)
        return
    await chat_store.free_chat(conn, record.chat_id, record.id)
