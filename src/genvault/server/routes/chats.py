"""Chats as JSON: list, read a page of messages, rename or share, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from genvault.records import Page
from genvault.server.deps import OptionalUserDep, UserDep, VaultDep
from genvault.store.chats import Chat
from genvault.store.schema import MISSING

router = APIRouter(tags=["chats"])


class ChatPublic(BaseModel):
    id: str
    title: str | None
    visibility: Literal["private", "link", "public"]
    created_at: datetime
    updated_at: datetime
    url: str
    active_generation_id: str | None

    @classmethod
    def of(cls, chat: Chat) -> ChatPublic:
        return cls(
            id=chat.id,
            title=chat.title,
            visibility=chat.visibility,
            created_at=chat.created_at,
            updated_at=chat.updated_at,
            url=chat.url,
            active_generation_id=chat.active_generation_id,
        )


class ChatWithMessages(BaseModel):
    chat: ChatPublic
    messages: list[dict[str, Any]]
    has_before: bool
    # True while a reply is running (resume it with GET /api/chat/{id}/stream).
    active: bool
    owned: bool
    # The model of the chat's latest turn (None before one): the model picker starts on it.
    model: str | None


class MessagesPage(BaseModel):
    messages: list[dict[str, Any]]
    has_before: bool
    has_after: bool


class ChatUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=500)
    visibility: Literal["private", "link", "public"] | None = None


Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/api/chats", response_model=Page[ChatPublic])
async def list_chats(
    vault: VaultDep,
    user: UserDep,
    limit: Limit = 50,
    cursor: str | None = None,
    q: Annotated[str | None, Query(description="only chats whose title or a message matches this search")] = None,
) -> Page[ChatPublic]:
    page = await vault.list_chats(user_id=user, limit=limit, cursor=cursor, q=q)
    return Page[ChatPublic](items=[ChatPublic.of(c) for c in page.items], next_cursor=page.next_cursor)


async def _readable(vault: Any, chat_id: str, user: str | None) -> Chat:
    chat: Chat = await vault.get_chat(chat_id, user_id=user or "", for_reading=True)
    return chat


@router.get("/api/chats/{chat_id}", response_model=ChatWithMessages)
async def get_chat(chat_id: str, vault: VaultDep, user: OptionalUserDep, limit: Limit = 50) -> ChatWithMessages:
    """The chat and its latest messages. Shared chats (link/public) are readable by anyone."""
    chat = await _readable(vault, chat_id, user)
    page = await vault.chat_messages(chat_id, user_id=None, limit=limit)
    active = await vault.active_generation(chat_id, user_id=None)
    model = await vault.chat_model(chat_id, user_id=None)
    return ChatWithMessages(
        chat=ChatPublic.of(chat),
        messages=page.messages,
        has_before=page.has_before,
        active=active is not None,
        owned=chat.user_id == user,
        model=model,
    )


@router.get("/api/chats/{chat_id}/messages", response_model=MessagesPage)
async def get_messages(
    chat_id: str,
    vault: VaultDep,
    user: OptionalUserDep,
    before: str | None = None,
    after: str | None = None,
    limit: Limit = 50,
) -> MessagesPage:
    # One connection: chat_messages checks readability itself (link/public chats for anyone).
    page = await vault.chat_messages(chat_id, user_id=user or "", limit=limit, before=before, after=after)
    return MessagesPage(messages=page.messages, has_before=page.has_before, has_after=page.has_after)


@router.patch("/api/chats/{chat_id}", response_model=ChatPublic)
async def update_chat(chat_id: str, body: ChatUpdate, vault: VaultDep, user: UserDep) -> ChatPublic:
    title = body.title if "title" in body.model_fields_set else MISSING
    chat = await vault.update_chat(chat_id, user_id=user, title=title, visibility=body.visibility)
    return ChatPublic.of(chat)


@router.delete("/api/chats/{chat_id}", status_code=204)
async def delete_chat(chat_id: str, vault: VaultDep, user: UserDep) -> Response:
    await vault.delete_chat(chat_id, user_id=user)
    return Response(status_code=204)


@router.delete("/api/chats/{chat_id}/messages/{message_id}", status_code=204)
async def delete_message(chat_id: str, message_id: str, vault: VaultDep, user: UserDep) -> Response:
    await vault.delete_message(chat_id, message_id, user_id=user)
    return Response(status_code=204)
