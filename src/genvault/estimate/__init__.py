"""Token usage of a generation the provider sent no usage for (cancelled, interrupted, failed).

A real provider bills the tokens of a reply that was cut short, so such a record still gets
usage and a cost, marked `usage_estimated`. Not a call that never reached the provider
(`ProviderError.sent` False: connection refused, no such host, connect timeout): nothing was
billed, and the engine records no usage and cost 0 without asking for an estimate.

The estimate is a documented heuristic, not a tokenizer: no well-kept tokenizer works offline for
every model family (`tiktoken` downloads its encodings on first use, Anthropic publishes none), and
a heuristic that is the same everywhere is better than one that changes with what a machine
happens to have cached.

- input: every string in the request the model was sent (system prompt, messages with their text,
  tool inputs and outputs, tool definitions), `CHARS_PER_TOKEN` characters a token, plus
  `TOKENS_PER_MESSAGE` for each message's framing;
- output: the text produced so far, `CHARS_PER_TOKEN` characters a token.

For English text this lands within about a quarter of OpenAI's and Anthropic's counts; for code and
other languages it is rougher. Where the provider sent some usage (Anthropic sends the input count
at the start of its stream) its numbers are kept and only the missing ones are estimated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from genvault.providers.base import ModelRequest, StreamUsage

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_MESSAGE", "input_tokens", "request_tokens", "settle", "text_tokens"]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _chars(value: Any) -> int:
    if isinstance(value, str):
        # A data URL (an inline file) is not text the model reads as tokens.
        return 0 if value.startswith("data:") else len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for k, v in value.items() if k not in ("type", "role", "mediaType", "providerOptions"))
    if isinstance(value, list | tuple):
        return sum(_chars(v) for v in value)
    return 0


def input_tokens(messages: Iterable[Any], *, system: str | None = None, tools: Any = None) -> int:
    """The estimated input tokens of `messages` (model or UI messages, as JSON), `system` and `tools`."""
    count = 0
    chars = len(system or "") + _chars(tools)
    for message in messages:
        count += TOKENS_PER_MESSAGE
        chars += _chars(message)
    return count + math.ceil(chars / CHARS_PER_TOKEN)


def request_tokens(request: ModelRequest) -> int:
    tools = [json.dumps(asdict(tool), default=str) for tool in request.tools]
    return input_tokens(request.messages, system=request.system, tools=tools)


def settle(
    usage: StreamUsage | None, request: ModelRequest | None, output_text: str, *, input_count: int | None = None
) -> tuple[StreamUsage | None, bool]:
    """The usage to record for a generation that did not complete, and whether it is estimated.

    The provider's counts where it sent both input and output; otherwise its counts with the
    missing ones estimated (input from `request`, or `input_count` when the caller counted it;
    output from `output_text`). None when there is nothing to count from."""
    if usage is not None and usage.input_tokens is not None and usage.output_tokens is not None:
        return usage, False
    have = usage or StreamUsage()
    if have.input_tokens is not None:
        inputs: int | None = have.input_tokens
    elif input_count is not None:
        inputs = input_count
    else:
        inputs = request_tokens(request) if request is not None else None
    outputs = have.output_tokens if have.output_tokens is not None else text_tokens(output_text)
    if inputs is None and not output_text and usage is None:
        return None, False
    total = (inputs or 0) + outputs
    return (
        StreamUsage(
            input_tokens=inputs,
            output_tokens=outputs,
            cached_input_tokens=have.cached_input_tokens,
            cache_write_tokens=have.cache_write_tokens,
            reasoning_tokens=have.reasoning_tokens,
            total_tokens=total,
        ),
        True,
    )
