"""`FeedbackService`: rate, read and clear ratings; ownership is checked in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest, NotFound
from genvault.ids import new_id
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store import generations as gen_store
from genvault.store.schema import feedback, messages
from genvault.store.text import check_storable
from genvault.validation import check_id

__all__ = ["MAX_COMMENT", "FeedbackService", "Rating", "RatingValue"]

MAX_COMMENT = 2000
RatingValue = Literal[1, -1]


class Rating(BaseModel):
    """One rating: `rating` is 1 (thumbs up) or -1 (thumbs down). The target is a generation
    (`generation_id`) or an assistant message (`chat_id` + `message_id`)."""

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    target: Literal["generation", "message"]
    generation_id: str | None = None
    chat_id: str | None = None
    message_id: str | None = None
    rating: RatingValue
    comment: str | None = None
    created_at: datetime
    updated_at: datetime


def _rating(row: RowMapping) -> Rating:
    data = dict(row)
    return Rating(target="generation" if data["generation_id"] else "message", **data)


def check_rating(rating: Any, comment: Any) -> tuple[RatingValue, str | None]:
    """Refuse anything but 1 / -1 (also as "up" / "down") and a comment over `MAX_COMMENT`."""
    named = {"up": 1, "down": -1}
    if isinstance(rating, str) and rating in named:
        rating = named[rating]
    if isinstance(rating, bool) or rating not in (1, -1):
        raise InvalidRequest(f"rating must be 1 (thumbs up) or -1 (thumbs down), got {str(rating)[:40]!r}")
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidRequest("comment must be text")
        if len(comment) > MAX_COMMENT:
            raise InvalidRequest(f"comment must be at most {MAX_COMMENT} characters, got {len(comment)}")
        check_storable(comment, "comment")
        comment = comment.strip() or None
    return (1 if rating == 1 else -1), comment


class FeedbackService:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- generations ----------------------------------------------------------------------------

    async def rate_generation(self, generation_id: str, rating: Any, comment: Any = None, *, user_id: str) -> Rating:
        """Set the user's rating of their generation (replacing an earlier one); `NotFound` for a
        generation that is missing or someone else's."""
        check_id(generation_id, "generation id")
        value, text = check_rating(rating, comment)
        async with self.store.write() as conn:
            await gen_store.get(conn, generation_id, user_id=user_id)
            mine = and_(feedback.c.user_id == user_id, feedback.c.generation_id == generation_id)
            return await self._upsert(conn, mine, value, text, user_id=user_id, generation_id=generation_id)

    async def generation_rating(self, generation_id: str, *, user_id: str) -> Rating | None:
        check_id(generation_id, "generation id")
        async with self.store.read() as conn:
            await gen_store.get(conn, generation_id, user_id=user_id)
            mine = and_(feedback.c.user_id == user_id, feedback.c.generation_id == generation_id)
            return await self._find(conn, mine)

    async def clear_generation(self, generation_id: str, *, user_id: str) -> bool:
        """Remove the user's rating; False when there was none (still no error)."""
        check_id(generation_id, "generation id")
        async with self.store.write() as conn:
            await gen_store.get(conn, generation_id, user_id=user_id)
            mine = and_(feedback.c.user_id == user_id, feedback.c.generation_id == generation_id)
            return (await conn.execute(delete(feedback).where(mine))).rowcount > 0

    # -- chat messages --------------------------------------------------------------------------

    async def rate_message(
        self, chat_id: str, message_id: str, rating: Any, comment: Any = None, *, user_id: str
    ) -> Rating:
        """Set the user's rating of an assistant message in their chat; `NotFound` for a chat that
        is missing, someone else's (shared or not) or without that message; `InvalidRequest` for a
        message that is not the assistant's."""
        value, text = check_rating(rating, comment)
        async with self.store.write() as conn:
            await self._check_message(conn, chat_id, message_id, user_id)
            mine = self._message_rating(chat_id, message_id, user_id)
            return await self._upsert(conn, mine, value, text, user_id=user_id, chat_id=chat_id, message_id=message_id)

    async def chat_ratings(self, chat_id: str, *, user_id: str) -> list[Rating]:
        """The user's ratings of the messages of their chat, in message order."""
        check_id(chat_id, "chat id")
        async with self.store.read() as conn:
            await chat_store.get_chat(conn, chat_id, user_id)
            query = (
                select(feedback)
                .join(messages, and_(messages.c.chat_id == feedback.c.chat_id, messages.c.id == feedback.c.message_id))
                .where(feedback.c.chat_id == chat_id, feedback.c.user_id == user_id)
                .order_by(messages.c.seq)
            )
            return [_rating(row) for row in (await conn.execute(query)).mappings()]

    async def message_rating(self, chat_id: str, message_id: str, *, user_id: str) -> Rating | None:
        async with self.store.read() as conn:
            await self._check_message(conn, chat_id, message_id, user_id)
            return await self._find(conn, self._message_rating(chat_id, message_id, user_id))

    async def clear_message(self, chat_id: str, message_id: str, *, user_id: str) -> bool:
        async with self.store.write() as conn:
            await self._check_message(conn, chat_id, message_id, user_id)
            mine = self._message_rating(chat_id, message_id, user_id)
            return (await conn.execute(delete(feedback).where(mine))).rowcount > 0

    # -- shared ---------------------------------------------------------------------------------

    @staticmethod
    def _message_rating(chat_id: str, message_id: str, user_id: str) -> Any:
        return and_(feedback.c.user_id == user_id, feedback.c.chat_id == chat_id, feedback.c.message_id == message_id)

    @staticmethod
    async def _check_message(conn: AsyncConnection, chat_id: str, message_id: str, user_id: str) -> None:
        check_id(chat_id, "chat id")
        check_id(message_id, "message id")
        await chat_store.get_chat(conn, chat_id, user_id)  # shared chats are read-only: NotFound
        role = (
            await conn.execute(
                select(messages.c.role).where(messages.c.chat_id == chat_id, messages.c.id == message_id)
            )
        ).scalar()
        if role is None:
            raise NotFound(f"no message {message_id!r} in chat {chat_id!r}")
        if role != "assistant":
            raise InvalidRequest(f"only an assistant message can be rated; {message_id!r} is a {role} message")

    @staticmethod
    async def _find(conn: AsyncConnection, mine: Any) -> Rating | None:
        row = (await conn.execute(select(feedback).where(mine))).mappings().first()
        return None if row is None else _rating(row)

    async def _upsert(
        self, conn: AsyncConnection, mine: Any, rating: int, comment: str | None, **target: str
    ) -> Rating:
        now = datetime.now(UTC)
        values = {"rating": rating, "comment": comment, "updated_at": now}
        if (await conn.execute(update(feedback).where(mine).values(**values))).rowcount == 0:
            try:  # a concurrent first rating of the same target (PostgreSQL) meets the unique key
                async with conn.begin_nested():
                    await conn.execute(feedback.insert().values(id=new_id("fb"), created_at=now, **values, **target))
            except IntegrityError:
                await conn.execute(update(feedback).where(mine).values(**values))
        found = await self._find(conn, mine)
        if found is None:  # its target went meanwhile (the foreign key refused the insert)
            raise NotFound("the rated record is gone")
        return found
