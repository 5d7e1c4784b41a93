"""Signing in to the pages: `/login` (an API key, or a user name and password, in; a session
cookie out), `/logout`, and the
JSON API over sessions (`/api/sessions`: list yours, end one).

Invariants:
- The session cookie is HttpOnly, SameSite=Lax, Path=/, Secure when the page is served over
  https, and lasts as long as the session; its value is shown to nobody (not even the JSON API).
- The sign-in form is protected against login CSRF by a double-submit token: a random value in
  a SameSite=Strict cookie scoped to `/login` and the same value in the form; plus the
  same-origin rule every state-changing request meets (`server.sessions.SameOrigin`).
- `next` only ever leads to a path on this server.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from genvault.errors import Forbidden, LimitExceeded, Unauthorized
from genvault.server.deps import OptionalUserDep, UserDep, VaultDep
from genvault.server.routes.pages import page
from genvault.server.sessions import SESSION_COOKIE, safe_next, signed_in_session
from genvault.sessions import SessionInfo
from genvault.vault import Vault

__all__ = ["router"]

router = APIRouter()
api = APIRouter(tags=["sessions"])

LOGIN_CSRF_COOKIE = "genvault_login"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_form(
    request: Request, vault: Vault, *, next_path: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        {
            "title": "Sign in",
            "mode": vault.settings.auth,
            "auth_header": vault.settings.auth_header,
            "login_token": token,
            "next_path": next_path,
            "error": error,
        },
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login", max_age=3600
    )
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request, vault: VaultDep, user: OptionalUserDep, next: str = "/") -> Response:
    next_path = safe_next(next)
    if user is not None and vault.settings.auth != "header":
        return RedirectResponse(next_path, status_code=303)
    return _login_form(request, vault, next_path=next_path)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(request: Request, vault: VaultDep) -> Response:
    form = await request.form()
    next_path = safe_next(str(form.get("next") or "/"))
    if vault.settings.auth != "api_key":
        return _login_form(request, vault, next_path=next_path, status_code=400)
    sent, expected = str(form.get("csrf_token") or ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("the sign-in form's token does not match its cookie; open /login again and sign in there")
    try:
        if form.get("user") is not None:  # the password form
            signed = await vault.sessions.sign_in_with_password(str(form.get("user")), str(form.get("password") or ""))
        else:
            signed = await vault.sessions.sign_in_with_key(str(form.get("api_key") or ""))
    except (Unauthorized, LimitExceeded) as exc:
        status = 429 if isinstance(exc, LimitExceeded) else 401
        return _login_form(request, vault, next_path=next_path, error=exc.message, status_code=status)
    response = RedirectResponse(next_path, status_code=303)
    max_age = int((signed.session.expires_at - signed.session.created_at).total_seconds())
    response.set_cookie(
        SESSION_COOKIE, signed.cookie, httponly=True, samesite="lax", secure=_secure(request), path="/", max_age=max_age
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, vault: VaultDep, user: OptionalUserDep) -> Response:
    """Ends the session (the cookie's CSRF token is checked by the auth dependency first)."""
    session_id = signed_in_session(request)
    if session_id is not None:
        await vault.sessions.revoke(session_id, user_id=user)
    response = RedirectResponse("/login" if vault.settings.auth == "api_key" else "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response


@api.get("/api/sessions", response_model=list[SessionInfo])
async def list_sessions(
    vault: VaultDep,
    actor: UserDep,
    user: Annotated[str | None, Query(description="admins: another user's id, or * for everyone")] = None,
) -> list[SessionInfo]:
    """Your live page sessions (never their tokens). Admins may list another user's or everyone's."""
    scope: str | None = actor
    if user is not None and user != actor:
        if not await vault.is_admin(actor):
            raise Forbidden("only an admin can list another user's sessions")
        scope = None if user == "*" else user
    return await vault.sessions.list(user_id=scope)


@api.delete("/api/sessions/{session_id}", status_code=204)
async def revoke_session(session_id: str, vault: VaultDep, actor: UserDep) -> Response:
    """End a page session: yours, or anyone's for an admin. The browser holding it is sent to
    /login on its next page and gets 401 from the API."""
    owner = None if await vault.is_admin(actor) else actor
    await vault.sessions.revoke(session_id, user_id=owner)
    return Response(status_code=204)


router.include_router(api)
