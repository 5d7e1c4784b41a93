from __future__ import annotations

from typing import Any

from genvault.providers.base import StreamReasoningDelta, StreamTextDelta, StreamToolInputStart
from genvault.translate import ChunkTranslator


def test_a_delta_built_on_open_text_is_what_translate_gives_for_a_run_of_text_deltas() -> None:
    """The engine's token path: while `open_text()` names a part, it builds a non-empty text
    delta's chunk itself; every other event, and a delta with no part known open, goes through
    `translate` (after which it asks `open_text()` again)."""
    events = [StreamTextDelta(t) for t in ("Once", " upon", "", " a", " time")]
    events += [StreamReasoningDelta("hm"), StreamTextDelta("The"), StreamTextDelta(" end")]
    fast, general = ChunkTranslator(), ChunkTranslator()
    built: list[dict[str, Any]] = []
    part = None
    for event in events:
        if isinstance(event, StreamTextDelta) and part is not None and event.text:
            built.append({"type": "text-delta", "id": part, "delta": event.text})
            continue
        built += fast.translate(event)
        part = fast.open_text()
    by_translate = [chunk for event in events for chunk in general.translate(event)]
    assert built == by_translate
    assert [list(chunk) for chunk in built] == [list(chunk) for chunk in by_translate]  # key order
    assert built[2] == {"type": "text-delta", "id": "t1", "delta": " upon"}


def test_open_text_names_only_an_open_text_part() -> None:
    translator = ChunkTranslator()
    assert translator.open_text() is None  # no part open: `translate` opens one
    assert translator.translate(StreamTextDelta("Once")) == [
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "Once"},
    ]
    assert translator.open_text() == "t1"
    assert translator.translate(StreamTextDelta("")) == []
    assert translator.open_text() == "t1"
    translator.translate(StreamReasoningDelta("hm"))
    assert translator.open_text() is None  # a reasoning part is open
    translator.translate(StreamToolInputStart(call_id="c1", name="weather"))
    assert translator.open_text() is None  # nothing open after a tool call starts
    assert translator.translate(StreamTextDelta(" upon")) == [
        {"type": "text-start", "id": "t3"},
        {"type": "text-delta", "id": "t3", "delta": " upon"},
    ]
    assert translator.open_text() == "t3"
    assert translator.finish_step() == [{"type": "text-end", "id": "t3"}, {"type": "finish-step"}]
    assert translator.open_text() is None
