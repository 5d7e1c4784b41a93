"""Best-effort parsing of an incomplete JSON text, a port of the AI SDK's `parsePartialJson`.

Invariant: `parse_partial_json(text)` returns what the v5 client shows as a streaming tool call's
`input` for the same text: the strict parse if the text is complete JSON, else the parse of the
text "repaired" by `fix_json` (cut back to the last complete token, open strings, objects and
arrays closed), else `ABSENT`. Like the client (which uses secure-json-parse), JSON holding a
`__proto__` key or a `constructor.prototype` key counts as unparsable.
"""

from __future__ import annotations

import json
from typing import Any

from genvault.messages._wire import ABSENT

__all__ = ["fix_json", "parse_partial_json"]


def parse_partial_json(text: str) -> Any:
    """The parsed value of `text`, or of its repaired form, or `ABSENT`."""
    for candidate in (text, fix_json(text)):
        try:
            value = json.loads(candidate, parse_constant=_reject_constant)
        except ValueError:
            continue
        return ABSENT if _has_forbidden_keys(value) else value
    return ABSENT


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN/Infinity; JSON.parse does not


def _has_forbidden_keys(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__proto__" in node:
                return True
            constructor = node.get("constructor")
            if isinstance(constructor, dict) and "prototype" in constructor:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# The states of the AI SDK's fix-json.ts state machine, same names and transitions.
_ROOT = "ROOT"
_FINISH = "FINISH"
_STRING = "INSIDE_STRING"
_STRING_ESCAPE = "INSIDE_STRING_ESCAPE"
_LITERAL = "INSIDE_LITERAL"
_NUMBER = "INSIDE_NUMBER"
_OBJECT_START = "INSIDE_OBJECT_START"
_OBJECT_KEY = "INSIDE_OBJECT_KEY"
_OBJECT_AFTER_KEY = "INSIDE_OBJECT_AFTER_KEY"
_OBJECT_BEFORE_VALUE = "INSIDE_OBJECT_BEFORE_VALUE"
_OBJECT_AFTER_VALUE = "INSIDE_OBJECT_AFTER_VALUE"
_OBJECT_AFTER_COMMA = "INSIDE_OBJECT_AFTER_COMMA"
_ARRAY_START = "INSIDE_ARRAY_START"
_ARRAY_AFTER_VALUE = "INSIDE_ARRAY_AFTER_VALUE"
_ARRAY_AFTER_COMMA = "INSIDE_ARRAY_AFTER_COMMA"

_CLOSE_OBJECT = {
    _OBJECT_KEY,
    _OBJECT_AFTER_KEY,
    _OBJECT_AFTER_COMMA,
    _OBJECT_START,
    _OBJECT_BEFORE_VALUE,
    _OBJECT_AFTER_VALUE,
}
_CLOSE_ARRAY = {_ARRAY_START, _ARRAY_AFTER_COMMA, _ARRAY_AFTER_VALUE}
_LITERALS = ("true", "false", "null")


def fix_json(text: str) -> str:
    """Close an incomplete JSON text the way the AI SDK's `fixJson` does."""
    stack = [_ROOT]
    last_valid = -1
    literal_start = 0

    def value_start(char: str, i: int, swap: str) -> None:
        nonlocal last_valid, literal_start
        if char == '"':
            last_valid = i
            stack[-1] = swap
            stack.append(_STRING)
        elif char in "ftn":
            last_valid = i
            literal_start = i
            stack[-1] = swap
            stack.append(_LITERAL)
        elif char == "-":
            stack[-1] = swap
            stack.append(_NUMBER)
        elif char in "0123456789":
            last_valid = i
            stack[-1] = swap
            stack.append(_NUMBER)
        elif char == "{":
            last_valid = i
            stack[-1] = swap
            stack.append(_OBJECT_START)
        elif char == "[":
            last_valid = i
            stack[-1] = swap
            stack.append(_ARRAY_START)

    def after_object_value(char: str, i: int) -> None:
        nonlocal last_valid
        if char == ",":
            stack[-1] = _OBJECT_AFTER_COMMA
        elif char == "}":
            last_valid = i
            stack.pop()

    def after_array_value(char: str, i: int) -> None:
        nonlocal last_valid
        if char == ",":
            stack[-1] = _ARRAY_AFTER_COMMA
        elif char == "]":
            last_valid = i
            stack.pop()

    for i, char in enumerate(text):
        state = stack[-1]
        if state == _ROOT:
            value_start(char, i, _FINISH)
        elif state == _OBJECT_START:
            if char == '"':
                stack[-1] = _OBJECT_KEY
            elif char == "}":
                last_valid = i
                stack.pop()
        elif state == _OBJECT_AFTER_COMMA:
            if char == '"':
                stack[-1] = _OBJECT_KEY
        elif state == _OBJECT_KEY:
            if char == '"':
                stack[-1] = _OBJECT_AFTER_KEY
        elif state == _OBJECT_AFTER_KEY:
            if char == ":":
                stack[-1] = _OBJECT_BEFORE_VALUE
        elif state == _OBJECT_BEFORE_VALUE:
            value_start(char, i, _OBJECT_AFTER_VALUE)
        elif state == _OBJECT_AFTER_VALUE:
            after_object_value(char, i)
        elif state == _STRING:
            if char == '"':
                stack.pop()
                last_valid = i
            elif char == "\\":
                stack.append(_STRING_ESCAPE)
            else:
                last_valid = i
        elif state == _ARRAY_START:
            if char == "]":
                last_valid = i
                stack.pop()
            else:
                last_valid = i
                value_start(char, i, _ARRAY_AFTER_VALUE)
        elif state == _ARRAY_AFTER_VALUE:
            if char == ",":
                stack[-1] = _ARRAY_AFTER_COMMA
            elif char == "]":
                last_valid = i
                stack.pop()
            else:
                last_valid = i
        elif state == _ARRAY_AFTER_COMMA:
            value_start(char, i, _ARRAY_AFTER_VALUE)
        elif state == _STRING_ESCAPE:
            stack.pop()
            last_valid = i
        elif state == _NUMBER:
            if char in "0123456789":
                last_valid = i
            elif char in "eE-.":
                pass
            elif char == ",":
                stack.pop()
                if stack[-1] == _ARRAY_AFTER_VALUE:
                    after_array_value(char, i)
                if stack[-1] == _OBJECT_AFTER_VALUE:
                    after_object_value(char, i)
            elif char == "}":
                stack.pop()
                if stack[-1] == _OBJECT_AFTER_VALUE:
                    after_object_value(char, i)
            elif char == "]":
                stack.pop()
                if stack[-1] == _ARRAY_AFTER_VALUE:
                    after_array_value(char, i)
            else:
                stack.pop()
        elif state == _LITERAL:
            partial = text[literal_start : i + 1]
            if not any(literal.startswith(partial) for literal in _LITERALS):
                stack.pop()
                if stack[-1] == _OBJECT_AFTER_VALUE:
                    after_object_value(char, i)
                elif stack[-1] == _ARRAY_AFTER_VALUE:
                    after_array_value(char, i)
            else:
                last_valid = i

    result = text[: last_valid + 1]
    for state in reversed(stack):
        if state == _STRING:
            result += '"'
        elif state in _CLOSE_OBJECT:
            result += "}"
        elif state in _CLOSE_ARRAY:
            result += "]"
        elif state == _LITERAL:
            partial = text[literal_start:]
            for literal in _LITERALS:
                if literal.startswith(partial):
                    result += literal[len(partial) :]
                    break
    return result
