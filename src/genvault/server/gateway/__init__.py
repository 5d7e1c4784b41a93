"""The `/v1` gateway: OpenAI- and Anthropic-compatible endpoints over genvault's generations.

Thin by design: each module translates one wire format at the edge (request → `ModelRequest`,
UI message stream → that API's response) and starts the generation through `Vault.complete`,
the same lifecycle as every other generation.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import Route

from genvault.server.gateway import anthropic_messages, embeddings, models, openai_chat, responses

__all__ = ["fast_routes", "router"]

router = APIRouter()
for _module in (openai_chat, anthropic_messages, responses, models, embeddings):
    router.include_router(_module.router)


def fast_routes() -> list[Route]:
    """The three generation routes as plain Starlette routes, for the front of the app's routes.

    Their endpoints take only the `Request` (the Vault comes from the app state) and have no path
    parameters, so FastAPI's per-call work for an `APIRoute` (solving the dependencies, the app's
    `check_path_ids` included, which has no path id to check here; its exit stack; the effective
    route context) buys nothing on the busiest path: about a tenth of a call's CPU. Errors still
    go through the app's exception handlers (Starlette's `request_response` wrapper), in the
    endpoint's wire format. The `APIRoute`s stay behind them for the OpenAPI schema.
    """
    return [
        Route(path, endpoint, methods=["POST"], include_in_schema=False)
        for path, endpoint in (
            ("/v1/chat/completions", openai_chat.chat_completions),
            ("/v1/messages", anthropic_messages.messages),
            ("/v1/responses", responses.responses),
        )
    ]
