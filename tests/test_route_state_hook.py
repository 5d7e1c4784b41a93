"""conftest's `_route_state_once`: apps that share a router's built route state still answer as
apps of their own (their dependency overrides, their settings), as without the hook."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends, FastAPI

router = APIRouter()


def greeting() -> str:
    return "hello"


@router.get("/greet")
async def greet(word: str = Depends(greeting), times: int = 1) -> dict[str, str]:
    return {"said": " ".join([word] * times)}


def app_with(prefix: str = "") -> FastAPI:
    app = FastAPI()
    app.include_router(router, prefix=prefix)
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.get(path)


async def test_each_app_keeps_its_own_dependency_overrides() -> None:
    plain, overridden = app_with(), app_with()
    overridden.dependency_overrides[greeting] = lambda: "bye"
    assert (await get(plain, "/greet?times=2")).json() == {"said": "hello hello"}
    assert (await get(overridden, "/greet?times=2")).json() == {"said": "bye bye"}
    assert (await get(app_with(), "/greet")).json() == {"said": "hello"}


async def test_an_inclusion_with_other_settings_gets_its_own_route_state() -> None:
    assert (await get(app_with(), "/greet")).status_code == 200
    prefixed = app_with(prefix="/v2")
    assert (await get(prefixed, "/v2/greet")).json() == {"said": "hello"}
    assert (await get(prefixed, "/greet")).status_code == 404
    assert (await get(prefixed, "/v2/greet?times=x")).status_code == 422
