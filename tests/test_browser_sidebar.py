"""The chat list sidebar and the model picker in a real browser (Debian's Chromium, Playwright),
against a real uvicorn server: what the page does is checked in the store through the JSON API.

Locally a missing browser skips these tests; under CI (`CI=true`) it fails them
(the `browser` fixture of tests/test_browser.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

import test_browser
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.vault import Vault
from live_server import serve
from test_browser import ON_SESSION_LOOP, PageProblems, screenshot, settle

pytestmark = [pytest.mark.slow, ON_SESSION_LOOP, pytest.mark.parametrize("database", ["sqlite"], indirect=True)]

# Debian's Chromium, launched once per worker, and one Playwright connection to it (skipped
# locally without it, a failure under CI).
browser = test_browser.browser
chromium = test_browser.chromium
PHONE = {"width": 390, "height": 844}
ALT_MODEL = "second/alt-model"


@pytest.fixture
def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
def second() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest_asyncio.fixture(loop_scope="session")
async def vault(session_loop_vault_factory: Any, provider: tm.TestProvider, second: tm.TestProvider) -> Vault:
    # A second text model, listed through its price override: the picker has two to choose from.
    overrides = {"price_overrides": {ALT_MODEL: {"input_mtok": "1.5", "output_mtok": "6"}}}
    made: Vault = await session_loop_vault_factory(
        providers={"offline": provider, "second": second}, settings_overrides=overrides
    )
    return made


@pytest_asyncio.fixture(loop_scope="session")
async def base_url(vault: Vault) -> AsyncIterator[str]:
    async with serve(create_app(vault=vault)) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def api(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        yield client


async def open_page(browser: Browser, viewport: dict[str, int] | None = None) -> Page:
    context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
    opened = await context.new_page()
    opened.set_default_timeout(60_000)
    opened.problems = PageProblems(opened)  # type: ignore[attr-defined]
    return opened


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    del base_url  # the server outlives the page (see test_browser.page)
    opened = await open_page(browser)
    try:
        yield opened
    finally:
        await opened.context.close()
    assert opened.problems.errors == []  # type: ignore[attr-defined]
    assert opened.problems.dialogs == []  # type: ignore[attr-defined]


async def make_chats(vault: Vault, count: int) -> list[str]:
    """`count` chats, oldest first (each one updated after the one before)."""
    ids = []
    for n in range(count):
        chat = await vault.create_chat(f"chat-{n:03d}", title=f"Chat number {n:03d}")
        ids.append(chat.id)
    return ids


def row(page: Page, chat_id: str) -> Any:
    return page.locator(f'.chat-item[data-chat-id="{chat_id}"]')


@pytest.mark.long
async def test_the_sidebar_lists_every_chat_newest_first_and_loads_more_as_it_scrolls(
    page: Page, base_url: str, vault: Vault, tmp_path: Path
) -> None:
    ids = await make_chats(vault, 70)
    await page.goto(base_url + "/")
    items = page.locator("#sidebar-list .chat-item")
    await expect(items).to_have_count(30)  # the first page only
    titles = await page.locator("#sidebar-list .chat-link").all_text_contents()
    assert titles == [f"Chat number {n:03d}" for n in range(69, 39, -1)]
    await screenshot(page, "sidebar-home", tmp_path)
    # Scrolling the list to its end fetches the next cursor page, and the one after.
    for expected in (60, 70):
        await page.locator("#sidebar-scroll").evaluate("box => box.scrollTo(0, box.scrollHeight)")
        await expect(items).to_have_count(expected)
    shown = [await item.get_attribute("data-chat-id") for item in await items.all()]
    assert shown == ids[::-1]
    await expect(page.locator("#sidebar-more")).to_be_hidden()  # nothing more to load


@pytest.mark.long
async def test_rename_share_and_delete_from_the_sidebar_change_the_store_as_the_api_would(
    page: Page, base_url: str, vault: Vault, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await make_chats(vault, 3)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.goto(f"{base_url}/chat/chat-002")
    await expect(row(page, "chat-002").locator(".chat-link")).to_have_attribute("aria-current", "page")

    # Rename, by keyboard: the row's menu, Rename, type, Enter.
    await row(page, "chat-001").locator(".chat-menu-button").focus()
    await page.keyboard.press("Enter")
    await expect(row(page, "chat-001").locator("button.chat-rename")).to_be_focused()
    await page.keyboard.press("Enter")  # the menu's first action is Rename
    editor = row(page, "chat-001").locator("input.chat-title-input")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_value("Chat number 001")
    await editor.fill("  Plans for the garden  ")
    await page.keyboard.press("Enter")
    await expect(row(page, "chat-001").locator(".chat-link")).to_have_text("Plans for the garden")
    stored = (await api.get("/api/chats/chat-001")).json()["chat"]
    assert stored["title"] == "Plans for the garden"

    # Escape leaves the title as it was; renaming the open chat retitles the page too.
    await row(page, "chat-002").locator(".chat-menu-button").click()
    await row(page, "chat-002").locator("button.chat-rename").click()
    await row(page, "chat-002").locator("input.chat-title-input").fill("not this")
    await page.keyboard.press("Escape")
    await expect(row(page, "chat-002").locator(".chat-link")).to_have_text("Chat number 002")
    assert (await api.get("/api/chats/chat-002")).json()["chat"]["title"] == "Chat number 002"
    await row(page, "chat-002").locator(".chat-menu-button").click()
    await row(page, "chat-002").locator("button.chat-rename").click()
    await row(page, "chat-002").locator("input.chat-title-input").fill("The open one")
    await page.keyboard.press("Enter")
    await expect(page.locator("#chat-title")).to_have_text("The open one")
    assert (await api.get("/api/chats/chat-002")).json()["chat"]["title"] == "The open one"

    # Share by link, copy the link; then private again.
    await row(page, "chat-000").locator(".chat-menu-button").click()
    await row(page, "chat-000").locator(".chat-share").click()
    dialog = page.locator("#share-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator('input[value="private"]')).to_be_checked()
    await dialog.locator('input[value="link"]').check()
    await expect(page.locator("#share-status")).to_contain_text("Saved")
    assert (await api.get("/api/chats/chat-000")).json()["chat"]["visibility"] == "link"
    await expect(page.locator("#share-url")).to_have_value(f"{base_url}/chat/chat-000")
    await page.click("#share-copy")
    await expect(page.locator("#share-status")).to_have_text("Link copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == f"{base_url}/chat/chat-000"
    # Anyone with the link reads it now.
    async with httpx.AsyncClient(base_url=base_url) as stranger:
        assert (await stranger.get("/api/chats/chat-000")).status_code == 200
    await screenshot(page, "sidebar-share", tmp_path)
    await dialog.locator('input[value="public"]').check()
    await expect(page.locator("#share-status")).to_contain_text("Saved")
    assert (await api.get("/api/chats/chat-000")).json()["chat"]["visibility"] == "public"
    await dialog.locator('input[value="private"]').check()
    await expect(page.locator("#share-status")).to_contain_text("Private")
    assert (await api.get("/api/chats/chat-000")).json()["chat"]["visibility"] == "private"
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(row(page, "chat-000").locator(".chat-shared")).to_be_hidden()

    # Delete asks first: Cancel keeps the chat, Delete removes it (and its row).
    await row(page, "chat-000").locator(".chat-menu-button").click()
    await row(page, "chat-000").locator(".chat-delete").click()
    confirm = page.locator("#delete-dialog")
    await expect(confirm).to_be_visible()
    await expect(page.locator("#delete-dialog-name")).to_have_text("Chat number 000")
    await confirm.get_by_role("button", name="Cancel").click()
    await expect(confirm).to_be_hidden()
    assert (await api.get("/api/chats/chat-000")).status_code == 200
    await row(page, "chat-000").locator(".chat-menu-button").click()
    await row(page, "chat-000").locator(".chat-delete").click()
    await page.click("#delete-confirm")
    await expect(row(page, "chat-000")).to_have_count(0)
    assert (await api.get("/api/chats/chat-000")).status_code == 404
    assert [c["id"] for c in (await api.get("/api/chats")).json()["items"]] == ["chat-002", "chat-001"]

    # Deleting the chat that is open leaves for the home page.
    await row(page, "chat-002").locator(".chat-menu-button").click()
    await row(page, "chat-002").locator(".chat-delete").click()
    await page.click("#delete-confirm")
    await page.wait_for_url(f"{base_url}/")
    assert (await api.get("/api/chats/chat-002")).status_code == 404


async def test_a_refused_rename_shows_the_servers_reason_and_changes_nothing(
    page: Page, base_url: str, vault: Vault, api: httpx.AsyncClient
) -> None:
    await make_chats(vault, 1)
    await page.goto(base_url + "/")
    await row(page, "chat-000").locator(".chat-menu-button").click()
    await row(page, "chat-000").locator("button.chat-rename").click()
    await row(page, "chat-000").locator("input.chat-title-input").fill("x\u0000y")  # NUL: not storable
    await page.keyboard.press("Enter")
    await expect(page.locator("#sidebar-note")).to_contain_text("Could not rename")
    await expect(row(page, "chat-000").locator(".chat-link")).to_have_text("Chat number 000")
    assert (await api.get("/api/chats/chat-000")).json()["chat"]["title"] == "Chat number 000"
    page.problems.errors.clear()  # type: ignore[attr-defined]  # the 400 in the console is the point


@pytest.mark.long
async def test_the_sidebar_search_box_filters_the_list_through_the_search_index(
    page: Page, base_url: str, vault: Vault
) -> None:
    await make_chats(vault, 5)
    await vault.update_chat("chat-003", title="Sourdough starter notes")
    await page.goto(base_url + "/")
    await expect(page.locator("#sidebar-list .chat-item")).to_have_count(5)
    await page.fill("#sidebar-q", "sourdough")
    await expect(page.locator("#sidebar-list .chat-item")).to_have_count(1)
    await expect(row(page, "chat-003")).to_be_visible()
    await expect(page.locator("#sidebar-all a")).to_have_attribute("href", "/search?q=sourdough")
    await page.fill("#sidebar-q", "")
    await expect(page.locator("#sidebar-list .chat-item")).to_have_count(5)
    await page.fill("#sidebar-q", "sourdough")
    await page.press("#sidebar-q", "Enter")  # the whole search: the /search page
    await page.wait_for_url("**/search?q=sourdough")
    await expect(page.locator(".search-hit")).not_to_have_count(0)


async def test_the_picker_lists_the_models_and_the_turn_uses_the_one_chosen_which_the_chat_remembers(
    page: Page, base_url: str, vault: Vault, api: httpx.AsyncClient, second: tm.TestProvider, tmp_path: Path
) -> None:
    second.enqueue(tm.text("Answered by the second model."))
    await page.goto(f"{base_url}/chat/picked")
    picker = page.locator("#model")
    await expect(picker).to_have_attribute("data-loaded", "true")
    assert await picker.input_value() == "offline/test-model"  # the default, for a new chat
    labels = await picker.locator("option").all_text_contents()
    assert "offline/test-model · free" in labels
    assert f"{ALT_MODEL} · $1.5 in · $6 out per 1M tokens" in labels
    await picker.select_option(ALT_MODEL)
    await page.fill("#input", "Which model are you?")
    await page.press("#input", "Enter")
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Answered by the second model.")
    await settle(vault)
    generations = (await api.get("/api/generations", params={"kind": "chat"})).json()["items"]
    assert [g["model"] for g in generations] == [ALT_MODEL]
    assert (await api.get("/api/chats/picked")).json()["model"] == ALT_MODEL
    # The new chat joined the list, at the top.
    await expect(page.locator("#sidebar-list .chat-item").first).to_have_attribute("data-chat-id", "picked")
    await screenshot(page, "model-picker", tmp_path)

    # The chat remembers its model: a reload starts the picker on it, and the next turn uses it.
    await page.reload()
    await expect(picker).to_have_attribute("data-loaded", "true")
    assert await picker.input_value() == ALT_MODEL
    second.enqueue(tm.text("Still the second model."))
    await page.fill("#input", "And now?")
    await page.press("#input", "Enter")
    await expect(page.locator(".msg-assistant .part-text").last).to_have_text("Still the second model.")
    await settle(vault)
    generations = (await api.get("/api/generations", params={"kind": "chat"})).json()["items"]
    assert [g["model"] for g in generations] == [ALT_MODEL, ALT_MODEL]
    # A new chat starts on the default again.
    await page.goto(f"{base_url}/chat/another")
    await expect(picker).to_have_attribute("data-loaded", "true")
    assert await picker.input_value() == "offline/test-model"


async def test_the_home_pages_generate_form_picks_its_model_the_same_way(
    page: Page, base_url: str, vault: Vault, api: httpx.AsyncClient, second: tm.TestProvider
) -> None:
    second.enqueue(tm.text("A haiku from the second model."))
    await page.goto(base_url + "/")
    picker = page.locator('#generate-form select[name="model"]')
    await expect(picker).to_have_attribute("data-loaded", "true")
    assert await picker.input_value() == "offline/test-model"
    image_models = await page.locator('#image-form select[name="model"] option').all_text_contents()
    assert image_models == ["offline/test-image · free"]  # image models only
    await picker.select_option(ALT_MODEL)
    await page.fill('#generate-form textarea[name="prompt"]', "A haiku, please")
    await page.click("#generate-form button[type=submit]")
    await page.wait_for_url("**/generate/*")
    await settle(vault)
    [record] = (await api.get("/api/generations", params={"kind": "text"})).json()["items"]
    assert record["model"] == ALT_MODEL
    assert record["result_text"] == "A haiku from the second model."


async def test_a_chat_whose_model_is_not_listed_keeps_it_in_the_picker(
    page: Page, base_url: str, vault: Vault, second: tm.TestProvider
) -> None:
    turn = await vault.chat(
        "odd", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}, model="second/unlisted"
    )
    await vault.wait(turn.generation.id)
    await page.goto(f"{base_url}/chat/odd")
    picker = page.locator("#model")
    await expect(picker).to_have_attribute("data-loaded", "true")
    assert await picker.input_value() == "second/unlisted"
    await expect(picker.locator("option:checked")).to_have_text("second/unlisted · not listed")


async def test_on_a_wide_screen_the_toggle_collapses_the_list_and_the_page_remembers_it(
    page: Page, base_url: str, vault: Vault
) -> None:
    await make_chats(vault, 2)
    await page.goto(f"{base_url}/chat/chat-001")
    toggle = page.locator("#sidebar-toggle")
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    composer = await page.locator("#composer").bounding_box()
    assert composer is not None
    assert composer["x"] == 0  # the composer takes the whole width back
    await page.reload()
    await expect(page.locator("#sidebar")).to_be_hidden()
    await toggle.press("Space")
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(row(page, "chat-001").locator(".chat-link")).to_have_attribute("aria-current", "page")


@pytest.mark.parametrize("path", ["/", "/chat/chat-000"])
async def test_at_phone_width_the_sidebar_folds_away_behind_a_toggle_and_nothing_scrolls_sideways(
    browser: Browser, base_url: str, vault: Vault, tmp_path: Path, path: str
) -> None:
    await make_chats(vault, 40)
    await vault.update_chat("chat-000", title="A title long enough to need cutting short " * 4)
    page = await open_page(browser, PHONE)
    try:
        await page.goto(base_url + path)
        await expect(page.locator("#sidebar-list .chat-item")).to_have_count(30)
        toggle = page.locator("#sidebar-toggle")
        await expect(toggle).to_be_visible()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(page.locator("#sidebar")).to_be_hidden()  # folded: not shown, not focusable
        await assert_fits(page)
        name = "phone-sidebar-" + ("home" if path == "/" else "chat")
        await screenshot(page, f"{name}-closed", tmp_path)

        await toggle.click()
        await expect(page.locator("#sidebar")).to_be_visible()
        await expect(page.locator("#sidebar-q")).to_be_focused()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        # Once it has slid in (a short transition).
        await page.evaluate("Promise.all(document.getElementById('sidebar').getAnimations().map(a => a.finished))")
        box = await page.locator("#sidebar").bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["x"] + box["width"] <= PHONE["width"], box
        await assert_fits(page)
        # Infinite scroll works in the panel too.
        await page.locator("#sidebar-scroll").evaluate("box => box.scrollTo(0, box.scrollHeight)")
        await expect(page.locator("#sidebar-list .chat-item")).to_have_count(40)
        await screenshot(page, f"{name}-open", tmp_path)
        # Modal: Tab stays out of the page behind the panel.
        for _ in range(3):
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.closest('#sidebar') !== null")
        await page.keyboard.press("Escape")
        await expect(page.locator("#sidebar")).to_be_hidden()
        await expect(toggle).to_be_focused()
        if path != "/":
            for button in ("#send", "#input", "#model"):
                box = await page.locator(button).bounding_box()
                assert box is not None, button
                assert box["x"] >= 0, (button, box)
                assert box["x"] + box["width"] <= PHONE["width"], (button, box)
                assert box["y"] >= 0, (button, box)
                assert box["y"] + box["height"] <= PHONE["height"], (button, box)
        assert page.problems.errors == []  # type: ignore[attr-defined]
    finally:
        await page.context.close()


async def assert_fits(page: Page) -> None:
    widths = await page.evaluate(
        "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"], widths
