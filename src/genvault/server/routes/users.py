"""A user's own data: take it out (export) or have it deleted (erasure).

Only the user themself or an admin may do either. Anyone else gets the same 404 as for a user
that does not exist (existence of an account is not revealed), and the anonymous 401.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from genvault.errors import NotFound
from genvault.ops.erasure import ErasureReceipt
from genvault.server.deps import UserDep, VaultDep
from genvault.vault import Vault

__all__ = ["router"]

router = APIRouter(tags=["users"])


async def _may_act_on(vault: Vault, actor: str, user_id: str) -> None:
    if actor != user_id and not await vault.is_admin(actor):
        raise NotFound(f"no user {user_id!r}")


@router.get(
    "/api/users/{user_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "The archive (JSONL)"}},
)
async def export_user(user_id: str, vault: VaultDep, actor: UserDep) -> StreamingResponse:
    """The user's archive: chats with their UIMessages, generations with usage and cost, and files,
    streamed as JSONL (docs/archive-format.md). `genvault import` loads it into any database."""
    await _may_act_on(vault, actor, user_id)
    if not await vault.user_exists(user_id):
        raise NotFound(f"no user {user_id!r}")
    filename = f"genvault-{user_id}.jsonl"
    return StreamingResponse(
        vault.export(user_id=user_id),
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        },
    )


@router.delete("/api/users/{user_id}", response_model=ErasureReceipt)
async def erase_user(user_id: str, vault: VaultDep, actor: UserDep) -> ErasureReceipt:
    """Erase the user and everything of theirs; the receipt counts what went. Erasing an account
    that is already gone (by an admin) returns a receipt of zeros."""
    await _may_act_on(vault, actor, user_id)
    return await vault.erase_user(user_id, actor_user_id=actor)
