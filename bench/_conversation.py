"""One chat turn, written the way each contender stores it.

genvault: two AI SDK v5 UIMessages (the user's text; the assistant's step-start, reasoning, a
tool call with its output, and text). The hand-written-SQL baseline writes the very same rows.
langchain-postgres: HumanMessage, AIMessage (reasoning + tool call), ToolMessage, AIMessage.
Agents SDK: user message, reasoning, function_call, function_call_output, assistant message.
The peers store each message as one JSON document; genvault stores typed rows per part.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bench._common import new_id

USER_TEXT = "What will the weather be in Paris tomorrow afternoon? I am planning a picnic by the river."
REASONING = "The user wants tomorrow's forecast for Paris. I should call the weather tool, then summarize it."
TOOL_INPUT = {"city": "Paris", "day": "tomorrow"}
TOOL_OUTPUT = {"tempC": 21, "sky": "clear", "windKph": 9, "rainChance": 0.05}
ANSWER = "Tomorrow afternoon in Paris looks clear and mild, around 21 °C with a light breeze: a fine day for a picnic."


def genvault_turn() -> list[dict[str, Any]]:
    call_id = new_id("call")
    return [
        {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": USER_TEXT}]},
        {
            "id": new_id("msg"),
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "text": REASONING, "state": "done"},
                {
                    "type": "tool-weather",
                    "toolCallId": call_id,
                    "state": "output-available",
                    "input": TOOL_INPUT,
                    "output": TOOL_OUTPUT,
                },
                {"type": "text", "text": ANSWER, "state": "done"},
            ],
        },
    ]


# Columns the raw baseline fills: the same values genvault's part_to_row produces for this turn.
PART_COLUMNS = (
    "chat_id",
    "message_id",
    "position",
    "user_id",
    "type",
    "state",
    "text_text",
    "reasoning_text",
    "tool_name",
    "tool_call_id",
    "tool_input",
    "tool_output",
)
MESSAGE_COLUMNS = ("chat_id", "id", "seq", "user_id", "role", "created_at")


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def raw_rows(
    chat_id: str, user_id: str, turn: list[dict[str, Any]], first_seq: int, now: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(message rows, part rows) for `turn`, as tuples in MESSAGE_COLUMNS / PART_COLUMNS order."""
    message_rows = []
    part_rows = []
    for i, message in enumerate(turn):
        message_rows.append((chat_id, message["id"], first_seq + i, user_id, message["role"], now))
        for position, part in enumerate(message["parts"]):
            kind = part["type"]
            is_tool = kind.startswith("tool-")
            part_rows.append(
                (
                    chat_id,
                    message["id"],
                    position,
                    user_id,
                    kind,
                    part.get("state"),
                    part["text"] if kind == "text" else None,
                    part["text"] if kind == "reasoning" else None,
                    kind[len("tool-") :] if is_tool else None,
                    part.get("toolCallId"),
                    _dump(part["input"]) if is_tool else None,
                    _dump(part["output"]) if is_tool else None,
                )
            )
    return message_rows, part_rows


def sqlite_timestamp(moment: datetime) -> str:
    """How SQLAlchemy's DateTime stores a (UTC wall-clock) timestamp in SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def langchain_turn() -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    call_id = new_id("call")
    return [
        HumanMessage(content=USER_TEXT, id=new_id("msg")),
        AIMessage(
            content="",
            id=new_id("msg"),
            additional_kwargs={"reasoning_content": REASONING},
            tool_calls=[{"name": "weather", "args": TOOL_INPUT, "id": call_id, "type": "tool_call"}],
        ),
        ToolMessage(content=_dump(TOOL_OUTPUT), tool_call_id=call_id, id=new_id("msg")),
        AIMessage(content=ANSWER, id=new_id("msg")),
    ]


def agents_turn() -> list[dict[str, Any]]:
    call_id = new_id("call")
    return [
        {"role": "user", "content": USER_TEXT},
        {"type": "reasoning", "id": new_id("rs"), "summary": [{"type": "summary_text", "text": REASONING}]},
        {"type": "function_call", "call_id": call_id, "name": "weather", "arguments": _dump(TOOL_INPUT)},
        {"type": "function_call_output", "call_id": call_id, "output": _dump(TOOL_OUTPUT)},
        {
            "type": "message",
            "id": new_id("msg"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
        },
    ]
