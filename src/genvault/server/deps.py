"""FastAPI dependencies: the Vault, and who is asking (auth is pluggable by settings)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from genvault.errors import Unauthorized
from genvault.limits import KeyGrant, acting_key
from genvault.server.sessions import session_user
from genvault.store.keys import find_key
from genvault.store.users import LOCAL_USER_ID
from genvault.vault import Vault

__all__ = ["OptionalUserDep", "UserDep", "VaultDep", "current_user", "get_vault_now", "key_user", "optional_user"]


async def get_vault(request: Request) -> Vault:
    # `async`: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    return get_vault_now(request)


def get_vault_now(request: Request) -> Vault:
    """The app's Vault (`VaultDep`), for a hot route that resolves its caller itself."""
    vault: Vault = request.app.state.vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


async def optional_user(request: Request, vault: VaultDep) -> str | None:
    """The acting user's id, or None when the request carries no credentials. With an API key
    (or a page session made with one), the key (its expiry, its models) is what admission checks
    (`genvault.limits.acting_key`)."""
    acting_key.set(None)
    mode = vault.settings.auth
    if mode == "none":
        return LOCAL_USER_ID
    if mode == "header":
        name = request.headers.get(vault.settings.auth_header, "").strip()
        if not name:
            return None
        if len(name) > 64:
            raise Unauthorized(f"{vault.settings.auth_header} is longer than 64 characters")
        # The proxy vouches for the user; the first request creates the account.
        await vault.ensure_user(name)
        return name
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        # The pages' sign-in: a session cookie, under the CSRF rules of `server.sessions`.
        return await session_user(request, vault)
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use the header Authorization: Bearer <api key>")
    return await key_user(vault, token.strip())


async def key_user(vault: Vault, token: str) -> str:
    """The user of API key `token` (`Unauthorized` for an unknown, revoked or expired key); the
    key becomes the request's `acting_key`, which admission checks."""
    async with vault.store.read() as conn:
        key = await find_key(conn, token)
    if key is None:
        raise Unauthorized("this API key is not valid (unknown or revoked)")
    if key.expires_at is not None and key.expires_at <= vault.limits.clock():
        raise Unauthorized(f"this API key expired at {key.expires_at.isoformat()}")
    acting_key.set(KeyGrant(key.id, key.user_id, key.expires_at, None if key.models is None else tuple(key.models)))
    return key.user_id


async def current_user(user: Annotated[str | None, Depends(optional_user)], vault: VaultDep) -> str:
    if user is None:
        how = (
            "an Authorization: Bearer <api key> header"
            if vault.settings.auth == "api_key"
            else (f"the {vault.settings.auth_header} header from the proxy")
        )
        raise Unauthorized(f"authentication required: send {how}")
    return user


UserDep = Annotated[str, Depends(current_user)]
OptionalUserDep = Annotated[str | None, Depends(optional_user)]
