"""The AI SDK `useChat` + `DefaultChatTransport` contract (spec §3): send, resume, stop.

`POST /api/chat` accepts the default body `{id, messages, trigger, messageId?, ...extras}` and the
"last message only" shape `{id, message, ...}`. Only the last message is taken from the client;
the history comes from the database. Errors before the stream starts are non-2xx with a text
body (the client shows it as `error.message`); errors while streaming are an `error` chunk.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from genvault import labels
from genvault.chat_turns import DEPTH_CHECKED
from genvault.errors import InvalidRequest
from genvault.records import Generation
from genvault.server.deps import OptionalUserDep, UserDep, VaultDep, current_user, get_vault_now, optional_user
from genvault.server.guard import checked_body
from genvault.server.openapi import SSE_RESPONSE, TEXT_ERRORS, json_body
from genvault.server.streaming import HubReply, hub_reply_response, ui_message_stream_response
from genvault.validation import loads_json

router = APIRouter(tags=["chat (AI SDK)"])

_TRIGGERS = ("submit-message", "regenerate-message")


class ChatRequest(BaseModel):
    """The body `DefaultChatTransport` sends (for the OpenAPI document; `_parse_chat_request`
    reads it). Other keys the client adds are ignored."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="The chat id: 1-200 visible ASCII characters. A new id starts a chat.")
    messages: list[dict[str, Any]] | None = Field(
        default=None, description="UI messages; only the last is read (the history comes from the database)."
    )
    message: dict[str, Any] | None = Field(default=None, description="Instead of `messages`: just the new one.")
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    messageId: str | None = Field(default=None, description="The message to regenerate (or to answer from).")
    model: str | None = Field(default=None, description="provider/model, e.g. openai/gpt-4o-mini")
    cache: bool = Field(default=True, description="false: always call the model")
    cache_ttl: float | None = Field(default=None, description="Reuse an identical answer at most this old (s)")
    tags: list[str] | None = Field(
        default=None,
        description="A new chat's tags (also `X-Genvault-Tags: a, b`); the turn's generation carries the chat's "
        "tags with these added",
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="A new chat's metadata (also `X-Genvault-Metadata`), merged likewise"
    )


def _parse_chat_request(raw: bytes, *, checked: bool = False) -> dict[str, Any]:
    body = loads_json(raw, checked=checked) if raw else None
    if not isinstance(body, dict):
        raise InvalidRequest('body must be a JSON object like {"id": "...", "messages": [...], "trigger": "..."}')
    chat_id = body.get("id", body.get("chatId"))
    if not isinstance(chat_id, str) or not chat_id:
        raise InvalidRequest("id: the chat id is required (a non-empty string)")
    trigger = body.get("trigger", "submit-message")
    if trigger not in _TRIGGERS:
        raise InvalidRequest(f"trigger must be one of {', '.join(_TRIGGERS)}, got {trigger!r}")
    message_id = body.get("messageId")
    if message_id is not None and not isinstance(message_id, str):
        raise InvalidRequest("messageId must be a string")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("model must be a string like openai/gpt-4o-mini")
    if "message" in body:
        message = body["message"]
    elif "messages" in body:
        messages = body["messages"]
        if not isinstance(messages, list):
            raise InvalidRequest("messages must be an array of UI messages")
        message = messages[-1] if messages else None
    else:
        message = None
    if message is not None and not isinstance(message, dict):
        raise InvalidRequest("the last message must be a UI message object")
    if trigger == "regenerate-message":
        message = None  # the history to regenerate from is the stored one
    elif message is None:
        raise InvalidRequest("send the new message in `messages` (or `message`)")
    cache = body.get("cache", True)
    if not isinstance(cache, bool):
        raise InvalidRequest("cache must be true or false")
    cache_ttl = body.get("cache_ttl")
    if cache_ttl is not None and (isinstance(cache_ttl, bool) or not isinstance(cache_ttl, int | float)):
        raise InvalidRequest("cache_ttl must be a number of seconds")
    return {
        "chat_id": chat_id,
        "trigger": trigger,
        "message_id": message_id,
        "model": model,
        "message": message,
        "cache": cache,
        "cache_ttl": cache_ttl,
        # Checked by the Vault (`genvault.labels`): a bad value is a 400 before anything is written.
        "tags": body.get("tags"),
        "metadata": body.get("metadata"),
    }


async def post_chat(
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Save the new message, start the reply, and stream it. The reply keeps running if the
    client goes away; `GET /api/chat/{id}/stream` picks it up again."""
    # The Vault and the user as `VaultDep` and `UserDep` would give them, resolved here: FastAPI's
    # solving of that dependency tree (three nested dependencies) was ~5 % of a turn's CPU.
    vault = get_vault_now(request)
    user = await current_user(await optional_user(request, vault), vault)
    # The body the input guard read and checked, not read again through Starlette's
    # `request.body()` (its async generator and the guard's replayed `receive`).
    raw = checked_body(request.scope)
    checked = raw is not None
    parsed = _parse_chat_request(raw if raw is not None else await request.body(), checked=checked)
    # Labels in the body (`useChat`'s `body` option) or, for clients that only set headers, in
    # `X-Genvault-Tags` / `X-Genvault-Metadata`; the body's win. Read (and checked) when either
    # header is there; without them `from_headers` gives (None, None), and its two look-ups in
    # Starlette's `Headers` (each a KeyError caught) were ~15,000 instructions a turn.
    header_tags, header_metadata = None, None
    if _has_header(request.scope["headers"], _LABEL_HEADERS):
        header_tags, header_metadata = labels.from_headers(request.headers)
    # The guard checked the whole body's depth: Vault.chat need not walk its message again.
    token = DEPTH_CHECKED.set(parsed["message"] if checked else None)
    try:
        turn = await vault.chat(
            parsed["chat_id"],
            message=parsed["message"],
            trigger=parsed["trigger"],
            message_id=parsed["message_id"],
            model=parsed["model"],
            user_id=user,
            idempotency_key=idempotency_key,
            cache=parsed["cache"],
            cache_ttl=parsed["cache_ttl"],
            tags=parsed["tags"] if parsed["tags"] is not None else header_tags,
            metadata=parsed["metadata"] if parsed["metadata"] is not None else header_metadata,
        )
    finally:
        DEPTH_CHECKED.reset(token)
    # The turn usually runs here: follow its stream directly, without replay's record read, and a
    # batch at a time (what was published together goes out in one write); under the hot route,
    # its tokens written by the generation's task (`streaming.HubReply`).
    hub = vault.hub_here(turn.generation.id)
    if hub is not None:
        return hub_reply_response(HubReply(hub, turn.generation.id, vault.settings.stream_compat), turn.generation.id)
    headers = {"X-Genvault-Generation-Id": turn.generation.id}
    chunks = vault.follow_here(turn.generation.id, user_id=None) or vault.replay(turn.generation.id, user_id=None)
    return ui_message_stream_response(chunks, compat=vault.settings.stream_compat, headers=headers)


async def post_chat_direct(request: Request) -> Response:
    """`post_chat` as a plain ASGI endpoint: what `server.hot_route.TurnFront` hands a chat turn to."""
    return await post_chat(request, _header(request.scope["headers"], b"idempotency-key"))


# The raw names of the label headers: ASGI servers give header names lower-cased (Starlette's
# `Headers` compares them so too).
_LABEL_HEADERS = frozenset(name.lower().encode("latin-1") for name in (labels.TAGS_HEADER, labels.METADATA_HEADER))


def _has_header(raw: list[tuple[bytes, bytes]], names: frozenset[bytes]) -> bool:
    """Whether the request's raw headers hold any of `names`."""
    for key, _ in raw:  # noqa: SIM110 - a loop, not `any` over a generator: a handful of headers
        if key in names:
            return True
    return False


def _header(raw: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first `name` header's value as Starlette's `request.headers.get(name)` reads it (latin-1),
    without building the `Headers` view and its KeyError when it is absent."""
    for key, value in raw:
        if key == name:
            return value.decode("latin-1")
    return None


router.add_api_route(
    "/api/chat",
    post_chat,
    methods=["POST"],
    response_class=Response,
    responses={**SSE_RESPONSE, **TEXT_ERRORS},
    openapi_extra=json_body(ChatRequest),
)


@router.get(
    "/api/chat/{chat_id}/stream",
    response_class=Response,
    responses={**SSE_RESPONSE, 204: {"description": "no reply is running"}, **TEXT_ERRORS},
)
async def resume_chat(chat_id: str, vault: VaultDep, user: OptionalUserDep) -> Response:
    """The running reply from its first chunk, then live; 204 when nothing is running."""
    # Anonymous visitors may follow a chat shared by link; `""` matches no owner.
    chat = await vault.get_chat(chat_id, user_id=user or "", for_reading=True)
    active = await vault.active_generation(chat.id, user_id=None)
    if active is None:
        return Response(status_code=204)
    return ui_message_stream_response(
        vault.follow_here(active.id, user_id=None) or vault.replay(active.id, user_id=None),
        compat=vault.settings.stream_compat,
        headers={"X-Genvault-Generation-Id": active.id},
    )


@router.post("/api/chat/{chat_id}/cancel", response_model=Generation, responses=TEXT_ERRORS)
async def cancel_chat(chat_id: str, vault: VaultDep, user: UserDep) -> Generation:
    """Stop the running reply (not a disconnect): the partial message is saved, the record ends
    `cancelled`. 409 when nothing is running."""
    return await vault.cancel_chat(chat_id, user_id=user)
