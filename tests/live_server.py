"""A real uvicorn server on a free loopback port, inside the test's event loop.

In-process ASGI transports buffer whole responses; disconnects, resume-while-streaming and
real clients (Node, Chromium) need real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from bench._proc import free_port

__all__ = ["free_port", "serve"]


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Yields the base URL (`http://127.0.0.1:PORT`) while the server runs."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(12000):  # a ceiling (120 s) for a loaded machine
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
