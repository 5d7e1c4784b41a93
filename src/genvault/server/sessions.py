"""The pages' session cookie and the CSRF rules (see `genvault.sessions` for the sessions).

Rules, for every route:
- `SameOrigin` (middleware): a state-changing request (POST, PUT, PATCH, DELETE) without an
  `Authorization` header is refused (403) when the browser says it comes from another site
  (`Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` that is not this server's).
  A Bearer key (or `x-api-key`) is not sent by browsers on their own, so a request with one is
  not a forgery.
  This covers every auth mode, `header` (a proxy's cookie) and `none` (a local server) too.
- The session cookie signs a request in only under `api_key` auth, only where the request has
  no `Authorization` header, and never on the `/v1` gateway. On the JSON API (`/api/…`) it counts
  only for the pages' own scripts: a request carrying the session's CSRF token in `X-CSRF-Token`,
  or a read (GET/HEAD) the browser marks `Sec-Fetch-Site: same-origin` (an `<img>` of a file).
  A typed address or a cross-site link gets the API's usual 401.
- A state-changing request signed in by the cookie must carry the session's CSRF token, in the
  `X-CSRF-Token` header or a form's `csrf_token` field; otherwise 403 and nothing changes.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from genvault.errors import Forbidden
from genvault.limits import KeyGrant, acting_key
from genvault.server.guard import send_error
from genvault.sessions import csrf_token_for
from genvault.vault import Vault

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SameOrigin",
    "csrf_of",
    "safe_next",
    "session_user",
    "signed_in_session",
]

SESSION_COOKIE = "genvault_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Set in the request scope once the cookie signed the request in: base.html reads them.
_SESSION = "genvault.session"
_CSRF = "genvault.csrf"


# The request headers `SameOrigin` reads, by raw (lower-case, as ASGI gives them) name: a key
# header's presence (0), and the first value of the others, in `_browser_headers`' slots.
_ORIGIN_HEADERS: dict[bytes, int] = {
    b"authorization": 0,
    b"x-api-key": 0,
    b"sec-fetch-site": 1,
    b"origin": 2,
    b"host": 3,
    b"x-forwarded-host": 4,
}


def _browser_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[str | None] | None:
    """None when the request carries a key in a header (Bearer, or the Anthropic shape's
    x-api-key: no ambient credential); else the first value of Sec-Fetch-Site, Origin, Host and
    X-Forwarded-Host (slots 1-4), as Starlette's `Headers.get` reads them, in one pass over the
    raw headers instead of a `Headers` view and four look-ups (each a pass, a miss a KeyError)."""
    found: list[str | None] = [None, None, None, None, None]
    for name, value in raw:
        slot = _ORIGIN_HEADERS.get(name)
        if slot is not None:
            if slot == 0:
                return None
            if found[slot] is None:
                found[slot] = value.decode("latin-1")
    return found


def _foreign(
    site: str | None, origin: str | None, host: str | None, forwarded_host: str | None, public_url: str | None
) -> str | None:
    """Why the browser's own headers say this request comes from another site; None if not."""
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    if origin is not None:
        hosts = {h for h in (host, forwarded_host) if h}
        if public_url:
            hosts.add(urlsplit(public_url).netloc)
        if urlsplit(origin).netloc not in hosts:
            return f"Origin {origin[:100]!r} is not this server"
    return None


class SameOrigin:
    """Refuses cross-site state-changing requests made without a Bearer key (see the module)."""

    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self.app = app
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in UNSAFE:
            found = _browser_headers(scope.get("headers") or ())
            if found is not None:
                why = _foreign(found[1], found[2], found[3], found[4], self.public_url)
                if why is not None:
                    message = f"cross-site request refused ({why}); use the page on this server or a Bearer key"
                    await send_error(scope, send, 403, "forbidden", message)
                    return
        await self.app(scope, receive, send)


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/api"


async def _sent_csrf(request: Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.method in UNSAFE:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            field = (await request.form()).get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
    return sent


async def session_user(request: Request, vault: Vault) -> str | None:
    """The user the session cookie signs in, under the rules in the module docstring; None when
    it does not apply (no cookie, an ended session, the gateway, a script-less API request)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    path = request.url.path
    if not cookie or path.startswith("/v1/") or path == "/v1":
        return None
    row = await vault.sessions.resolve(cookie)
    if row is None:
        return None
    expected = csrf_token_for(cookie)
    sent = await _sent_csrf(request)
    token_ok = sent is not None and hmac.compare_digest(sent.encode(), expected.encode())
    if request.method in UNSAFE:
        if not token_ok:
            raise Forbidden(
                "this request is signed in by the page's session cookie but lacks its CSRF token "
                f"(header X-CSRF-Token or form field {CSRF_FIELD}); reload the page and try again"
            )
    elif _is_api(path) and not token_ok and request.headers.get("sec-fetch-site") != "same-origin":
        return None
    if row.key_id is not None:
        models = None if row.key_models is None else tuple(row.key_models)
        acting_key.set(KeyGrant(row.key_id, row.user_id, row.key_expires_at, models))
    request.scope[_SESSION] = row.id
    request.scope[_CSRF] = expected
    return row.user_id


def signed_in_session(request: Request) -> str | None:
    """The id of the session that signed this request in (after `session_user`), if any."""
    value = request.scope.get(_SESSION)
    return value if isinstance(value, str) else None


def csrf_of(request: Request) -> str | None:
    value = request.scope.get(_CSRF)
    return value if isinstance(value, str) else None


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 for c in target) or len(target) > 2000:
        return "/"
    return target
