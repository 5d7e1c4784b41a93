"""The load generator's connections: an idle one is dropped by the client before the server
drops it (bench/_load.py, `KEEPALIVE_EXPIRY_S`)."""

from __future__ import annotations

import uvicorn

from bench._load import KEEPALIVE_EXPIRY_S


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never served
    raise AssertionError


def test_the_load_generator_expires_an_idle_connection_well_before_the_servers_keep_alive_timeout() -> None:
    # bench._server and `genvault serve` run uvicorn with its default keep-alive timeout. With
    # httpx's default expiry (the same 5 s, counted from later) a connection idle about 5 s was
    # reused just after the server closed it, and the request failed with a ReadError.
    server_timeout = uvicorn.Config(_app).timeout_keep_alive
    assert server_timeout - KEEPALIVE_EXPIRY_S >= 2
