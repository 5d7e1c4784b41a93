"""Feedback over HTTP (`genvault.feedback`): thumbs up/down with a comment, by the record's owner.

Someone else's generation or chat (shared with them or not) is 404, as for every write there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from genvault.feedback import MAX_COMMENT, Rating
from genvault.server.deps import UserDep, VaultDep

__all__ = ["router"]

router = APIRouter(tags=["feedback"])


class FeedbackSet(BaseModel):
    """Body of the `PUT …/feedback` routes: `rating` 1 / -1 (or "up" / "down")."""

    model_config = ConfigDict(extra="forbid")

    rating: Any = Field(description='1 or "up" (thumbs up), -1 or "down" (thumbs down)')
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


@router.put("/api/generations/{generation_id}/feedback", response_model=Rating)
async def rate_generation(generation_id: str, body: FeedbackSet, vault: VaultDep, user: UserDep) -> Rating:
    """Set your rating of the generation (replacing an earlier one)."""
    return await vault.feedback.rate_generation(generation_id, body.rating, body.comment, user_id=user)


@router.delete("/api/generations/{generation_id}/feedback", status_code=204, response_class=Response)
async def clear_generation_rating(generation_id: str, vault: VaultDep, user: UserDep) -> Response:
    await vault.feedback.clear_generation(generation_id, user_id=user)
    return Response(status_code=204)


@router.get("/api/chats/{chat_id}/feedback", response_model=list[Rating])
async def chat_ratings(chat_id: str, vault: VaultDep, user: UserDep) -> list[Rating]:
    """Your ratings of the chat's assistant messages, in message order."""
    return await vault.feedback.chat_ratings(chat_id, user_id=user)


@router.put("/api/chats/{chat_id}/messages/{message_id}/feedback", response_model=Rating)
async def rate_message(chat_id: str, message_id: str, body: FeedbackSet, vault: VaultDep, user: UserDep) -> Rating:
    """Set your rating of an assistant message of your chat (replacing an earlier one)."""
    return await vault.feedback.rate_message(chat_id, message_id, body.rating, body.comment, user_id=user)


@router.delete("/api/chats/{chat_id}/messages/{message_id}/feedback", status_code=204, response_class=Response)
async def clear_message_rating(chat_id: str, message_id: str, vault: VaultDep, user: UserDep) -> Response:
    await vault.feedback.clear_message(chat_id, message_id, user_id=user)
    return Response(status_code=204)
