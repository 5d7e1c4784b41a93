"""Signing in to the pages with an API key (`/login`), the session cookie, and CSRF: through HTTP
(in process), the Vault, and the store. The browser side is in tests/test_browser_auth.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.datastructures import Headers

from genvault.errors import InvalidRequest, NotFound, Unauthorized
from genvault.server import create_app
from genvault.server.sessions import SESSION_COOKIE, _browser_headers, _foreign, safe_next
from genvault.sessions import FAILED_SIGN_INS_PER_MINUTE
from genvault.store.keys import create_key, revoke_key
from genvault.store.schema import sessions, user_passwords
from genvault.vault import Vault

BASE = "http://genvault.test"
SAME_SITE = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
async def world(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    vault: Vault = await vault_factory(settings_overrides={"auth": "api_key"})
    keys = {}
    for name in ("alice", "bob"):
        await vault.create_user(name)
        async with vault.store.write() as conn:
            keys[name] = await create_key(conn, name, "laptop")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield {"http": http, "vault": vault, "keys": keys}


async def sign_in(http: httpx.AsyncClient, key: str, next_path: str = "/") -> httpx.Response:
    form = await http.get("/login", params={"next": next_path})
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return await http.post(
        "/login", data={"api_key": key, "csrf_token": token.group(1), "next": next_path}, headers=SAME_SITE
    )


async def csrf_of_page(http: httpx.AsyncClient) -> str:
    home = await http.get("/")
    assert home.status_code == 200
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text)
    assert found is not None
    return found.group(1)


async def test_a_page_without_a_session_redirects_to_the_sign_in_page_and_back(world: dict[str, Any]) -> None:
    http = world["http"]
    response = await http.get("/usage?days=7")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fusage%3Fdays%3D7"
    signed = await sign_in(http, world["keys"]["alice"][1], "/usage?days=7")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/usage?days=7"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=lax", "Path=/", "Max-Age="):
        assert attribute.lower() in cookie.lower(), attribute
    assert "secure" not in cookie.lower()  # plain http here; https sets Secure
    home = await http.get("/")
    # Sign out, and both forms of the start page, carry the token without needing a script.
    assert home.text.count('name="csrf_token"') == 3
    page = await http.get("/usage?days=7")
    assert page.status_code == 200
    assert 'name="csrf-token"' in page.text
    assert "Sign out" in page.text


async def test_only_a_hash_of_the_session_token_is_stored(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    await sign_in(http, world["keys"]["alice"][1])
    cookie = http.cookies[SESSION_COOKIE]
    session_id, token, _signature = cookie.split(".")
    async with vault.store.read() as conn:
        row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).mappings().one()
    assert row["user_id"] == "alice"
    assert row["key_id"] == world["keys"]["alice"][0]
    assert row["token_hash"].startswith("sha256:")
    assert token not in str(dict(row))


async def test_a_wrong_key_shows_the_form_again_with_401_and_sets_no_cookie(world: dict[str, Any]) -> None:
    response = await sign_in(world["http"], "key_nope.wrong")
    assert response.status_code == 401
    assert "not valid" in response.text
    assert SESSION_COOKIE not in world["http"].cookies


async def test_the_sign_in_form_refuses_a_post_without_its_own_token(world: dict[str, Any]) -> None:
    http = world["http"]
    await http.get("/login")
    forged = await http.post("/login", data={"api_key": world["keys"]["alice"][1], "csrf_token": "guess"})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in http.cookies


async def test_a_cross_site_sign_in_post_is_refused(world: dict[str, Any]) -> None:
    http = world["http"]
    form = await http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    response = await http.post(
        "/login",
        data={"api_key": world["keys"]["alice"][1], "csrf_token": token},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert SESSION_COOKIE not in http.cookies


async def test_the_json_api_ignores_the_cookie_without_the_pages_token_and_stays_401(world: dict[str, Any]) -> None:
    http = world["http"]
    await sign_in(http, world["keys"]["alice"][1])
    plain = await http.get("/api/generations")  # a typed address, curl with the cookie: not the page
    assert plain.status_code == 401
    assert plain.json()["error"]["code"] == "unauthorized"
    cross = await http.get("/api/generations", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 401
    token = await csrf_of_page(http)
    assert (await http.get("/api/generations", headers={"X-CSRF-Token": token})).status_code == 200
    assert (await http.get("/api/generations", headers={"Sec-Fetch-Site": "same-origin"})).status_code == 200
    # The gateway never takes the cookie.
    assert (await http.get("/v1/models", headers={"X-CSRF-Token": token})).status_code in (401, 404)


async def test_a_state_changing_request_with_the_cookie_needs_the_csrf_token(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    await sign_in(http, world["keys"]["alice"][1])
    body = {"prompt": "hello"}
    # The cookie alone (a forged form from a site the browser still sends Lax cookies from, a
    # same-site subdomain, an old browser without Sec-Fetch-Site): refused, nothing stored.
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"Origin": BASE}):
        refused = await http.post("/api/generate", json=body, headers=headers)
        assert refused.status_code == 403, headers
        assert "CSRF" in refused.json()["error"]["message"]
    forged_form = await http.post("/api/generate", data={"prompt": "hello", "csrf_token": "nope"})
    assert forged_form.status_code == 403
    assert (await vault.list_generations(user_id="alice")).items == []
    token = await csrf_of_page(http)
    made = await http.post("/api/generate", json=body, headers={"X-CSRF-Token": token, **SAME_SITE})
    assert made.status_code == 201, made.text
    form = await http.post("/api/generate", data={"prompt": "by form", "csrf_token": token}, headers=SAME_SITE)
    assert form.status_code == 303
    assert len((await vault.list_generations(user_id="alice")).items) == 2


async def test_a_cross_site_post_is_refused_in_every_auth_mode_unless_it_carries_a_bearer_key(
    vault_factory: Any,
) -> None:
    vault = await vault_factory()  # auth "none": a local server a web page could post to
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            refused = await http.post("/api/generate", data={"prompt": "drive-by"}, headers=headers)
            assert refused.status_code == 403, headers
        assert (await vault.list_generations()).items == []
        same = await http.post("/api/generate", data={"prompt": "mine"}, headers=SAME_SITE)
        assert same.status_code == 303
        # A non-browser client sends neither header.
        assert (await http.post("/api/generate", json={"prompt": "cli"})).status_code == 201


async def test_sign_out_ends_the_session_for_good(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    await sign_in(http, world["keys"]["alice"][1])
    cookie = http.cookies[SESSION_COOKIE]
    token = await csrf_of_page(http)
    assert (await http.post("/logout", headers=SAME_SITE)).status_code == 403  # no token: forged
    out = await http.post("/logout", data={"csrf_token": token}, headers=SAME_SITE)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert SESSION_COOKIE not in http.cookies
    # The old cookie, replayed, signs nobody in.
    http.cookies.set(SESSION_COOKIE, cookie)
    assert (await http.get("/")).status_code == 303
    assert await vault.sessions.list(user_id="alice") == []


async def test_revoking_the_key_or_the_session_or_erasing_the_user_ends_the_session(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    key_id, key = world["keys"]["alice"]
    await sign_in(http, key)
    assert (await http.get("/")).status_code == 200
    async with vault.store.write() as conn:
        await revoke_key(conn, key_id)
    assert (await http.get("/")).status_code == 303
    listed = await vault.sessions.list(user_id="alice", live_only=False)
    assert len(listed) == 1
    assert listed[0].revoked_at is not None

    bob_id, bob_key = world["keys"]["bob"]
    http.cookies.clear()
    await sign_in(http, bob_key)
    token = await csrf_of_page(http)
    [live] = await vault.sessions.list(user_id="bob")
    ended = await http.delete(f"/api/sessions/{live.id}", headers={"X-CSRF-Token": token, **SAME_SITE})
    assert ended.status_code == 204
    assert (await http.get("/usage")).status_code == 303

    http.cookies.clear()
    await sign_in(http, bob_key)
    assert (await http.get("/")).status_code == 200
    await vault.erase_user("bob", actor_user_id="bob")
    assert (await http.get("/")).status_code == 303
    async with vault.store.read() as conn:
        assert (await conn.execute(select(func.count()).where(sessions.c.user_id == "bob"))).scalar() == 0
    del bob_id


async def test_a_forged_or_tampered_cookie_signs_nobody_in(world: dict[str, Any]) -> None:
    http = world["http"]
    await sign_in(http, world["keys"]["alice"][1])
    session_id, token, signature = http.cookies[SESSION_COOKIE].split(".")
    for forged in (f"{session_id}.{token}.AAAA", f"{session_id}.{token[:-2]}xx.{signature}", "garbage", "a.b.c"):
        http.cookies.clear()
        http.cookies.set(SESSION_COOKIE, forged)
        assert (await http.get("/")).status_code == 303, forged


async def test_the_sessions_api_lists_your_own_and_hides_the_token(world: dict[str, Any]) -> None:
    http = world["http"]
    await sign_in(http, world["keys"]["alice"][1])
    listed = await http.get("/api/sessions", headers={"Authorization": f"Bearer {world['keys']['alice'][1]}"})
    assert listed.status_code == 200
    [one] = listed.json()
    assert one["user_id"] == "alice"
    assert set(one) == {"id", "user_id", "key_id", "created_at", "expires_at", "revoked_at"}
    others = await http.get(
        "/api/sessions", params={"user": "*"}, headers={"Authorization": f"Bearer {world['keys']['alice'][1]}"}
    )
    assert others.status_code == 403
    strangers = await http.delete(
        f"/api/sessions/{one['id']}", headers={"Authorization": f"Bearer {world['keys']['bob'][1]}"}
    )
    assert strangers.status_code == 404


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/usage", "/usage"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil", "/"), ("", "/")],
)
def test_after_sign_in_only_a_path_on_this_server_is_followed(target: str, expected: str) -> None:
    assert safe_next(target) == expected


async def test_over_https_the_session_cookie_is_secure(vault_factory: Any) -> None:
    vault: Vault = await vault_factory(settings_overrides={"auth": "api_key"})
    await vault.create_user("erin")
    async with vault.store.write() as conn:
        _key_id, key = await create_key(conn, "erin", "phone")
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="https://genvault.test") as http:
        form = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        assert "secure" in form.headers["set-cookie"].lower()  # the sign-in form's own token too
        signed = await http.post(
            "/login", data={"api_key": key, "csrf_token": token.group(1)}, headers={"Origin": "https://genvault.test"}
        )
        assert signed.status_code == 303
        cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
        assert "; secure" in cookie.lower()
        assert "httponly" in cookie.lower()


async def test_a_user_with_a_password_signs_in_with_it_and_a_new_password_ends_their_sessions(
    world: dict[str, Any],
) -> None:
    http, vault = world["http"], world["vault"]
    await vault.sessions.set_password("alice", "correct horse battery")
    async with vault.store.read() as conn:
        stored = (await conn.execute(select(user_passwords.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored

    async def with_password(user: str, password: str) -> httpx.Response:
        form = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"user": user, "password": password, "csrf_token": token.group(1), "next": "/usage"}
        return await http.post("/login", data=data, headers=SAME_SITE)

    for user, password in (("alice", "wrong password!"), ("nobody", "correct horse battery"), ("", "x")):
        refused = await with_password(user, password)
        assert refused.status_code == 401
        assert "user name or password is wrong" in refused.text
    signed = await with_password("alice", "correct horse battery")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/usage"
    assert (await http.get("/usage")).status_code == 200
    [session] = await vault.sessions.list(user_id="alice")
    assert session.key_id is None
    await vault.sessions.set_password("alice", "another long password")
    assert (await http.get("/usage")).status_code == 303


@pytest.mark.parametrize(("user", "password"), [("alice", "short"), ("nobody", "long enough password"), ("", "x" * 20)])
async def test_a_bad_password_or_user_is_refused_and_nothing_is_stored(
    world: dict[str, Any], user: str, password: str
) -> None:
    vault: Vault = world["vault"]
    with pytest.raises((InvalidRequest, NotFound)):
        await vault.sessions.set_password(user, password)
    async with vault.store.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(user_passwords))).scalar() == 0


async def test_after_ten_wrong_passwords_in_a_minute_a_user_name_is_refused_with_429(world: dict[str, Any]) -> None:
    http, vault = world["http"], world["vault"]
    await vault.sessions.set_password("alice", "the right password")
    await vault.sessions.set_password("bob", "bob's own password")
    for _ in range(FAILED_SIGN_INS_PER_MINUTE):
        with pytest.raises(Unauthorized):
            await vault.sessions.sign_in_with_password("alice", "a wrong guess")
    form = await http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    data = {"user": "alice", "password": "the right password", "csrf_token": token.group(1)}
    refused = await http.post("/login", data=data, headers=SAME_SITE)
    assert refused.status_code == 429  # even the right one, until the window moves on
    assert "too many wrong passwords" in refused.text
    assert SESSION_COOKIE not in http.cookies
    assert (await vault.sessions.sign_in_with_password("bob", "bob's own password")).session.user_id == "bob"


def _foreign_origin_by_headers(raw: list[tuple[bytes, bytes]], public_url: str | None) -> str | bool | None:
    """`SameOrigin`'s decision as it read the headers before (a Starlette `Headers` view and its
    look-ups): False for a request with a key header, else why it is foreign (None: it is not)."""
    headers = Headers(raw=raw)
    if "authorization" in headers or "x-api-key" in headers:
        return False
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    hosts = {h for h in (headers.get("host"), headers.get("x-forwarded-host")) if h}
    if public_url:
        hosts.add(urlsplit(public_url).netloc)
    if origin is not None and urlsplit(origin).netloc not in hosts:
        return f"Origin {origin[:100]!r} is not this server"
    return None


_HEADER_NAMES = st.sampled_from(
    [b"authorization", b"x-api-key", b"sec-fetch-site", b"origin", b"host", b"x-forwarded-host", b"accept", b"cookie"]
)
_HEADER_VALUES = st.sampled_from(
    [b"", b"same-origin", b"none", b"cross-site", b"http://a.test", b"https://b.test:8", b"a.test", b"\xe9"]
)


@given(
    raw=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8),
    public_url=st.sampled_from([None, "", "https://b.test:8", "http://c.test"]),
)
def test_the_same_origin_check_reads_the_headers_as_a_headers_view_did(
    raw: list[tuple[bytes, bytes]], public_url: str | None
) -> None:
    # One pass over the raw headers (`_browser_headers`), the first value of each, as before.
    found = _browser_headers(raw)
    expected = _foreign_origin_by_headers(raw, public_url)
    if found is None:
        assert expected is False
    else:
        assert _foreign(found[1], found[2], found[3], found[4], public_url) == expected
