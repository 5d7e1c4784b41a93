"""Token and cost totals."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from genvault.records import UsageRow
from genvault.server.deps import UserDep, VaultDep
from genvault.usage_csv import usage_csv

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


@router.get(
    "/api/usage.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per group, with a header row"}},
)
async def usage_as_csv(
    vault: VaultDep,
    user: UserDep,
    group_by: Literal["model", "user", "day", "key", "tag"] = "model",
    since: datetime | None = None,
    until: datetime | None = None,
) -> Response:
    """`GET /api/usage` as CSV: the same rows, the same scope (admins: everyone's). A group with no
    priced generation has an empty `cost_usd` (unknown), never 0."""
    scope = None if await vault.is_admin(user) else user
    rows = await vault.usage(group_by=group_by, user_id=scope, since=since, until=until)
    return Response(
        usage_csv(rows, group_by),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="genvault-usage-by-{group_by}.csv"',
            "Cache-Control": "no-store",
        },
    )
