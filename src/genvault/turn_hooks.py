"""The engine's callbacks for one chat turn (`TurnHooks`): fold the reply's chunks into the
assistant UIMessage, give checkpoints a snapshot of it, build the next model call after
server-side tools, and save it when the turn ends.

The save comes two ways. `finish_alone` writes the reply, the record's final state and the
chat's release in one step (`store.finishes`) when the reply is a new message; when that step
declines (the record ended elsewhere, the message id is taken, a continued message), the
engine's finalize transaction runs `finalize`, which saves it within that transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.errors import InvalidRequest, NotFound
from genvault.messages.assembler import MessageAssembler
from genvault.messages.convert import to_model_messages
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store.finishes import CacheEntry, finish_chat_turn

if TYPE_CHECKING:
    from genvault.engine import Run

__all__ = ["TurnHooks"]


@dataclass
class TurnHooks:
    store: Store
    chat_id: str
    user_id: str
    message_id: str = ""
    assembler: MessageAssembler | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # Whether the reply continues a stored message (tool results); else its id is new.
    continues: bool = False

    def feed(self, chunk: dict[str, Any]) -> None:
        if self.assembler is not None:
            self.assembler.feed(chunk)

    # The engine's chunk sink is the hooks themselves (`Vault.chat`).
    __call__ = feed

    def text_sink(self) -> Callable[[str, str], None] | None:
        """For the engine, once its run starts (the turn planned): where each token's text delta
        of the open text part goes, as `(id, text)` without its chunk (`MessageAssembler.feed_text`,
        one call a token where the sink took two); None before the turn was planned."""
        return None if self.assembler is None else self.assembler.feed_text

    def snapshot(self) -> dict[str, Any]:
        assert self.assembler is not None
        return self.assembler.message_json()

    def next_messages(self) -> list[dict[str, Any]]:
        current = self.snapshot()
        earlier = [m for m in self.history if m["id"] != current["id"]]
        return to_model_messages([*earlier, current], ignore_incomplete_tool_calls=True)

    async def finish_alone(self, run: Run, values: dict[str, Any], entry: CacheEntry | None) -> bool:
        """The engine's `FinishAlone`: the finalize in one step when the reply is a new message
        (`store.finishes`); False, nothing written, for the transaction's `finalize` to do it."""
        message = values.get("result_message")  # `snapshot()`, as `finalize` would save it
        if self.assembler is None or self.continues or message is None:
            return False
        return await finish_chat_turn(
            self.store,
            generation_id=run.generation_id,
            values=values,
            chat_id=self.chat_id,
            user_id=self.user_id,
            message=message,
            entry=entry,
        )

    async def finalize(self, conn: AsyncConnection, run: Run, status: str) -> None:
        """In the finalize transaction: save the assistant message and free the chat.

        The message is saved however the reply ended, even with no text: the stream announced it
        (`start` with its id), so the client holds it, with how it ended in its metadata."""
        if self.assembler is not None:
            message = self.snapshot()
            try:  # checks the chat itself: no separate read of it here
                await self._save(conn, message, run.generation_id, again=run.ended_elsewhere)
            except NotFound:
                return  # the chat was deleted while the reply ran
        await chat_store.free_chat(conn, self.chat_id, run.generation_id)

    async def _save(
        self, conn: AsyncConnection, message: dict[str, Any], generation_id: str, *, again: bool = False
    ) -> None:
        # `again`: the record was final already (cancelled elsewhere); the message may be stored.
        if not self.continues and not again:
            # An id minted for this turn is in no chat yet: append it, without upsert's reads of
            # the chat and the message (the append checks the chat itself).
            try:
                await chat_store.append_messages(
                    conn, self.chat_id, self.user_id, [message], generation_id=generation_id
                )
                return
            except InvalidRequest:
                pass  # refused before any statement; upsert refuses it too, or finds no chat first
        await chat_store.upsert_message(conn, self.chat_id, self.user_id, message, generation_id=generation_id)
