"""A real HTTP receiver for webhook tests: records every request, answers as the test says."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live_server import serve


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes
    event: dict[str, Any]
    answered: int | None = None  # None: never answered (the sender timed out)


Answer = Callable[[Call], Awaitable[int]]


async def ok(call: Call) -> int:
    return 200


@dataclass
class Receiver:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    answer: Answer = ok
    # Set at the end: a request told to hang returns then (the server can stop).
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def hang(self) -> int:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), 300)
        return 200

    def ids(self, answered: int | None = 200) -> list[str]:
        return [c.event["id"] for c in self.calls if c.answered == answered]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait until `condition()` holds (180 s: a ceiling for a loaded machine, not a timing)."""
        for _ in range(3600):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never happened: {what}; calls: {[(c.event['type'], c.answered) for c in self.calls]}")


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        call = Call(headers=dict(request.headers), body=body, event=json.loads(body))
        state.calls.append(call)
        status = await state.answer(call)
        call.answered = status
        return Response(status_code=status)

    app = Starlette(routes=[Route("/hook", endpoint, methods=["POST"])])
    async with serve(app) as base:
        state.url = f"{base}/hook"
        try:
            yield state
        finally:
            state.released.set()
