"""The pages signed in through `/login` (GENVAULT_AUTH=api_key) in Debian's Chromium, driven by
Playwright against a real uvicorn server: sign in, chat, sign out; a forged cross-site form;
a revoked session; the log browser; usage per user and its CSV; and axe-core (from npm,
tests/client/node_modules) on every page at phone and desktop sizes: no serious or critical
violations, no sideways scrolling. Screenshots go where tests/test_browser.py keeps them
(GENVAULT_TEST_SCREENSHOTS=<dir>).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.settings import Settings
from genvault.store.keys import create_key
from genvault.vault import Vault
from live_server import serve
from test_browser import (
    DESKTOP,
    IN_CI,
    ON_SESSION_LOOP,
    PHONE,
    PageProblems,
    browser,
    chromium,
    screenshot,
    settle,
)

__all__ = ["browser", "chromium"]  # the fixtures, shared with tests/test_browser.py

AXE = Path(__file__).parent / "client" / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT = 60_000  # generous: the machine running the tests may be loaded

# The axe sweeps run on their module's loop instead (`axe_world`), marked on the test.
pytestmark = [pytest.mark.slow, ON_SESSION_LOOP]


@pytest.fixture
def database(database_maker: Any) -> tuple[str, str | None]:
    # Only SQLite: what is tested here is the browser side; the routes run on both backends elsewhere.
    made: tuple[str, str | None] = database_maker("sqlite")
    return made


@pytest.fixture
def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest_asyncio.fixture(loop_scope="session")
async def world(session_loop_vault_factory: Any, provider: tm.TestProvider) -> dict[str, Any]:
    vault: Vault = await session_loop_vault_factory(
        providers={"offline": provider}, settings_overrides={"auth": "api_key"}
    )
    keys: dict[str, tuple[str, str]] = {}
    for name, admin in (("alice", False), ("root", True)):
        await vault.create_user(name, is_admin=admin)
        async with vault.store.write() as conn:
            keys[name] = await create_key(conn, name, "browser")
    return {"vault": vault, "keys": keys}


@pytest_asyncio.fixture(loop_scope="session")
async def base_url(world: dict[str, Any]) -> AsyncIterator[str]:
    async with serve(create_app(vault=world["vault"])) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    del base_url  # the server outlives the pages (see test_browser.page)
    made = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    made.set_default_timeout(TIMEOUT)
    try:
        yield made
    finally:
        await made.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    opened = await context.new_page()
    problems = PageProblems(opened)
    yield opened
    # The 401s and 403s these tests provoke show as failed loads; anything else is a fault.
    expected = ("status of 401 (Unauthorized)", "status of 403 (Forbidden)")
    assert [e for e in problems.errors if not e.endswith(expected)] == []
    assert problems.dialogs == []


async def sign_in(page: Page, base_url: str, key: str, path: str = "/") -> None:
    await page.goto(f"{base_url}{path}")
    await page.wait_for_url(re.compile(r"/login\?next="))
    await page.fill("#api-key", key)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(f"{base_url}{path}")


async def test_sign_in_with_a_key_chat_and_sign_out(
    page: Page, context: BrowserContext, base_url: str, world: dict[str, Any], provider: tm.TestProvider, tmp_path: Path
) -> None:
    vault: Vault = world["vault"]
    await page.goto(f"{base_url}/login")
    await screenshot(page, "auth-login", tmp_path)
    await page.fill("#api-key", "key_wrong.nope")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("not valid")

    await sign_in(page, base_url, world["keys"]["alice"][1], "/chat/signed-in-chat")
    provider.enqueue(tm.text("Hello, signed-in person."))
    await page.fill("#input", "hi from a session")
    await page.press("#input", "Enter")
    await expect(page.locator(".msg-assistant")).to_contain_text("Hello, signed-in person.")
    await settle(vault)
    chat = await vault.get_chat("signed-in-chat", user_id="alice")
    assert chat.user_id == "alice"
    assert [r.user_id for r in (await vault.list_generations(user_id="alice")).items] == ["alice"]
    await screenshot(page, "auth-chat", tmp_path)

    # The JSON API without a key (the cookie alone, as curl or a typed address would send it): 401.
    assert (await context.request.get(f"{base_url}/api/chats")).status == 401
    async with httpx.AsyncClient(base_url=base_url) as http:
        assert (await http.get("/api/generations")).status_code == 401

    await page.click("#sign-out")
    await page.wait_for_url(re.compile(r"/login$"))
    assert await vault.sessions.list(user_id="alice") == []
    await page.goto(f"{base_url}/chat/signed-in-chat")
    await page.wait_for_url(re.compile(r"/login\?next=%2Fchat%2Fsigned-in-chat"))


@pytest.mark.long
async def test_sign_in_and_the_log_filters_work_from_the_keyboard_alone(
    page: Page, base_url: str, world: dict[str, Any], provider: tm.TestProvider
) -> None:
    vault: Vault = world["vault"]
    provider.enqueue(tm.text("typed"), tm.usage(input=1, output=1))
    record = await vault.wait((await vault.generate("keyboard prompt", user_id="alice")).id, user_id="alice")
    await page.goto(f"{base_url}/generations")
    await page.wait_for_url(re.compile(r"/login\?next="))
    # The key field has the focus on arrival; Enter submits.
    assert await page.evaluate("document.activeElement.id") == "api-key"
    await page.keyboard.type(world["keys"]["alice"][1])
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base_url}/generations")
    # Tab reaches the status filter; the arrow keys pick a value; Enter in a text field filters.
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.name") == "status":
            break
    assert await page.evaluate("document.activeElement.name") == "status"
    await page.select_option("select[name=status]", "complete")  # as Alt+Down, Enter would
    await page.keyboard.press("Tab")  # kind
    await page.keyboard.press("Tab")  # model
    await page.keyboard.type("offline/test-model")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"status=complete.*model=offline%2Ftest-model"))
    await expect(page.locator(".log-table tbody tr")).to_have_count(1)
    # The record's link takes the focus and opens with Enter.
    link = page.locator(f'a[href="/generate/{record.id}"]')
    await link.focus()
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base_url}/generate/{record.id}")


async def test_a_forged_cross_site_form_post_is_refused_and_changes_nothing(
    page: Page, base_url: str, world: dict[str, Any], tmp_path: Path
) -> None:
    vault: Vault = world["vault"]
    await sign_in(page, base_url, world["keys"]["alice"][1])
    evil = "http://evil.example/"
    form = f"""<!doctype html><title>win a prize</title>
        <form id="f" method="post" action="{base_url}/api/generate">
          <input name="prompt" value="spend my money"></form>
        <script>document.getElementById('f').submit()</script>"""

    async def evil_site(route: Any) -> None:
        await route.fulfill(status=200, content_type="text/html", body=form)

    await page.route(f"{evil}**", evil_site)
    async with page.expect_response(f"{base_url}/api/generate") as answered:
        await page.goto(evil)
    response = await answered.value
    assert response.status == 403
    assert "cross-site request refused" in await response.text()
    assert (await vault.list_generations(user_id="alice")).items == []

    # A form posted from this server's own origin but with a forged CSRF token: refused too.
    await page.goto(f"{base_url}/")
    async with page.expect_response(f"{base_url}/api/generate") as answered:
        await page.evaluate(
            """() => {
                const form = Object.assign(document.createElement('form'), {method: 'post', action: '/api/generate'});
                for (const [name, value] of [['prompt', 'spend'], ['csrf_token', 'forged']]) {
                    form.append(Object.assign(document.createElement('input'), {name, value}));
                }
                document.body.append(form);
                form.submit();  // no submit event: the page's script adds nothing
            }"""
        )
    response = await answered.value
    assert response.status == 403
    assert "CSRF" in await response.text()
    assert (await vault.list_generations(user_id="alice")).items == []


@pytest.mark.long
async def test_a_revoked_session_sends_the_page_to_sign_in(
    page: Page, base_url: str, world: dict[str, Any], provider: tm.TestProvider
) -> None:
    vault: Vault = world["vault"]
    await sign_in(page, base_url, world["keys"]["alice"][1], "/usage")
    assert await vault.sessions.revoke_user("alice") == 1
    await page.reload()
    await page.wait_for_url(re.compile(r"/login\?next=%2Fusage"))

    # Mid-page: the chat's next request gets 401, and the page goes to sign in.
    await page.fill("#api-key", world["keys"]["alice"][1])
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(f"{base_url}/usage")
    await page.goto(f"{base_url}/chat/revoked-chat")
    await page.wait_for_load_state("networkidle")  # the page's own requests (sidebar, resume) done
    await page.fill("#input", "are you there?")
    [session] = await vault.sessions.list(user_id="alice")
    await vault.sessions.revoke(session.id, user_id="alice")
    provider.enqueue(tm.text("never shown"))
    # Whichever request of the page meets the ended session first (this send, or one the sidebar
    # makes meanwhile) sends it to sign in; the keyboard, not a locator, so either way works.
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/login\?next=%2Fchat%2Frevoked-chat"))
    assert (await vault.list_generations(user_id="alice")).items == []


@pytest.mark.long
async def test_the_log_browser_filters_and_pages_at_phone_width(
    browser: Browser, base_url: str, world: dict[str, Any], provider: tm.TestProvider, tmp_path: Path
) -> None:
    vault: Vault = world["vault"]
    made = []
    for n in range(3):
        provider.enqueue(tm.text(f"answer {n}"), tm.usage(input=3, output=n + 1))
        made.append(await vault.wait((await vault.generate(f"prompt number {n}", user_id="alice")).id, user_id="alice"))
    await vault.update_labels(made[1].id, tags=["keep"], user_id="alice")
    context = await browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT)
    try:
        page = await context.new_page()
        await sign_in(page, base_url, world["keys"]["alice"][1], "/generations")
        rows = page.locator(".log-table tbody tr")
        await expect(rows).to_have_count(3)
        assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        await screenshot(page, "phone-log", tmp_path)
        await page.fill("input[name=tag]", "keep")
        await page.click(".log-filters button[type=submit]")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-id", made[1].id)
        await page.select_option("select[name=status]", "error")
        await page.click(".log-filters button[type=submit]")
        await expect(page.get_by_text("No generations match")).to_be_visible()
        await page.click("text=Clear")
        await expect(rows).to_have_count(3)
        await rows.first.locator("a").first.click()
        await page.wait_for_url(f"{base_url}/generate/{made[2].id}")
    finally:
        await context.close()


async def test_an_admin_sees_usage_per_user_and_downloads_it_as_csv(
    page: Page, base_url: str, world: dict[str, Any], provider: tm.TestProvider, tmp_path: Path
) -> None:
    vault: Vault = world["vault"]
    for who in ("alice", "alice", "root"):
        provider.enqueue(tm.text("ok"), tm.usage(input=4, output=2))
        await vault.wait((await vault.generate("count me", user_id=who)).id, user_id=who)
    await sign_in(page, base_url, world["keys"]["root"][1], "/usage")
    table = page.locator("#by-user")
    await expect(table.locator("tr[data-key=alice] td").nth(1)).to_have_text("2")
    await expect(table.locator("tr[data-key=root] td").nth(1)).to_have_text("1")
    await expect(page.locator("main")).not_to_contain_text("$0.00")
    await screenshot(page, "auth-usage-admin", tmp_path)
    async with page.expect_download() as downloading:
        await table.get_by_text("Download CSV").click()
    download = await downloading.value
    saved = tmp_path / "usage.csv"
    await download.save_as(saved)
    text = await asyncio.to_thread(saved.read_text)
    rows = {row["user"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["alice"]["generations"] == "2"
    assert rows["alice"]["cost_usd"] == ""  # unpriced: unknown, never 0
    assert rows["root"]["generations"] == "1"


def axe_source() -> str:
    if not AXE.exists():
        reason = f"{AXE} is missing: run `npm ci --prefix tests/client`"
        if IN_CI:
            pytest.fail(f"under CI axe-core must be installed: {reason}")
        pytest.skip(reason)
    return AXE.read_text()


# The pages axe sweeps, in groups of about equal time: one test per group and viewport, so the
# sweep spreads over the suite's workers instead of one long test per viewport. "-dark" is the
# page again in dark mode, which keeps its contrast too.
AXE_SWEEPS = {
    "entry": ["login", "home", "chat", "new-chat"],
    "records": ["generation", "image", "not-found"],
    "admin": ["usage", "log", "search"],
    "docs": ["docs"],
    "dark": ["home-dark", "usage-dark", "log-dark", "chat-dark"],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def axe_world(
    chromium: str, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    """What every axe sweep reads, made once per worker for all of them: a server on a vault with
    a chat, a generation and an image, a Playwright connection to the worker's Chromium, and a
    signed-in session (its cookies, for each sweep's own browser context).

    The sweeps only look at pages, so none of them changes what another sees. Each one had built
    all of this for itself (a vault, three generations, a server, a Playwright driver and a sign-in
    per test: ten times per run); the sign-in through the form is still the "entry" sweep's."""
    with pytest.MonkeyPatch.context() as env:
        # What the function-scoped autouse fixtures of conftest do per test, for this world's
        # lifetime (it is made before them): no developer's GENVAULT_* settings, no provider keys.
        for name in [n for n in os.environ if n.startswith("GENVAULT_")]:
            env.delenv(name)
        for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
            env.delenv(name, raising=False)
        folder = tmp_path_factory.mktemp("axe-world")
        database = folder / "genvault.db"
        source, copy = sqlite3.connect(sqlite_template), sqlite3.connect(database)
        try:
            source.backup(copy)  # the migrated template, as conftest's `database` copies it
        finally:
            copy.close()
            source.close()
        settings = Settings(
            data_dir=folder / "data",
            database_url=f"sqlite:///{database}",
            test_model_tps=0,
            db_pool_timeout_seconds=120,
            auth="api_key",
        )
        provider = tm.TestProvider(tokens_per_second=0)
        async with Vault(settings, providers={"offline": provider}) as vault:
            await vault.create_user("root", is_admin=True)
            async with vault.store.write() as conn:
                _key_id, key = await create_key(conn, "root", "browser")
            provider.enqueue(tm.text("A reply with **markdown** and `code`."), tm.usage(input=12, output=8))
            turn = await vault.chat(
                "axe-chat",
                message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]},
                user_id="root",
            )
            await vault.wait(turn.generation.id, user_id="root")
            provider.enqueue(tm.text("a generated answer"), tm.usage(input=10, output=5))
            record = await vault.wait((await vault.generate("a prompt", user_id="root")).id, user_id="root")
            image = await vault.wait(
                (await vault.generate_image("a lighthouse", size="64x32", user_id="root")).id, user_id="root"
            )
            pages = {
                "home": "/",
                "chat": "/chat/axe-chat",
                "new-chat": "/chat/a-new-chat",
                "generation": f"/generate/{record.id}",
                "image": f"/image/{image.id}",
                "usage": "/usage",
                "log": "/generations",
                "search": "/search?q=reply",
                "not-found": "/generate/gen_unknown",
                "docs": "/docs",
            }
            async with serve(create_app(vault=vault)) as base_url, async_playwright() as playwright:
                browser = await playwright.chromium.connect_over_cdp(chromium)
                try:
                    context = await browser.new_context()
                    context.set_default_timeout(TIMEOUT)
                    try:
                        await sign_in(await context.new_page(), base_url, key)
                        signed_in = await context.storage_state()
                    finally:
                        await context.close()
                    yield {
                        "browser": browser,
                        "base_url": base_url,
                        "key": key,
                        "pages": pages,
                        "signed_in": signed_in,
                    }
                finally:
                    await browser.close()


@pytest.mark.long
@pytest.mark.asyncio(loop_scope="module")  # the loop `axe_world` lives in
@pytest.mark.parametrize("sweep", list(AXE_SWEEPS))
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_every_page_passes_axe_and_fits_the_screen(
    axe_world: dict[str, Any], tmp_path: Path, viewport: dict[str, int], sweep: str
) -> None:
    source = axe_source()
    browser: Browser = axe_world["browser"]
    base_url: str = axe_world["base_url"]
    labels = AXE_SWEEPS[sweep]
    name = "phone" if viewport is PHONE else "desktop"
    # "entry" starts signed out (the login page, then the sign-in form); the others start in the
    # world's signed-in session.
    entry = "login" in labels
    context = await browser.new_context(viewport=viewport, storage_state=None if entry else axe_world["signed_in"])
    context.set_default_timeout(TIMEOUT)
    problems: list[str] = []
    try:
        page = await context.new_page()

        async def check(label: str) -> None:
            await page.wait_for_load_state("networkidle")
            await page.evaluate(source)
            # /docs is Swagger UI's own markup and styles (its nested controls and grey version
            # stamps); genvault only serves it. Every rule still runs on every page of ours.
            rules = {"nested-interactive": {"enabled": False}, "color-contrast": {"enabled": False}}
            found = await page.evaluate(
                """async (rules) => (await axe.run(document, {resultTypes: ['violations'], rules})).violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => `${v.id} (${v.impact}): ` +
                        v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))""",
                rules if label == "docs" else {},
            )
            problems.extend(f"{label}: {v}" for v in found)
            if await page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth"):
                problems.append(f"{label} scrolls sideways")
            await screenshot(page, f"axe-{name}-{label}", tmp_path)

        if entry:
            await page.goto(f"{base_url}/login")
            await check("login")
            await sign_in(page, base_url, axe_world["key"])
        for label in labels:
            if label == "login":
                continue
            page_name, dark = label.removesuffix("-dark"), label.endswith("-dark")
            await page.emulate_media(color_scheme="dark" if dark else "light")
            await page.goto(f"{base_url}{axe_world['pages'][page_name]}")
            if not entry:  # the session's cookie signed this page in: not sent to /login
                assert page.url == f"{base_url}{axe_world['pages'][page_name]}", page.url
            await check(label)
    finally:
        await context.close()
    assert not problems, f"at {viewport}:\n" + "\n".join(problems)


async def test_signed_in_by_session_the_sidebar_and_message_actions_change_the_store(
    page: Page, base_url: str, world: dict[str, Any], provider: tm.TestProvider
) -> None:
    """The page scripts' PATCH/DELETE/POST go out with the session's CSRF token (static/js/session.js)."""
    vault: Vault = world["vault"]
    for n in range(2):
        await vault.create_chat(f"mine-{n}", title=f"Mine {n}", user_id="alice")
    provider.enqueue(tm.text("First answer."))
    turn = await vault.chat(
        "mine-1", message={"id": "q1", "role": "user", "parts": [{"type": "text", "text": "Q?"}]}, user_id="alice"
    )
    await vault.wait(turn.generation.id, user_id="alice")
    await sign_in(page, base_url, world["keys"]["alice"][1], "/chat/mine-1")
    item = page.locator('.chat-item[data-chat-id="mine-0"]')
    await item.locator(".chat-menu-button").click()
    await item.locator("button.chat-rename").click()
    await item.locator("input.chat-title-input").fill("Renamed in a session")
    await page.keyboard.press("Enter")
    await expect(item.locator(".chat-link")).to_have_text("Renamed in a session")
    assert (await vault.get_chat("mine-0", user_id="alice")).title == "Renamed in a session"

    await item.locator(".chat-menu-button").click()
    await item.locator(".chat-delete").click()
    await page.click("#delete-confirm")
    await expect(item).to_have_count(0)
    assert [c.id for c in (await vault.list_chats(user_id="alice")).items] == ["mine-1"]

    provider.enqueue(tm.text("Second answer."))
    await page.locator('.msg-assistant [data-action="regenerate"]').click()
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Second answer.")
    await settle(vault)
    history = await vault.chat_messages("mine-1", user_id="alice")
    assert [m["role"] for m in history.messages] == ["user", "assistant"]
    assert history.messages[1]["parts"][-1]["text"] == "Second answer."
