from __future__ import annotations

from typing import Any

from genvault.providers.base import StreamReasoningDelta, StreamTextDelta, StreamToolInputStart
from genvault.translate import ChunkTranslator


def test_text_delta_gives_the_chunks_translate_gives_for_a_run_of_text_deltas() -> None:
    events = [StreamTextDelta(t) for t in ("Once", " upon", "", " a", " time")]
    events += [StreamReasoningDelta("hm"), StreamTextDelta("The"), StreamTextDelta(" end")]
    fast, general = ChunkTranslator(), ChunkTranslator()
    by_text_delta: list[dict[str, Any]] = []
    for event in events:
        chunk = fast.text_delta(event.text) if isinstance(event, StreamTextDelta) else None
        by_text_delta += [chunk] if chunk is not None else fast.translate(event)
    by_translate = [chunk for event in events for chunk in general.translate(event)]
    assert by_text_delta == by_translate
    assert [list(chunk) for chunk in by_text_delta] == [list(chunk) for chunk in by_translate]  # key order
    assert by_text_delta[2] == {"type": "text-delta", "id": "t1", "delta": " upon"}


def test_text_delta_leaves_to_translate_what_is_not_one_delta_of_an_open_text_part() -> None:
    translator = ChunkTranslator()
    assert translator.text_delta("Once") is None  # no part open: `translate` opens one
    assert translator.translate(StreamTextDelta("Once")) == [
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "Once"},
    ]
    assert translator.text_delta("") is None
    assert translator.translate(StreamTextDelta("")) == []
    translator.translate(StreamReasoningDelta("hm"))
    assert translator.text_delta(" upon") is None  # a reasoning part is open
    translator.translate(StreamToolInputStart(call_id="c1", name="weather"))
    assert translator.text_delta(" upon") is None  # nothing open after a tool call starts
    assert translator.translate(StreamTextDelta(" upon")) == [
        {"type": "text-start", "id": "t3"},
        {"type": "text-delta", "id": "t3", "delta": " upon"},
    ]
