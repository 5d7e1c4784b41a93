"""Bad input at the boundary: every route × every kind of bad input is a 4xx that says what to fix,
and nothing is written, on SQLite and on PostgreSQL.

The routes are walked from the app itself, so a route added later is tried too. Each test seeds
a chat and a generation first (so ids in paths can name real rows), counts every table's rows,
sends one kind of bad input to every route, and compares the counts again.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from starlette.routing import BaseRoute

from genvault.errors import InvalidRequest
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.schema import metadata
from genvault.vault import Vault

CHAT = "seed-chat"
MESSAGE = "seed-user-message"
USER_MESSAGE = {"id": "u-new", "role": "user", "parts": [{"type": "text", "text": "hello"}]}


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's included routers
            yield from api_routes(route.original_router.routes)


class Seeded:
    def __init__(self, http: httpx.AsyncClient, vault: Vault, app: Any) -> None:
        self.http = http
        self.vault = vault
        self.app = app
        self.ids: dict[str, str] = {}

    def routes(self) -> list[tuple[str, APIRoute]]:
        pairs = [(method, route) for route in api_routes(self.app.routes) for method in sorted(route.methods or ())]
        return [(m, r) for m, r in pairs if m != "HEAD"]

    def url(self, route: APIRoute, **override: str) -> str:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            return override.get(name, self.ids.get(name, "x"))

        return re.sub(r"\{([a-z_]+)(?::[a-z]+)?\}", fill, route.path)

    async def counts(self) -> dict[str, int]:
        async with self.vault.store.read() as conn:
            return {
                table.name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in metadata.sorted_tables
            }


@pytest.fixture
async def seeded(vault_factory: Any) -> AsyncIterator[Seeded]:
    vault: Vault = await vault_factory(providers={"offline": tm.TestProvider(tokens_per_second=0)})
    app = create_app(vault=vault)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        seed = Seeded(http, vault, app)
        turn = await vault.chat(CHAT, message={**USER_MESSAGE, "id": MESSAGE})
        await vault.wait(turn.generation.id)
        text = await vault.generate("seed")
        await vault.wait(text.id)
        upload = await vault.store_file(b"seed", media_type="text/plain", user_id="local")
        seed.ids = {
            "chat_id": CHAT,
            "message_id": MESSAGE,
            "generation_id": text.id,
            "user_id": "local",
            "file_id": upload.id,
        }
        yield seed


def _problems(responses: list[tuple[str, httpx.Response]], before: dict[str, int], after: dict[str, int]) -> list[str]:
    problems = [
        f"{label}: {response.status_code} {response.text[:160]!r}"
        for label, response in responses
        if not 400 <= response.status_code < 500 or not response.text.strip()
    ]
    if before != after:
        problems.append(f"rows written: {sorted((k, before[k], after[k]) for k in before if before[k] != after[k])}")
    return problems


BadRequest = Callable[[Seeded, str, APIRoute], list[tuple[str, dict[str, Any]]]]


def _nul_in_path_ids(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    names = re.findall(r"\{([a-z_]+)", route.path)
    return [(seed.url(route, **{name: "a%00b"}), {}) for name in names]


def _overlong_path_ids(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    names = re.findall(r"\{([a-z_]+)", route.path)
    return [(seed.url(route, **{name: "x" * (65 if name == "user_id" else 201)}), {}) for name in names]


def _query_names(route: APIRoute) -> list[str]:
    return [param.alias for param in route.dependant.query_params] or ["q"]


def _nul_in_query(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{seed.url(route)}?{name}=a%00b", {}) for name in _query_names(route)]


def _bad_utf8_in_query(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{seed.url(route)}?{name}=%ff%fe", {}) for name in _query_names(route)]


def _naive_times(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    times = [p.alias for p in route.dependant.query_params if "datetime" in str(p.field_info.annotation)]
    return [(f"{seed.url(route)}?{name}=2024-01-01T00:00:00", {}) for name in times]


_JSON = {"content-type": "application/json"}
_DEEP = b'{"id": "c", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
_DEEP_METADATA = json.dumps({"id": "new-chat", "messages": [{**USER_MESSAGE, "metadata": "@@"}]}).encode()
_DEEP_METADATA = _DEEP_METADATA.replace(b'"@@"', b'{"a": ' * 5000 + b"1" + b"}" * 5000)
_BAD_UTF8 = b'{"id": "new-chat\xff\xfe", "prompt": "\xc3\x28", "messages": []}'


def _bad_bodies(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    if method not in ("POST", "PUT", "PATCH"):
        return []
    url = seed.url(route)
    return [
        (url, {"content": _DEEP, "headers": _JSON}),
        (url, {"content": _DEEP_METADATA, "headers": _JSON}),
        (url, {"content": _BAD_UTF8, "headers": _JSON}),
        (
            url,
            {
                "content": b"prompt=%ff%fe&title=%c3%28",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
        ),
    ]


def _bad_idempotency_keys(seed: Seeded, method: str, route: APIRoute) -> list[tuple[str, dict[str, Any]]]:
    if "Idempotency-Key" not in [h.alias for h in route.dependant.header_params]:
        return []
    body = {"id": "new-chat", "messages": [USER_MESSAGE], "prompt": "p"}
    if route.path != "/api/chat":
        body = {"prompt": "p"}
    return [
        (seed.url(route), {"json": body, "headers": {"Idempotency-Key": key}})
        for key in ("k" * 10_000, "k" * 201, "two words", "caf\u00e9".encode())
    ]


BAD_INPUTS: dict[str, BadRequest] = {
    "nul-in-path-id": _nul_in_path_ids,
    "overlong-path-id": _overlong_path_ids,
    "nul-in-query": _nul_in_query,
    "invalid-utf8-in-query": _bad_utf8_in_query,
    "naive-timestamp": _naive_times,
    "deep-or-invalid-json-body": _bad_bodies,
    "bad-idempotency-key": _bad_idempotency_keys,
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
async def test_every_route_answers_bad_input_with_a_4xx_and_writes_nothing(seeded: Seeded, kind: str) -> None:
    before = await seeded.counts()
    responses = []
    for method, route in seeded.routes():
        for url, extra in BAD_INPUTS[kind](seeded, method, route):
            responses.append((f"{method} {url[:120]}", await seeded.http.request(method, url, **extra)))
    assert _problems(responses, before, await seeded.counts()) == []
    assert len(responses) >= {"naive-timestamp": 4, "bad-idempotency-key": 12}.get(kind, 15)  # the walk found routes


def test_the_walk_finds_every_kind_of_route() -> None:
    from genvault.settings import Settings

    app = create_app(Settings(database_url="sqlite:///:memory:"))
    paths = {route.path for route in api_routes(app.routes)}
    assert {
        "/api/chat",
        "/api/chats/{chat_id}",
        "/api/chat/{chat_id}/stream",
        "/api/generations/{generation_id}",
        "/api/generations",
        "/api/chats/{chat_id}/messages",
        "/api/users/{user_id}/export",
        "/chat/{chat_id}",
        "/generate/{generation_id}",
        "/usage",
        "/api/usage",
        "/files/{file_id}",
    } <= paths


class TestTheNamedCases:
    """The cases of issue 14 one by one, with the message each answer gives."""

    async def test_a_chat_body_nested_100000_deep_is_a_400(self, seeded: Seeded) -> None:
        before = await seeded.counts()
        response = await seeded.http.post("/api/chat", content=_DEEP, headers=_JSON)
        assert response.status_code == 400
        assert "more than 64 deep" in response.text
        assert await seeded.counts() == before

    async def test_5000_deep_metadata_is_a_400_over_http_and_in_the_library(self, seeded: Seeded) -> None:
        before = await seeded.counts()
        response = await seeded.http.post("/api/chat", content=_DEEP_METADATA, headers=_JSON)
        assert response.status_code == 400
        assert "more than 64 deep" in response.text
        deep: Any = 1
        for _ in range(5000):
            deep = {"a": deep}
        with pytest.raises(InvalidRequest, match="more than 64 deep"):
            await seeded.vault.chat("new-chat", message={**USER_MESSAGE, "metadata": deep})
        with pytest.raises(InvalidRequest, match="more than 64 deep"):
            await seeded.vault.append_messages(CHAT, [{**USER_MESSAGE, "metadata": deep}])
        assert await seeded.counts() == before

    async def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte(self, seeded: Seeded) -> None:
        for path in ("/api/chat", "/api/generate", "/api/images"):
            response = await seeded.http.post(path, content=_BAD_UTF8, headers=_JSON)
            assert response.status_code == 400
            assert "not valid UTF-8 (byte 0xff at offset 16)" in response.text
        # Without a JSON content type the route's own parser says the same.
        response = await seeded.http.post("/api/chat", content=_BAD_UTF8)
        assert response.status_code == 400
        assert "not valid UTF-8" in response.text

    @pytest.mark.parametrize("path", ["/api/generations", "/api/usage"])
    @pytest.mark.parametrize("name", ["since", "until"])
    async def test_a_naive_timestamp_is_a_400_that_shows_how_to_add_a_zone(
        self, seeded: Seeded, path: str, name: str
    ) -> None:
        response = await seeded.http.get(path, params={name: "2024-01-01T00:00:00"})
        assert response.status_code == 400
        assert "has no timezone; add one, e.g. 2024-01-01T00:00:00Z" in response.json()["error"]["message"]
        assert (await seeded.http.get(path, params={name: "2024-01-01T00:00:00Z"})).status_code == 200

    async def test_naive_timestamps_are_refused_by_the_library_too(self, seeded: Seeded) -> None:
        with pytest.raises(InvalidRequest, match="no timezone"):
            await seeded.vault.list_generations(since=datetime(2024, 1, 1))
        with pytest.raises(InvalidRequest, match="no timezone"):
            await seeded.vault.usage(until=datetime(2024, 1, 1))

    async def test_usage_days_in_superscript_is_a_400(self, seeded: Seeded) -> None:
        response = await seeded.http.get("/usage", params={"days": "\u00b2"})
        assert response.status_code == 400
        assert "days must be one of 7, 30, 90, 365" in response.text

    async def test_a_forged_cursor_holding_a_nul_is_a_400(self, seeded: Seeded) -> None:
        forged = base64.urlsafe_b64encode(json.dumps(["2024-01-01T00:00:00+00:00", "a\x00"]).encode()).decode()
        naive = base64.urlsafe_b64encode(json.dumps(["2024-01-01T00:00:00", "gen_x"]).encode()).decode()
        for cursor in (forged, naive):
            for path in ("/api/generations", "/api/chats"):
                response = await seeded.http.get(path, params={"cursor": cursor})
                assert response.status_code == 400, response.text
                assert "pass back a next_cursor" in response.json()["error"]["message"]

    async def test_a_201_character_message_id_is_refused_on_every_database(self, seeded: Seeded) -> None:
        before = await seeded.counts()
        body = {"id": "new-chat", "messages": [{**USER_MESSAGE, "id": "m" * 201}]}
        response = await seeded.http.post("/api/chat", json=body)
        assert response.status_code == 400
        assert "message id must be 1 to 200 visible ASCII characters" in response.text
        assert "it has 201 characters" in response.text
        with pytest.raises(InvalidRequest, match="it has 201 characters"):
            await seeded.vault.append_messages(CHAT, [{**USER_MESSAGE, "id": "m" * 201}])
        with pytest.raises(InvalidRequest, match="it has 201 characters"):
            await seeded.vault.import_chat("imported", [{**USER_MESSAGE, "id": "m" * 201}])
        assert await seeded.counts() == before
        # 200 is allowed, on both.
        ok = await seeded.http.post(
            "/api/chat", json={"id": "new-chat", "messages": [{**USER_MESSAGE, "id": "m" * 200}]}
        )
        assert ok.status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"id": "c" * 201, "messages": [USER_MESSAGE]},
            {"id": "new-chat", "messageId": "x" * 300, "trigger": "regenerate-message"},
            {"id": "two words", "messages": [USER_MESSAGE]},
            {"id": "new-chat", "messages": [{**USER_MESSAGE, "id": "a\u0000"}]},
            {
                "id": "new-chat",
                "messages": [{**USER_MESSAGE, "parts": [{"type": "data-x", "id": "d" * 201, "data": 1}]}],
            },
        ],
    )
    async def test_ids_outside_the_rule_are_refused_before_anything_is_written(
        self, seeded: Seeded, body: dict[str, Any]
    ) -> None:
        before = await seeded.counts()
        response = await seeded.http.post("/api/chat", json=body)
        assert response.status_code == 400, response.text
        assert "characters" in response.text
        assert await seeded.counts() == before

    async def test_a_10000_character_idempotency_key_is_refused_on_every_database(self, seeded: Seeded) -> None:
        before = await seeded.counts()
        for path, body in (
            ("/api/chat", {"id": "new-chat", "messages": [USER_MESSAGE]}),
            ("/api/generate", {"prompt": "p"}),
            ("/api/images", {"prompt": "p"}),
        ):
            response = await seeded.http.post(path, json=body, headers={"Idempotency-Key": "k" * 10_000})
            assert response.status_code == 400, response.text
            assert "idempotency key must be 1 to 200 visible ASCII characters" in response.text
        with pytest.raises(InvalidRequest, match="idempotency key"):
            await seeded.vault.generate("p", idempotency_key="k" * 201)
        assert await seeded.counts() == before

    async def test_library_reads_refuse_a_nul_in_an_id(self, seeded: Seeded) -> None:
        with pytest.raises(InvalidRequest):
            await seeded.vault.get_generation("gen_\x00")
        with pytest.raises(InvalidRequest):
            await seeded.vault.get_chat("c\x00")
        with pytest.raises(InvalidRequest):
            await seeded.vault.chat_messages(CHAT, before="m\x00")
        with pytest.raises(InvalidRequest):
            await seeded.vault.list_generations(model="m\x00")

    async def test_a_nul_under_static_is_a_400(self, seeded: Seeded) -> None:
        assert (await seeded.http.get("/static/a%00b")).status_code == 400

    async def test_library_user_operations_refuse_a_bad_user_id(self, seeded: Seeded) -> None:
        for bad in ("a\x00", "u" * 65, ""):
            with pytest.raises(InvalidRequest, match="user id"):
                await seeded.vault.user_exists(bad)
            with pytest.raises(InvalidRequest, match="user id"):
                await seeded.vault.erase_user(bad)
