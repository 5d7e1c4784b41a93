"""Token and cost totals."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter

from genvault.records import UsageRow
from genvault.server.deps import UserDep, VaultDep

router = APIRouter(tags=["usage"])


@router.get("/api/usage", response_model=list[UsageRow])
async def usage(
    vault: VaultDep,
    user: UserDep,
    group_by: Literal["model", "user", "day", "key", "tag"] = "model",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[UsageRow]:
    """Your tokens and cost, grouped by model, user, UTC day or API key. Admins see every user's."""
    scope = None if await vault.is_admin(user) else user
    return await vault.usage(group_by=group_by, user_id=scope, since=since, until=until)
