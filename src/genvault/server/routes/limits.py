"""Budgets, quotas and rate limits over HTTP (`genvault.limits`).

A user reads their own limits and usage; an admin reads anyone's and sets any user's, any key's,
or the default. A refused request is answered 429 by `server/errors.py`, wherever it started.
"""

from __future__ import annotations

from fastapi import APIRouter

from genvault.errors import Forbidden, NotFound
from genvault.limits import LimitSet, LimitsStatus
from genvault.server.deps import UserDep, VaultDep
from genvault.vault import Vault

__all__ = ["router"]

router = APIRouter(tags=["limits"])


async def _admin(vault: Vault, user: str) -> None:
    if not await vault.is_admin(user):
        raise Forbidden("only an admin may set limits")


@router.get("/api/limits", response_model=LimitsStatus)
async def own_limits(vault: VaultDep, user: UserDep) -> LimitsStatus:
    """Your limits (your own, the default, your keys') and how much of each you have used."""
    return await vault.limits_status(user)


@router.get("/api/limits/users/{user_id}", response_model=LimitsStatus)
async def user_limits(user_id: str, vault: VaultDep, user: UserDep) -> LimitsStatus:
    """A user's limits and usage: your own, or (admins) anyone's."""
    if user != user_id and not await vault.is_admin(user):
        raise NotFound(f"no user {user_id!r}")
    return await vault.limits_status(user_id)


@router.put("/api/limits/users/{user_id}", response_model=LimitSet)
async def set_user_limits(user_id: str, body: LimitSet, vault: VaultDep, user: UserDep) -> LimitSet:
    """Replace a user's limits (admins). Fields left out mean no limit of that kind."""
    await _admin(vault, user)
    return await vault.set_limits(body, user_id=user_id)


@router.put("/api/limits/keys/{key_id}", response_model=LimitSet)
async def set_key_limits(key_id: str, body: LimitSet, vault: VaultDep, user: UserDep) -> LimitSet:
    """Replace an API key's limits (admins); its owner's limits apply as well, the tighter wins."""
    await _admin(vault, user)
    return await vault.set_limits(body, key_id=key_id)


@router.put("/api/limits/default", response_model=LimitSet)
async def set_default_limits(body: LimitSet, vault: VaultDep, user: UserDep) -> LimitSet:
    """Replace the default limits (admins): every user's, where they have no value of their own."""
    await _admin(vault, user)
    return await vault.set_limits(body, default=True)
