"""A tap on a passed-through upstream stream: the upstream's own bytes, for the one live caller
whose request the upstream is answering.

The gateway attaches a sink before the generation starts; a provider that sends the client's body
on unchanged (`WireRequest` in the upstream's own API) calls `open()` once the upstream's stream
has begun and then `feed()`s its lines as they come. Nothing else (a cache copy, a joined
request, a translated call, a replay) ever opens it, and then the gateway renders the reply from
the generation's chunks instead. The sink never blocks the provider: a caller that went away
detaches, and what follows is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["OPENED", "WireTap"]

# What the sink receives first, before any bytes: the upstream's stream is being passed through.
OPENED = b""


class WireTap:
    __slots__ = ("_sink", "include_usage", "opened")

    def __init__(self, *, include_usage: bool = True) -> None:
        self._sink: Callable[[bytes], None] | None = None
        self.opened = False
        # OpenAI Chat Completions: whether the client asked for the usage-only chunk
        # (`stream_options.include_usage`); genvault always asks the upstream for it.
        self.include_usage = include_usage

    def attach(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink

    def detach(self) -> None:
        self._sink = None

    @property
    def listening(self) -> bool:
        return self._sink is not None

    def open(self) -> None:
        """The provider: from here on the upstream's bytes are passed through."""
        if self._sink is not None and not self.opened:
            self.opened = True
            self._sink(OPENED)

    def feed(self, data: bytes) -> None:
        if self._sink is not None and self.opened and data:
            self._sink(data)
