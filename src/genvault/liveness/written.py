"""What a checkpoint sends of one running generation: only what grew since the last one it wrote.

A 20 tokens/s reply is checkpointed ~40 times in its 10 s; sending its whole text and message
each time made the checkpoints cost more than the tokens (the text joined, encoded, decoded and
copied 40 times, twice: once as `result_text`, once inside `result_message`). A checkpoint now
carries the text that streamed since the last one it wrote, at the length already written
(`o`), and the database appends it after that length (`substr(text, 1, o) || new`): running it
twice, or after a write that committed although the process saw it fail, gives the same row.

The message is sent whole only when something other than one text part's text changed (a new
part, a tool call, metadata, a part's state); when only the text of one text or reasoning part
grew, the database appends to that part's text the same way. On SQLite the message goes as its
JSON text instead (`as_text`): the characters it shares with the text last written are kept
(`substr(message, 1, x)`) and the rest is sent (`r`), so the database copies the column rather
than parsing it (`json_set` parsed the whole message twice and wrote it out again, every row and
interval: half the statement's cost). `Written` is what the database holds as of the last
successful checkpoint; a failed one leaves it as it was, and the next sends again from there
(the message's text whole: the failed write may have committed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from genvault._json import dump_json

__all__ = ["SAME", "Written", "common_prefix", "message_append", "next_checkpoint"]

# `message_append`'s answer when the message did not change at all.
SAME: Final = (-1, 0, "")


@dataclass(slots=True)
class Written:
    """What the database holds of one running generation after its last successful checkpoint."""

    # The run's list of text deltas these counts are of (a run that replaces the list is
    # written whole again), how many of its deltas were written, and their length in characters.
    text: list[str] | None = None
    items: int = 0
    chars: int = 0
    # The message JSON as last written (None: never written, the next one goes whole), and with
    # `as_text`, its text as the column holds it.
    message: dict[str, Any] | None = None
    message_text: str | None = None


def next_checkpoint(
    generation_id: str, text: list[str], message: dict[str, Any] | None, written: Written, *, as_text: bool = False
) -> tuple[dict[str, Any], Written]:
    """The checkpoint row for `checkpoint_many` (`i` id, `o` characters kept, `t` text appended;
    `m` the whole message, or `k`/`q`/`p` the part index, the characters of its text kept and
    the text appended to it; `as_text`: `x` the characters of the message's text kept, `r` the
    text after them), and what the database holds once it is written."""
    if text is written.text and len(text) >= written.items:
        kept, new = written.chars, "".join(text[written.items :])
        start = written.items
    else:
        kept, new = 0, "".join(text)
        start = 0
    if len(text) - start > 1:
        # The deltas just joined become that one piece, in the run's own list (it goes on
        # appending to it): the run holds a piece per checkpoint, not a string per token for its
        # whole life. Done before the write is known to succeed, and still right if it fails:
        # the list before `start` is as it was, so a retry from the old `written` sends the same.
        text[start:] = [new]
    row: dict[str, Any] = {"i": generation_id, "o": kept, "t": new}
    message_text = written.message_text
    if message is not None and as_text:
        message_text = dump_json(message)
        before = written.message_text
        if message_text != before:
            shared = 0 if before is None else common_prefix(before, message_text)
            row["x"], row["r"] = shared, message_text[shared:]
    elif message is not None:
        edit = message_append(written.message, message)
        if edit is None:
            row["m"] = message
        elif edit is not SAME:
            row["k"], row["q"], row["p"] = edit
    message = message if message is not None else written.message
    return row, Written(text, len(text), kept + len(new), message, message_text)


def common_prefix(a: str, b: str) -> int:
    """How many leading characters `a` and `b` share. A binary search of slice comparisons (each
    a `memcmp`), after a first probe near the end, where a running message changes (the growing
    part's text, then its closing characters)."""
    low, high = 0, min(len(a), len(b))
    probe = high - 64
    if probe > 0 and b.startswith(a[:probe]):
        low = probe
    while low < high:  # the answer is in [low, high]
        middle = (low + high + 1) // 2
        if b.startswith(a[low:middle], low):
            low = middle
        else:
            high = middle - 1
    return low


def message_append(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple[int, int, str] | None:
    """`new` as `old` with text appended to one text or reasoning part: (part index, length of
    its text in `old`, the text appended); `SAME` when nothing changed; None when it differs in
    any other way (then it is written whole)."""
    if old is None or old.keys() != new.keys():
        return None
    for key, value in old.items():
        if key != "parts" and value != new[key]:
            return None
    before, after = old["parts"], new["parts"]
    if len(before) != len(after):
        return None
    edit = SAME
    for index, (was, now) in enumerate(zip(before, after, strict=True)):
        # A part that did not change is usually the same object (the assembler caches a
        # finished part's JSON); only the growing one is compared field by field.
        if was is now or was == now:
            continue
        if edit is not SAME or was.keys() != now.keys() or now.get("type") not in ("text", "reasoning"):
            return None
        for key, value in was.items():  # a loop, not `any(<generator>)`: once per stream per interval
            if key != "text" and value != now[key]:
                return None
        text_was, text_now = was["text"], now["text"]
        if not (isinstance(text_was, str) and isinstance(text_now, str) and text_now.startswith(text_was)):
            return None
        edit = (index, len(text_was), text_now[len(text_was) :])
    return edit
