"""Search over HTTP: `GET /api/search?q=…`, ranked hits with snippets and what to open.

A user searches their own chats and generations; an admin may name another user (`user=`) or
everyone (`user=*`). A malformed query is a 400 that says what is wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from genvault.errors import Forbidden
from genvault.search import SearchPage
from genvault.search.service import MAX_LIMIT
from genvault.server.deps import UserDep, VaultDep
from genvault.vault import Vault

router = APIRouter(tags=["search"])

EVERYONE = "*"


async def search_scope(vault: Vault, actor: str, user: str | None) -> str | None:
    """Whose documents `actor` searches: their own by default; another user's or everyone's
    (None) only for an admin."""
    if user is None or user == actor:
        return actor
    if not await vault.is_admin(actor):
        raise Forbidden("only an admin can see another user's records")
    return None if user == EVERYONE else user


@router.get("/api/search", response_model=SearchPage)
async def search(
    vault: VaultDep,
    actor: UserDep,
    q: Annotated[str, Query(description='words, "a phrase", prefix*, -exclude')],
    user: Annotated[str | None, Query(description="admins: another user's id, or * for everyone")] = None,
    chat_id: str | None = None,
    kind: Literal["message", "chat", "generation"] | None = None,
    model: str | None = None,
    role: Literal["system", "user", "assistant"] | None = None,
    status: Literal["pending", "streaming", "complete", "error", "cancelled", "interrupted"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tag: Annotated[str | None, Query(description="only documents whose chat or generation has this tag")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: str | None = None,
) -> SearchPage:
    """Messages, chat titles and generations matching `q`, best first, with highlighted snippets."""
    return await vault.search(
        q,
        user_id=await search_scope(vault, actor, user),
        chat_id=chat_id,
        kind=kind,
        model=model,
        role=role,
        status=status,
        since=since,
        until=until,
        tag=tag,
        limit=limit,
        cursor=cursor,
    )
