"""The reply of a generation that is not a chat turn (an image, an embedding call) kept as an
assistant UIMessage in its record, like a chat reply, so the same replay, pages and cache copies
serve every kind."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from genvault.messages.assembler import MessageAssembler
from genvault.messages.ui import message_to_json

__all__ = ["ResultMessage"]


class ResultMessage:
    """`engine.start` hooks that assemble the record's result message from its chunks; the
    message takes the generation's id."""

    def __init__(self) -> None:
        self.assembler: MessageAssembler | None = None

    async def before_insert(self, _conn: AsyncConnection, generation_id: str) -> None:
        self.assembler = MessageAssembler(None, message_id=generation_id)

    def feed(self, chunk: dict[str, Any]) -> None:
        if self.assembler is not None:
            self.assembler.feed(chunk)

    def snapshot(self) -> dict[str, Any]:
        assert self.assembler is not None
        return message_to_json(self.assembler.message)
