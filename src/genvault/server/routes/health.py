"""Liveness and metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from genvault.errors import Unauthorized
from genvault.server.deps import VaultDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(vault: VaultDep) -> dict[str, str]:
    """200 when the database answers."""
    async with vault.store.read() as conn:
        await conn.execute(text("SELECT 1"))
    return {"status": "ok", "database": vault.store.dialect}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request, vault: VaultDep) -> Response:
    """Prometheus text. With `GENVAULT_METRICS_TOKEN` set, only for `Authorization: Bearer <it>`."""
    token = vault.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise Unauthorized("/metrics needs Authorization: Bearer <GENVAULT_METRICS_TOKEN>")
    async with vault.store.read() as conn:
        body = await request.app.state.metrics.render(conn)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
