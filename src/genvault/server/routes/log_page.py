"""`/generations`: the log browser, a page over `GET /api/generations` (the same filters, the same
cursor pages, through the Vault). Each row links to its record. An admin may look at another
user's log, or everyone's (`user=*`), as `GET /api/generations?user=…` allows.

Bad filters (an unknown status, a date that is not YYYY-MM-DD, a cursor from elsewhere) give the
page again with the problem said and a 400, never a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from genvault.errors import Forbidden, InvalidRequest
from genvault.server.deps import OptionalUserDep, VaultDep
from genvault.server.routes.pages import page, sign_in_required
from genvault.server.routes.search import EVERYONE, search_scope
from genvault.store.schema import GENERATION_KINDS, GENERATION_STATUSES

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

LOG_PAGE = 50
FILTERS = ("status", "kind", "model", "tag", "since", "until", "user")


def _day(value: str, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{what} must be a date like 2026-12-31, got {value[:40]!r}") from None


@router.get("/generations", response_class=HTMLResponse)
async def log_page(
    request: Request,
    vault: VaultDep,
    user: OptionalUserDep,
    status: str = "",
    kind: str = "",
    model: str = "",
    tag: str = "",
    since: str = "",
    until: str = "",
    cursor: str = "",
    who: str = Query(default="", alias="user"),
) -> Response:
    if user is None:
        return sign_in_required(request, vault)
    admin = await vault.is_admin(user)
    chosen = {"status": status, "kind": kind, "model": model, "tag": tag, "since": since, "until": until, "user": who}
    context: dict[str, Any] = {
        "title": "Log",
        "f": chosen,
        "statuses": GENERATION_STATUSES,
        "kinds": GENERATION_KINDS,
        "admin": admin,
        "rows": [],
        "error": None,
        "next_url": None,
        "first_url": None,
        "everyone_token": EVERYONE,
    }
    try:
        if status and status not in GENERATION_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(GENERATION_STATUSES)}")
        if kind and kind not in GENERATION_KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(GENERATION_KINDS)}")
        first, last = _day(since, "from"), _day(until, "until")
        scope = await search_scope(vault, user, who or None)
        listed = await vault.list_generations(
            user_id=scope,
            status=status or None,
            kind=kind or None,
            model=model.strip() or None,
            tag=tag.strip() or None,
            since=None if first is None else datetime.combine(first, time.min, tzinfo=UTC),
            # The day named is included: up to the start of the next.
            until=None if last is None else datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
            limit=LOG_PAGE,
            cursor=cursor or None,
        )
    except (InvalidRequest, Forbidden) as exc:
        context["error"] = exc.message
        return page(request, "generations.html", context, status_code=403 if isinstance(exc, Forbidden) else 400)
    kept = {name: value for name, value in chosen.items() if value}
    context["rows"] = listed.items
    context["show_user"] = scope != user
    if listed.next_cursor:
        context["next_url"] = "/generations?" + urlencode(kept | {"cursor": listed.next_cursor})
    if cursor:
        context["first_url"] = "/generations" + (f"?{urlencode(kept)}" if kept else "")
    return page(request, "generations.html", context)
