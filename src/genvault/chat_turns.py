"""How one chat turn changes the stored chat before the model is called, and after.

`prepare_turn` runs inside the transaction that also inserts the pending generation, so the
user's message, the truncation an edit or regenerate implies, and the pending record land
together or not at all. The server never trusts the client's copy of older messages: it keeps
only the new user message, or, for a tool-result continuation, the client-side tool outputs,
and reads everything else from the database.

- submit-message with a new user message: it is appended.
- submit-message with a user message whose id is stored (an edit, or a retry): that message and
  everything after it are replaced by it.
- submit-message with an assistant message that is the stored last message (a tool-result
  continuation): its client-side tool outputs are merged, and the reply continues that message.
- regenerate-message: the reply to regenerate is dropped (the last assistant message; or the one
  `message_id` names, with everything after it; or everything after the user message it names).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from genvault import labels as labels_
from genvault.cache.dedup import CacheProbe
from genvault.errors import Conflict, InvalidRequest, NotFound
from genvault.ids import new_id
from genvault.messages.ui import message_to_json, parse_ui_message
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store import generations as gen_store
from genvault.store.openings import copy_json, open_chat_turn, read_history, with_message
from genvault.tools import Tool
from genvault.validation import check_json_depth

__all__ = [
    "DEPTH_CHECKED",
    "Trigger",
    "TurnPlan",
    "check_turn_depth",
    "merge_tool_outputs",
    "one_step_opening",
    "prepare_turn",
]

# For the server: the message of the request being served, when the server's input guard found
# its whole JSON body within `validation.MAX_JSON_DEPTH` (`server.guard`). A body within the limit
# holds the message at least two levels down (`{"messages": [message]}`), so `[message, None]` is
# within it too, and `Vault.chat` skips its second walk for that very object (nothing else
# passes). Set around the `Vault.chat` call and reset after it (`server/routes/chat_stream.py`).
DEPTH_CHECKED: ContextVar[Any] = ContextVar("genvault.depth_checked", default=None)


def check_turn_depth(message: dict[str, Any] | None, params: Any) -> None:
    """`Vault.chat`'s depth check of its message and params (`validation.check_json_depth`),
    skipped only for the very message the server marked as part of a checked body (`DEPTH_CHECKED`)
    with no params: the library path (no server) always walks."""
    if params is None and message is not None and message is DEPTH_CHECKED.get():
        return
    check_json_depth([message, params], "the message")


Trigger = Literal["submit-message", "regenerate-message"]
TITLE_CHARS = 80


@dataclass
class TurnPlan:
    assistant_id: str
    # The stored assistant message the reply continues (tool-result continuation), else None.
    continued: dict[str, Any] | None
    # The whole chat as the model should see it.
    history: list[dict[str, Any]]
    # The turn's generation's labels: the chat's, with the turn's own (`labels.merged`).
    labels: dict[str, Any] = field(default_factory=dict)
    # True when `history` is a copy of the turn's message alone (a new chat's first turn), so the
    # caller may convert the message it validated instead of parsing the copy again.
    alone: bool = False


def one_step_opening(
    store: Store,
    chat_id: str,
    user_id: str,
    message: dict[str, Any],
    planned: Callable[[TurnPlan], None],
    labels: Mapping[str, Any] | None = None,
) -> Callable[[dict[str, Any], CacheProbe | None], Awaitable[bool]] | None:
    """The one-step opening (`store/openings.py`) for a user message submitted to a chat, new or
    existing; None for any other message; `chat_id` passed the id rule (`check_id`). Checks what
    `prepare_turn` checks of a new chat, in the same order, and tells `planned` the turn's plan
    as a new chat's first turn at once (the assistant message id goes into the pending row).
    Returns the engine's `open_alone`: False, nothing written, when the general path must
    decide; an existing chat's turn is planned again with its history before it returns True.
    The turn's `labels` (checked) are a new chat's own and its generation's; an existing chat
    opens in one step only when it has no labels of its own (else the general path merges
    them), so they are the generation's there too."""
    if message.get("role") != "user":
        return None
    chat_store.check_message_storable(message)
    # What `chat_store.check_chat_fields` checks of a new chat is settled already: the chat id
    # passed `Vault.chat`'s `check_id` (1-200 visible ASCII characters), and the title is cut
    # from the text of the message just found storable (whole code points: no new surrogate).
    title = _title_from(message)
    # A new chat's history is the message itself; the store keeps JSON exactly, so it is not
    # read back. A copy: the caller keeps `message` in the request record.
    plan = TurnPlan(
        assistant_id=new_id("msg"),
        continued=None,
        history=[copy_json(message)],
        labels=dict(labels or {}),
        alone=True,
    )
    planned(plan)

    async def open_(generation: dict[str, Any], probe: CacheProbe | None) -> bool:
        opening = await open_chat_turn(
            store, chat_id=chat_id, user_id=user_id, title=title, message=message, generation=generation, probe=probe
        )
        if opening.how == "existing":
            if opening.earlier is not None:
                history = with_message(opening.earlier, message)
            else:
                history = await read_history(store, chat_id, message)
            planned(TurnPlan(assistant_id=plan.assistant_id, continued=None, history=history, labels=plan.labels))
        return opening.how is not None

    return open_


def _title_from(message: dict[str, Any] | None) -> str | None:
    if message is None or message.get("role") != "user":
        return None
    text = " ".join(p["text"] for p in message["parts"] if p.get("type") == "text").strip()
    if not text:
        return None
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def merge_tool_outputs(stored: dict[str, Any], incoming: dict[str, Any], tools: dict[str, Tool]) -> dict[str, Any]:
    """The stored assistant message with the client's results for its client-side tool calls.

    Only parts the client may answer change: a static tool part, not provider-executed, of a
    tool without a server executor, waiting in `input-available`. Everything else stays as stored.
    """
    answers = {
        p["toolCallId"]: p
        for p in incoming["parts"]
        if p["type"].startswith("tool-") and p.get("state") in ("output-available", "output-error")
    }
    merged_parts = []
    for part in stored["parts"]:
        answer = answers.get(part.get("toolCallId", "")) if part["type"].startswith("tool-") else None
        name = part["type"][len("tool-") :] if part["type"].startswith("tool-") else ""
        tool = tools.get(name)
        client_side = tool is None or not tool.runs_on_server
        if (
            answer is not None
            and answer["type"] == part["type"]
            and part.get("state") == "input-available"
            and not part.get("providerExecuted")
            and client_side
        ):
            updated = {k: v for k, v in part.items() if k not in ("output", "errorText", "preliminary")}
            updated["state"] = answer["state"]
            if answer["state"] == "output-available":
                updated["output"] = answer.get("output")
            else:
                updated["errorText"] = answer.get("errorText", "the tool failed")
            merged_parts.append(updated)
        else:
            merged_parts.append(part)
    return {**stored, "parts": merged_parts}


async def prepare_turn(
    conn: AsyncConnection,
    *,
    chat_id: str,
    user_id: str,
    trigger: Trigger,
    message: dict[str, Any] | None,
    message_id: str | None,
    tools: dict[str, Tool],
    generation_id: str,
    labels: Mapping[str, Any] | None = None,
) -> TurnPlan:
    """`labels`: the turn's checked tags / metadata (a new chat's own; merged with an existing
    chat's for the turn's generation)."""
    if message is not None:
        # Before the chat's title is taken from it: unstorable text is the message's fault.
        chat_store.check_message_storable(message)
    chat, created = await chat_store.open_chat(conn, chat_id, user_id, title=_title_from(message), labels=labels)
    turn_labels = labels_.merged(chat, labels or {})
    if chat.active_generation_id is not None:
        active = await gen_store.get(conn, chat.active_generation_id)
        if not active.is_final:
            raise Conflict(
                f"chat {chat_id!r} is still generating a reply ({active.id}); "
                "wait for it, resume it, or cancel it first"
            )

    continued: dict[str, Any] | None = None
    assistant_id = new_id("msg")
    if trigger == "regenerate-message":
        await _drop_reply(conn, chat_id, user_id, message_id)
    elif message is None:
        raise InvalidRequest("submit-message needs a message: send `messages` (or `message`) with the new message")
    elif message["role"] == "user":
        # A chat created just now holds no messages: nothing to look for, nothing to replace.
        if not created and await _exists(conn, chat_id, message["id"]):
            await chat_store.truncate_after(conn, chat_id, user_id, message["id"], inclusive=True)
        await chat_store.append_messages(conn, chat_id, user_id, [message])
        if created:
            await chat_store.set_active_generation(conn, chat_id, generation_id)
            # The whole chat is the message just appended; the store keeps JSON exactly (a read
            # gives back what was appended), so it is not read back. A copy: the caller keeps
            # `message` in the request record.
            return TurnPlan(
                assistant_id=assistant_id, continued=None, history=[copy_json(message)], labels=turn_labels, alone=True
            )
    elif message["role"] == "assistant":
        history = await chat_store.load_messages(conn, chat_id, limit=1)
        last = history.messages[-1] if history.messages else None
        if last is None or last["id"] != message["id"] or last["role"] != "assistant":
            raise Conflict(
                f"message {message['id']!r} is not the chat's last assistant message; "
                "only the last assistant message can be continued with tool results"
            )
        continued = merge_tool_outputs(last, message, tools)
        # Normalize through the model so the stored JSON is exactly what loads back.
        continued = message_to_json(parse_ui_message(continued))
        await chat_store.upsert_message(conn, chat_id, user_id, continued)
        assistant_id = continued["id"]
    else:
        raise InvalidRequest(f"cannot submit a {message['role']} message; send a user message")

    await chat_store.set_active_generation(conn, chat_id, generation_id)
    history_all = await chat_store.load_all_messages(conn, chat_id)
    if not any(m["role"] == "user" for m in history_all):
        raise InvalidRequest(f"chat {chat_id!r} has no user message to answer")
    return TurnPlan(assistant_id=assistant_id, continued=continued, history=history_all, labels=turn_labels)


async def _exists(conn: AsyncConnection, chat_id: str, message_id: str) -> bool:
    try:
        await chat_store.get_message(conn, chat_id, message_id)
    except NotFound:
        return False
    return True


async def _drop_reply(conn: AsyncConnection, chat_id: str, user_id: str, message_id: str | None) -> None:
    if message_id is not None:
        target = await chat_store.get_message(conn, chat_id, message_id)
        # An assistant message goes with everything after it; a user message keeps itself.
        await chat_store.truncate_after(conn, chat_id, user_id, message_id, inclusive=target["role"] == "assistant")
        return
    page = await chat_store.load_messages(conn, chat_id, limit=1)
    if page.messages and page.messages[-1]["role"] == "assistant":
        await chat_store.delete_message(conn, chat_id, user_id, page.messages[-1]["id"])
