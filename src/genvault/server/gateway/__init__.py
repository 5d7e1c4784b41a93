"""The `/v1` gateway: OpenAI- and Anthropic-compatible endpoints over genvault's generations.

Thin by design: each module translates one wire format at the edge (request → `ModelRequest`,
UI message stream → that API's response) and starts the generation through `Vault.complete`,
the same lifecycle as every other generation.
"""

from __future__ import annotations

from fastapi import APIRouter

from genvault.server.gateway import anthropic_messages, embeddings, models, openai_chat, responses

__all__ = ["router"]

router = APIRouter()
for _module in (openai_chat, anthropic_messages, responses, models, embeddings):
    router.include_router(_module.router)
