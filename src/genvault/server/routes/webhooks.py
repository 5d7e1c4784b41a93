"""Webhooks over HTTP (`genvault.webhooks`): subscriptions, their delivery log, and retries.

Admins only: anyone else who is signed in gets 403 (the routes exist for everyone; what they
manage is the server's), the anonymous 401.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from genvault.errors import Forbidden
from genvault.server.deps import UserDep, VaultDep
from genvault.vault import Vault
from genvault.webhooks import Delivery, Webhook, WebhookCreated

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])


class WebhookCreate(BaseModel):
    """Body of `POST /api/webhooks`. Leave `secret` out to have one made (returned once)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    secret: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)


class WebhookUpdate(BaseModel):
    """Body of `PATCH /api/webhooks/{id}`: what is given changes."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    active: bool | None = None
    description: str | None = Field(default=None, max_length=500)


async def _admin(vault: Vault, user: str) -> None:
    if not await vault.is_admin(user):
        raise Forbidden("only an admin may manage webhooks")


@router.post("/api/webhooks", status_code=201, response_model=WebhookCreated)
async def add_webhook(body: WebhookCreate, vault: VaultDep, user: UserDep) -> WebhookCreated:
    """Subscribe a URL to events; the answer carries the signing secret (shown only here)."""
    await _admin(vault, user)
    return await vault.webhooks.add(body.url, body.events, secret=body.secret, description=body.description)


@router.get("/api/webhooks", response_model=list[Webhook])
async def list_webhooks(vault: VaultDep, user: UserDep) -> list[Webhook]:
    await _admin(vault, user)
    return await vault.webhooks.all()


@router.get("/api/webhooks/{webhook_id}", response_model=Webhook)
async def get_webhook(webhook_id: str, vault: VaultDep, user: UserDep) -> Webhook:
    await _admin(vault, user)
    return await vault.webhooks.get(webhook_id)


@router.patch("/api/webhooks/{webhook_id}", response_model=Webhook)
async def update_webhook(webhook_id: str, body: WebhookUpdate, vault: VaultDep, user: UserDep) -> Webhook:
    await _admin(vault, user)
    return await vault.webhooks.update(
        webhook_id, url=body.url, events=body.events, active=body.active, description=body.description
    )


@router.delete("/api/webhooks/{webhook_id}", status_code=204, response_class=Response)
async def remove_webhook(webhook_id: str, vault: VaultDep, user: UserDep) -> Response:
    """Remove the subscription and its delivery log (pending deliveries are dropped)."""
    await _admin(vault, user)
    await vault.webhooks.remove(webhook_id)
    return Response(status_code=204)


@router.get("/api/webhooks/{webhook_id}/deliveries", response_model=list[Delivery])
async def list_deliveries(
    webhook_id: str,
    vault: VaultDep,
    user: UserDep,
    status: Literal["pending", "delivered", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(ge=1, lt=2**63, description="deliveries with a smaller id (next page)")] = None,
) -> list[Delivery]:
    """The delivery log, newest first: each event's attempts, last status code and error."""
    await _admin(vault, user)
    return await vault.webhooks.deliveries(webhook_id, status=status, limit=limit, before=before)


@router.post("/api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", response_model=Delivery)
async def retry_delivery(webhook_id: str, delivery_id: int, vault: VaultDep, user: UserDep) -> Delivery:
    """Send a dead (or delivered) event again, with a fresh count of attempts; 409 if pending."""
    await _admin(vault, user)
    return await vault.webhooks.retry(delivery_id, webhook_id=webhook_id)
