"""The server-rendered pages over plain HTTP (in-process ASGI): status codes, what each page shows,
escaping of model output, and the 404 page for records that are missing or someone else's.
The same pages in a real browser are in `test_browser.py`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.server.routes.pages import bar_chart, fmt_usd, nice_ceiling
from genvault.settings import PriceOverride

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


def user_message(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def page_data(html: str) -> Any:
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert match, "the page embeds its data"
    return json.loads(match.group(1))


@pytest.fixture
def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
async def client(vault_factory: Any, provider: tm.TestProvider) -> AsyncIterator[httpx.AsyncClient]:
    prices = {"offline/priced-model": PriceOverride(input_mtok=Decimal("1.5"), output_mtok=Decimal("6"))}
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"price_overrides": prices})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        http.vault = vault  # type: ignore[attr-defined]
        yield http


async def generate(client: httpx.AsyncClient, prompt: str, **kwargs: Any) -> Any:
    vault = client.vault  # type: ignore[attr-defined]
    record = await vault.generate(prompt, **kwargs)
    return await vault.wait(record.id, user_id=kwargs.get("user_id", "local"))


class TestHome:
    async def test_it_lists_recent_generations_and_offers_the_generate_form_and_a_new_chat(
        self, client: httpx.AsyncClient
    ) -> None:
        record = await generate(client, "a prompt about herons")
        response = await client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert f'href="/generate/{record.id}"' in html
        assert "a prompt about herons" in html
        assert '<form method="post" action="/api/generate"' in html
        assert 'value="offline/test-model"' in html  # the model field defaults to the setting
        assert re.search(r'id="new-chat" href="/chat/chat_[0-9a-z]{26}"', html)

    async def test_it_lists_recent_chats_by_title(self, client: httpx.AsyncClient) -> None:
        vault = client.vault  # type: ignore[attr-defined]
        turn = await vault.chat("chat-herons", message=user_message("u1", "Tell me about herons"))
        await vault.wait(turn.generation.id)
        html = (await client.get("/")).text
        assert '<a href="/chat/chat-herons">Tell me about herons</a>' in html

    async def test_prompts_with_markup_are_shown_as_text(self, client: httpx.AsyncClient) -> None:
        await generate(client, EVIL)
        html = (await client.get("/")).text
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


class TestGenerationPage:
    async def test_it_shows_the_output_and_every_metadata_field(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Herons stand still."), tm.usage(input=1200, output=34, cached_input=200))
        record = await generate(client, "herons?", model="offline/priced-model")
        response = await client.get(f"/generate/{record.id}")
        assert response.status_code == 200
        html = response.text
        assert '<div class="text output" id="output">Herons stand still.</div>' in html
        for field, shown in {
            "status": "complete",
            "provider": "offline",
            "input_tokens": "1,200",
            "output_tokens": "34",
            "cached_input_tokens": "200",
            "reasoning_tokens": "—",
            "finish_reason": "stop",
            "error": "—",
        }.items():
            assert f'data-field="{field}">{shown}<' in html, field
        # 1200 × $1.5/M + 34 × $6/M, exactly; the test model prices cached input like input here.
        assert f'data-field="cost_usd">{fmt_usd(record.cost_usd)}<' in html
        assert record.cost_usd is not None
        assert f'data-field="created_at">{record.created_at:%Y-%m-%d %H:%M:%S} UTC<' in html
        assert page_data(html) == {"id": record.id, "status": "complete", "final": True}

    async def test_a_model_without_a_price_costs_unknown_not_zero(self, client: httpx.AsyncClient) -> None:
        record = await generate(client, "free?")
        html = (await client.get(f"/generate/{record.id}")).text
        assert 'data-field="cost_usd">unknown<' in html

    async def test_model_output_with_markup_is_escaped(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text(EVIL))
        record = await generate(client, "say something nasty")
        assert record.result_text == EVIL
        html = (await client.get(f"/generate/{record.id}")).text
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34;" in html

    async def test_a_failed_generation_shows_its_error(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Half"), tm.error("the model is overloaded", status=529))
        record = await generate(client, "x")
        html = (await client.get(f"/generate/{record.id}")).text
        assert record.status == "error"
        assert 'data-field="status">error<' in html
        assert "the model is overloaded" in html

    async def test_a_running_generation_tells_the_script_to_follow_it(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("slow"), tm.delay(30))
        vault = client.vault  # type: ignore[attr-defined]
        record = await vault.generate("x")
        html = (await client.get(f"/generate/{record.id}")).text
        assert page_data(html)["final"] is False
        assert '<script type="module" src="/static/js/generation.js">' in html
        await vault.cancel(record.id)

    async def test_unknown_and_foreign_records_are_the_same_404_page(self, client: httpx.AsyncClient) -> None:
        vault = client.vault  # type: ignore[attr-defined]
        await vault.ensure_user("mallory")
        theirs = await generate(client, "mallory's secret", user_id="mallory")
        for path in ("/generate/gen_nope", f"/generate/{theirs.id}"):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("text/html")
            assert "There is no generation here" in response.text
            assert "secret" not in response.text


class TestChatPage:
    async def test_a_new_id_is_an_empty_chat_ready_to_send(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/chat/brand-new-chat")
        assert response.status_code == 200
        html = response.text
        assert '<form id="composer"' in html
        assert '<script type="module" src="/static/js/chat.js">' in html
        data = page_data(html)
        assert data["chatId"] == "brand-new-chat"
        assert data["exists"] is False
        assert data["messages"] == []

    async def test_the_history_is_embedded_as_json_that_cannot_break_out_of_its_script_tag(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("</script><script>alert(1)</script>" + EVIL))
        vault = client.vault  # type: ignore[attr-defined]
        turn = await vault.chat("c1", message=user_message("u1", EVIL))
        await vault.wait(turn.generation.id)
        html = (await client.get("/chat/c1")).text
        assert "<script>alert" not in html
        assert "</script><script>" not in html
        assert "<img src=x" not in html
        data = page_data(html)
        assert data["exists"] is True
        assert data["active"] is False
        assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
        assert data["messages"][0]["parts"][0]["text"] == EVIL
        assert data["messages"][1]["parts"][-1]["text"].startswith("</script><script>alert(1)</script>")
        assert (
            "<title>"
            + "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34;"
            in html
        )

    async def test_a_running_reply_is_flagged_for_the_script_to_resume(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("slow"), tm.delay(30))
        vault = client.vault  # type: ignore[attr-defined]
        turn = await vault.chat("c2", message=user_message("u1", "hello"))
        data = page_data((await client.get("/chat/c2")).text)
        assert data["active"] is True
        await vault.cancel(turn.generation.id)

    async def test_a_strangers_private_chat_is_a_404_page(self, client: httpx.AsyncClient) -> None:
        vault = client.vault  # type: ignore[attr-defined]
        await vault.ensure_user("mallory")
        turn = await vault.chat("their-chat", message=user_message("u1", "private words"), user_id="mallory")
        await vault.wait(turn.generation.id, user_id="mallory")
        response = await client.get("/chat/their-chat")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "private words" not in response.text

    async def test_a_chat_shared_by_link_is_read_only_for_others(self, client: httpx.AsyncClient) -> None:
        vault = client.vault  # type: ignore[attr-defined]
        await vault.ensure_user("mallory")
        turn = await vault.chat("shared", message=user_message("u1", "look at this"), user_id="mallory")
        await vault.wait(turn.generation.id, user_id="mallory")
        await vault.update_chat("shared", user_id="mallory", visibility="link")
        response = await client.get("/chat/shared")
        assert response.status_code == 200
        assert 'id="composer"' not in response.text
        data = page_data(response.text)
        assert data["readonly"] is True
        assert data["messages"][0]["parts"][0]["text"] == "look at this"


class TestUsagePage:
    async def test_it_draws_tokens_and_cost_per_day_as_inline_svg(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("one"), tm.usage(input=1000, output=500))
        provider.enqueue(tm.text("two"), tm.usage(input=10, output=5))
        await generate(client, "a", model="offline/priced-model")
        await generate(client, "b")
        response = await client.get("/usage")
        assert response.status_code == 200
        html = response.text
        assert html.count('<svg viewBox="0 0 720 220" role="img"') == 2
        assert html.count('class="bar series-input"') == 1  # one day with use
        assert '<rect class="bar series-cost"' in html
        assert '<td class="mono">offline/priced-model</td>' in html
        assert '<td class="mono">offline/test-model</td>' in html
        assert "1,010" in html  # tokens in, over both models
        assert "plus 1 unpriced" in html
        assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")

    async def test_unpriced_use_without_cache_hits_is_unknown_never_zero_dollars(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("one"), tm.usage(input=10, output=5))
        await generate(client, "a")  # the offline test model has no price
        html = (await client.get("/usage")).text
        assert '<span class="stat-value">unknown</span><span class="stat-label">cost, plus 1 unpriced' in html
        # Its model's row, its user's row (the local user is an admin) and its day's row.
        assert html.count('<td class="num">unknown</td>') == 3
        assert "$0.00" not in html
        assert "saving" not in html  # no cache hits, so nothing saved to report

    async def test_an_empty_period_says_so(self, client: httpx.AsyncClient) -> None:
        html = (await client.get("/usage?days=7")).text
        assert "nothing in this period" in html
        assert 'href="/usage?days=7" aria-current="page"' in html

    @pytest.mark.parametrize("days", ["banana", "5", "\u00b2", "07", ""])
    async def test_an_unknown_period_is_a_400_naming_the_periods(self, client: httpx.AsyncClient, days: str) -> None:
        response = await client.get("/usage", params={"days": days})
        assert response.status_code == 400
        assert "days must be one of 7, 30, 90, 365" in response.text


class TestEveryPage:
    @pytest.mark.parametrize("path", ["/", "/chat/new-one", "/usage", "/generate/gen_nope"])
    async def test_pages_forbid_scripts_and_styles_from_anywhere_else(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "https://" not in response.text
        assert "//cdn" not in response.text

    @pytest.mark.parametrize(
        "path", ["/static/genvault.css", "/static/js/uimessage.js", "/static/js/chat.js", "/static/js/generation.js"]
    )
    async def test_the_static_assets_are_served(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        # Model output goes into the DOM only as text.
        assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", response.text)

    async def test_pages_are_not_in_the_openapi_schema(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert not {"/", "/usage", "/chat/{chat_id}", "/generate/{generation_id}"} & set(paths)


async def test_without_credentials_a_page_sends_you_to_sign_in_instead_of_answering_json(vault_factory: Any) -> None:
    vault = await vault_factory(settings_overrides={"auth": "api_key"})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        for path in ("/", "/usage", "/generations", "/generate/gen_x", "/chat/some-chat"):
            response = await http.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=%2F"), path
        login = await http.get("/login")
        assert login.status_code == 200
        assert 'name="api_key"' in login.text


async def test_behind_a_proxy_a_page_without_its_header_says_what_is_missing(vault_factory: Any) -> None:
    vault = await vault_factory(settings_overrides={"auth": "header"})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        for path in ("/", "/usage", "/generations", "/generate/gen_x"):
            response = await http.get(path)
            assert response.status_code == 401, path
            assert response.headers["content-type"].startswith("text/html")
            assert "Sign-in required" in response.text
            assert "X-Forwarded-User" in response.text


class TestCharts:
    @pytest.mark.parametrize(
        ("value", "ceiling"), [(0, 1), (0.3, 0.5), (1, 1), (7, 10), (1234, 2000), (2400, 2500), (0.0042, 0.005)]
    )
    def test_axis_maxima_are_round_numbers(self, value: float, ceiling: float) -> None:
        assert nice_ceiling(value) == pytest.approx(ceiling)

    def test_stacked_bars_are_proportional_and_zero_draws_nothing(self) -> None:
        chart = bar_chart(
            "t",
            ["2025-01-01", "2025-01-02", "2025-01-03"],
            [("a", "A", [50.0, 0.0, 100.0]), ("b", "B", [50.0, 0.0, 0.0])],
            value_label=str,
        )
        assert [(b.series, round(b.height, 1)) for b in chart.bars] == [("a", 93.0), ("b", 93.0), ("a", 186.0)]
        # Stacked: the second series sits on top of the first.
        assert chart.bars[1].y + chart.bars[1].height == pytest.approx(chart.bars[0].y)
        assert [t.label for t in chart.ticks] == ["0.0", "25.0", "50.0", "75.0", "100.0"]
        assert [label.text for label in chart.labels] == ["01-01", "01-02", "01-03"]

    def test_an_all_zero_chart_is_empty(self) -> None:
        assert bar_chart("t", ["2025-01-01"], [("a", "A", [0.0])], value_label=str).empty


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "unknown"), (Decimal(0), "$0.00"), (Decimal("1.5"), "$1.50"), (Decimal("0.000012345"), "$0.000012345")],
)
def test_money_is_shown_exactly_with_at_least_cents(value: Decimal | None, shown: str) -> None:
    assert fmt_usd(value) == shown


async def test_the_search_page_lists_hits_with_marked_snippets_and_links(vault_factory: Any) -> None:
    vault = await vault_factory()
    await vault.create_chat("c1", title="Trip planning")
    await vault.append_messages(
        "c1", [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "A <i>fjord</i> trip"}]}]
    )
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        home = await http.get("/")
        assert 'action="/search"' in home.text
        response = await http.get("/search", params={"q": "fjord"})
        assert response.status_code == 200
        assert 'href="/chat/c1?message=m1"' in response.text
        assert "A &lt;i&gt;<mark>fjord</mark>&lt;/i&gt; trip" in response.text
        empty = await http.get("/search", params={"q": "glacier"})
        assert "Nothing found" in empty.text
        bad = await http.get("/search", params={"q": "-fjord"})
        assert bad.status_code == 400
        assert "only leaves words out" in bad.text


async def test_the_api_docs_load_their_script_and_style_from_this_server_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", response.text)
    assert len(urls) >= 4  # the script, the style, the favicon, the OpenAPI document
    for url in urls:
        assert url.startswith("/"), f"{url} is not from this server"
        assert not url.startswith("//"), f"{url} is not from this server"
        asset = await client.get(url)
        assert asset.status_code == 200, url
    assert "/static/swagger-ui/swagger-ui-bundle.js" in urls
    assert "/static/swagger-ui/swagger-ui.css" in urls
    assert "/openapi.json" in urls
    assert (await client.get("/redoc")).status_code == 404  # ReDoc would come from a CDN
