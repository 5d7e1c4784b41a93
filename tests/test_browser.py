"""The pages in a real browser: Debian's Chromium (its headless shell where installed, see
`CHROMIUM`), driven by Playwright, against a real uvicorn server in the test's event loop, with
the scripted offline model.

Locally a missing browser skips these tests with the reason; under CI (`CI=true`) it fails them.
Set GENVAULT_TEST_SCREENSHOTS=<dir> to keep a screenshot of every page looked at.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright, expect

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store import chats as chat_store
from genvault.store.users import LOCAL_USER_ID
from genvault.vault import Vault
from live_server import serve

# Debian's `chromium-headless-shell` where installed (./scripts/test installs it): the same
# Chromium release, built as Chromium's "old" headless mode, which is what Playwright itself runs
# for a headless test; else Debian's `chromium` in its new headless mode. Same Blink, same V8, so
# the same pages; the full browser also builds a window's UI for every new browser context (its
# toolbar's WebUI renderers among it): 0.39-0.51 s of CPU per context against 0.10 s for the shell
# (docs/benchmarks.md, ci21). GENVAULT_TEST_CHROMIUM=<path> picks another binary.
# (The shell's binary itself: Debian's /usr/bin/chromium-headless-shell is a `sh -e` wrapper that
# runs it without `exec`.)
CHROMIUM_CANDIDATES = [Path("/usr/lib/chromium/chromium-headless-shell"), Path("/usr/bin/chromium")]
CHROMIUM = next(
    (path for path in CHROMIUM_CANDIDATES if path.exists()),
    CHROMIUM_CANDIDATES[-1],
)
if os.environ.get("GENVAULT_TEST_CHROMIUM"):  # read at import, as SCREENSHOTS below
    CHROMIUM = Path(os.environ["GENVAULT_TEST_CHROMIUM"])
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HAVE_CHROMIUM = CHROMIUM.exists()
# Ceilings for a loaded machine, not expectations: `expect(...)` waits 5 s by default.
expect.set_options(timeout=60_000)
IN_CI = os.environ.get("CI", "").lower() == "true"
# Read at import: the autouse fixture in conftest clears GENVAULT_* variables for each test.
SCREENSHOTS = os.environ.get("GENVAULT_TEST_SCREENSHOTS")
# A 1×1 PNG, for an image the model "draws".
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
EVIL = '<img src=x onerror=alert(1)><script>alert("xss")</script><b>not bold</b>'

# Only SQLite: what is tested here is the browser side; the routes run on both backends elsewhere.
# On the worker's session event loop, as every browser test module: they share one Playwright
# connection (a Node driver process) per worker, `browser` below.
ON_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")
pytestmark = [
    pytest.mark.slow,
    ON_SESSION_LOOP,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]


@pytest.fixture
def provider() -> tm.TestProvider:
    # Slow enough to watch: a reply of 20 tokens takes about a second.
    return tm.TestProvider(tokens_per_second=20)


@pytest_asyncio.fixture(loop_scope="session")
async def vault(session_loop_vault_factory: Any, provider: tm.TestProvider) -> Vault:
    made: Vault = await session_loop_vault_factory(providers={"offline": provider})
    return made


@pytest_asyncio.fixture(loop_scope="session")
async def base_url(vault: Vault) -> AsyncIterator[str]:
    async with serve(create_app(vault=vault)) as url:
        yield url


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One headless Chromium per worker for all its browser tests; yields its DevTools endpoint.

    Launching Chromium for each test cost ~0.6 s of CPU and 2–4 s on a loaded machine; each test
    still gets a browser context of its own (cookies, storage, viewport), which is the isolation
    the tests rely on. The switches are those Playwright's own headless launch adds that change
    what a page sees (no scrollbars, a touch-less pointer)."""
    if not HAVE_CHROMIUM:
        reason = f"{CHROMIUM} is missing: install Debian's chromium-headless-shell package (./scripts/test does)"
        if IN_CI:
            pytest.fail(f"under CI the browser must be installed: {reason}")
        pytest.skip(reason)
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless",
            "--hide-scrollbars",
            "--mute-audio",
            "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            *CHROMIUM_ARGS,
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A group of its own, ended whole below: a wrapper script's browser, left running, kept
        # the log pipe open and the worker waiting on it for ever.
        start_new_session=True,
    )
    assert process.stderr is not None
    endpoint = None
    for line in process.stderr:  # Chromium prints its endpoint once it listens
        if found := re.search(r"DevTools listening on (ws://\S+)", line):
            endpoint = found.group(1)
            break
    if endpoint is None:
        process.kill()
        pytest.fail(f"Chromium exited without a DevTools endpoint (status {process.wait()})")
    # Keep reading its log, so a full pipe never blocks it.
    drain = threading.Thread(target=process.stderr.read, daemon=True)
    drain.start()
    try:
        yield endpoint
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        drain.join(timeout=10)
        process.stderr.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One Playwright connection to the worker's Chromium for all its browser tests (on the
    session event loop, which their async fixtures share). Starting Playwright's driver (a Node
    process) and attaching it over CDP cost ~0.5 s of CPU per test; each test still gets a browser
    context of its own (`page`), as before."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium)
        try:
            yield connected
        finally:
            await connected.close()


class PageProblems:
    """Everything the page complained about: script errors, console errors, alert() dialogs."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    # `base_url` first: the server outlives the page, so nothing the page still fetches while it
    # closes meets a server that is already gone (a console error the teardown would count).
    del base_url
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    opened = await context.new_page()
    opened.set_default_timeout(60_000)
    problems = PageProblems(opened)
    opened.problems = problems  # type: ignore[attr-defined]
    try:
        yield opened
    finally:
        await context.close()
    assert problems.errors == []
    assert problems.dialogs == []


async def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """For a person to look at: taken only when GENVAULT_TEST_SCREENSHOTS names a directory.

    Nothing asserts on one, and a full-page PNG costs Chromium 0.1-0.6 s of CPU (a long page): the
    suite took ~70 of them per run into temporary directories nobody opened."""
    del tmp_path  # the signature the tests call with; the pictures go to SCREENSHOTS only
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def settle(vault: Vault) -> None:
    for run in list(vault.engine._runs.values()):
        await run.done.wait()


async def page_data(page: Page) -> Any:
    return await page.evaluate("JSON.parse(document.getElementById('page-data').textContent)")


async def test_a_reload_mid_reply_shows_the_reply_continue_and_finish_and_it_is_saved(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.enqueue(
        tm.text("The first half arrives."), tm.delay(3.0), tm.text(" The second half comes after the reload.")
    )
    await page.goto(f"{base_url}/chat/browser-chat")
    await page.fill("#input", "Hello from the browser")
    await page.press("#input", "Enter")
    assistant = page.locator(".msg-assistant .part-text")
    await expect(assistant).to_have_text("The first half arrives.")
    await expect(page.locator("#stop")).to_be_visible()

    await page.reload()
    # The reload landed mid-reply: the server drew the page while the reply still ran.
    assert (await page_data(page))["active"] is True
    await expect(page.locator(".msg-user")).to_have_count(1)
    await expect(page.locator(".msg-user")).to_contain_text("Hello from the browser")
    await expect(assistant).to_have_text("The first half arrives. The second half comes after the reload.")
    await expect(page.locator(".msg-assistant")).to_have_count(1)
    await expect(page.locator("#stop")).to_be_hidden()
    await screenshot(page, "chat", tmp_path)

    await settle(vault)
    async with httpx.AsyncClient(base_url=base_url) as http:
        stored = (await http.get("/api/chats/browser-chat")).json()
    assert stored["active"] is False
    assert stored["chat"]["title"] == "Hello from the browser"
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    text = "".join(p["text"] for p in stored["messages"][1]["parts"] if p["type"] == "text")
    assert text == "The first half arrives. The second half comes after the reload."
    # The id the page showed is the stored message's id.
    shown_id = await page.locator(".msg-assistant").get_attribute("data-id")
    assert shown_id == stored["messages"][1]["id"]


async def test_stop_cancels_the_reply_and_keeps_what_was_said(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider
) -> None:
    provider.enqueue(tm.text("Words before the stop."), tm.delay(30), tm.text(" Never said."))
    await page.goto(f"{base_url}/chat/stop-chat")
    await page.fill("#input", "Talk slowly")
    await page.click("#send")
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Words before the stop.")
    await page.click("#stop")
    await expect(page.locator("#status")).to_have_text("Stopped.")
    await expect(page.locator("#send")).to_be_enabled()
    await settle(vault)
    records = await vault.list_generations(kind="chat")
    assert [r.status for r in records.items] == ["cancelled"]
    messages = (await vault.chat_messages("stop-chat")).messages
    assert messages[-1]["parts"][-1]["text"] == "Words before the stop."
    assert messages[-1]["metadata"]["genvault"]["status"] == "cancelled"
    # Shown under the reply as it ended, and the same after a reload (from the stored metadata).
    ending = page.locator('.msg-assistant .msg-ending[data-status="cancelled"]')
    await expect(ending).to_have_text("Reply stopped")
    await page.reload()
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Words before the stop.")
    await expect(ending).to_have_text("Reply stopped")


async def test_a_model_failing_before_its_first_token_shows_its_error_under_the_reply_after_a_reload(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider
) -> None:
    provider.enqueue(tm.error("the model is overloaded", status=529))
    await page.goto(f"{base_url}/chat/fail-chat")
    await page.fill("#input", "Hello?")
    await page.click("#send")
    await expect(page.locator("#error")).to_have_text("the model is overloaded")
    await settle(vault)
    await page.reload()
    ending = page.locator('.msg-assistant .msg-ending[data-status="error"]')
    await expect(ending).to_have_text("Reply failed: the model is overloaded")


async def test_reasoning_tools_sources_and_files_are_drawn_as_they_stream(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.enqueue(
        tm.reasoning("Looking up the weather first."),
        tm.tool_call("weather", {"city": "Paris"}, call_id="call_1", provider_executed=True),
        tm.source("https://example.com/paris", "Paris weather"),
        tm.file("image/png", PNG),
        tm.text("It is sunny in Paris."),
    )
    await page.goto(f"{base_url}/chat/rich-chat")
    await page.fill("#input", "Weather in Paris?")
    await page.press("#input", "Enter")
    reply = page.locator(".msg-assistant")
    await expect(reply.locator(".part-text")).to_have_text("It is sunny in Paris.")
    await expect(reply.locator(".part-reasoning .reasoning-text")).to_have_text("Looking up the weather first.")
    await expect(reply.locator(".part-tool .tool-name")).to_have_text("Tool: weather")
    await reply.locator(".part-tool summary").click()
    await expect(reply.locator(".part-tool .tool-input")).to_contain_text('"city": "Paris"')
    link = reply.locator(".part-source a")
    await expect(link).to_have_text("Paris weather")
    assert await link.get_attribute("href") == "https://example.com/paris"
    image = reply.locator(".part-file img")
    await expect(image).to_have_count(1)
    # The model's file was stored as a blob: the page shows it from its permanent URL.
    assert "/files/file_" in (await image.get_attribute("src") or "")
    await screenshot(page, "chat-parts", tmp_path)
    # Drawn from the stored message after a reload: the same parts in the same order.
    live_kinds = await reply.locator(".msg-body > *").evaluate_all("nodes => nodes.map(n => n.dataset.kind)")
    await settle(vault)
    await page.reload()
    await expect(reply.locator(".part-text")).to_have_text("It is sunny in Paris.")
    stored_kinds = await reply.locator(".msg-body > *").evaluate_all("nodes => nodes.map(n => n.dataset.kind)")
    assert stored_kinds == live_kinds


async def test_earlier_messages_load_above_on_request(page: Page, base_url: str, vault: Vault) -> None:
    await vault.create_chat("long-chat", title="A long chat")
    history = [
        {
            "id": f"m{i:02}",
            "role": "user" if i % 2 == 0 else "assistant",
            "parts": [{"type": "text", "text": f"message {i}"}],
        }
        for i in range(60)
    ]
    async with vault.store.write() as conn:
        await chat_store.append_messages(conn, "long-chat", LOCAL_USER_ID, history)
    await page.goto(f"{base_url}/chat/long-chat")
    messages = page.locator(".msg")
    await expect(messages).to_have_count(50)
    await expect(messages.first.locator(".msg-body")).to_have_text("message 10")
    # A click event, not `page.click`: that scrolls the button into view first, and scrolling up
    # to it loads the earlier page by itself (the page's IntersectionObserver), which can hide the
    # button before the click lands. Either way one request loads the page (`loadEarlier`).
    await page.locator("#earlier").dispatch_event("click")
    await expect(messages).to_have_count(60)
    await expect(messages.first.locator(".msg-body")).to_have_text("message 0")
    await expect(messages.last.locator(".msg-body")).to_have_text("message 59")
    await expect(page.locator("#earlier")).to_be_hidden()


async def test_the_generate_form_redirects_to_the_record_which_streams_then_shows_final_metadata(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.enqueue(tm.text("Streaming into the record page,"), tm.delay(1.0), tm.text(" then done."))
    await page.goto(f"{base_url}/")
    await screenshot(page, "home-empty", tmp_path)
    await page.fill("textarea[name=prompt]", "Describe a heron")
    await page.click("#generate-form button[type=submit]")
    await page.wait_for_url(re.compile(r"/generate/gen_[0-9a-z]{26}$"))
    assert (await page_data(page))["final"] is False  # the page had to follow the stream

    await expect(page.locator("#output")).to_have_text("Streaming into the record page, then done.")
    meta = page.locator(".meta")
    await expect(meta.locator('dd[data-field="status"]')).to_have_text("complete")
    await expect(page.locator('.badge[data-field="status"]')).to_have_text("complete")
    await expect(meta.locator('[data-field="output_tokens"]')).to_have_text("7")
    await expect(meta.locator('[data-field="finish_reason"]')).to_have_text("stop")
    await expect(meta.locator('[data-field="cost_usd"]')).to_have_text("unknown")
    await expect(meta.locator('[data-field="finished_at"]')).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
    await expect(page.locator("#cancel")).to_be_hidden()
    await screenshot(page, "generation", tmp_path)

    record_id = page.url.rsplit("/", 1)[1]
    record = await vault.get_generation(record_id)
    assert record.request["prompt"] == "Describe a heron"
    assert record.result_text == "Streaming into the record page, then done."
    # What the script filled in is what the server renders for the finished record.
    await page.reload()
    await expect(meta.locator('[data-field="output_tokens"]')).to_have_text("7")
    await page.goto(f"{base_url}/")
    await expect(page.locator(f'a[href="/generate/{record_id}"]')).to_have_count(1)
    await screenshot(page, "home", tmp_path)


async def test_markup_in_a_reply_renders_as_text_live_and_after_a_reload(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.enqueue(tm.text(EVIL))
    await page.goto(f"{base_url}/chat/xss-chat")
    await page.fill("#input", EVIL)
    await page.press("#input", "Enter")
    reply = page.locator(".msg-assistant .part-text")
    await expect(reply).to_have_text(EVIL)
    await settle(vault)
    for _ in range(2):  # as streamed, then as loaded from the database
        await expect(reply).to_have_text(EVIL)
        await expect(page.locator(".msg-user .part-text")).to_have_text(EVIL)
        assert await page.locator("#messages img, #messages script, #messages b").count() == 0
        await page.reload()
    await asyncio.sleep(0.2)  # an onerror handler would have fired by now
    assert page.problems.dialogs == []  # type: ignore[attr-defined]
    await screenshot(page, "chat-markup", tmp_path)

    provider.enqueue(tm.text(EVIL))
    record = await vault.generate("x")
    await page.goto(f"{base_url}/generate/{record.id}")
    await expect(page.locator("#output")).to_have_text(EVIL)
    assert await page.locator("#output img, #output script, #output b").count() == 0


async def test_the_usage_page_draws_its_charts_as_inline_svg(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.tokens_per_second = 0
    provider.enqueue(tm.text("one"), tm.usage(input=1200, output=300))
    provider.enqueue(tm.text("two"), tm.usage(input=400, output=900))
    for prompt in ("a", "b"):
        await vault.wait((await vault.generate(prompt)).id)
    await page.goto(f"{base_url}/usage")
    charts = page.locator("figure.chart svg")
    await expect(charts).to_have_count(2)
    tokens = charts.nth(0)
    await expect(tokens.locator("rect.bar")).to_have_count(2)  # today: input and output, stacked
    box = await tokens.bounding_box()
    assert box is not None
    assert box["width"] > 500
    assert box["height"] > 100
    bar_titles = await tokens.locator("rect.bar title").all_text_contents()
    assert any(t.endswith("input: 1.6k") for t in bar_titles)
    assert any(t.endswith("output: 1.2k") for t in bar_titles)
    await expect(page.locator(".stat-value").first).to_have_text("2")
    await screenshot(page, "usage", tmp_path)


async def test_an_unknown_record_is_the_404_page(page: Page, base_url: str, tmp_path: Path) -> None:
    response = await page.goto(f"{base_url}/generate/gen_unknown")
    assert response is not None
    assert response.status == 404
    # Chromium logs every 4xx document as a console error; this one is the point of the test.
    page.problems.errors[:] = [e for e in page.problems.errors if "status of 404" not in e]  # type: ignore[attr-defined]
    await expect(page.locator("h1")).to_have_text("Not found")
    await screenshot(page, "not-found", tmp_path)


@pytest.mark.long
async def test_an_attached_image_is_sent_stored_as_a_blob_and_drawn_from_its_url_after_reload(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    picture = tmp_path / "dot.png"
    picture.write_bytes(PNG)
    provider.enqueue(tm.text("A single dot."))
    await page.goto(f"{base_url}/chat/attach-chat")
    await page.set_input_files("#attach", str(picture))
    await page.fill("#input", "What is this?")
    await page.press("#input", "Enter")
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("A single dot.")
    await settle(vault)
    # The stored message holds the permanent URL, not the data URL the page sent.
    stored = (await vault.chat_messages("attach-chat")).messages
    [part] = [p for p in stored[0]["parts"] if p["type"] == "file"]
    assert part["url"].startswith("/files/file_")
    assert part["filename"] == "dot.png"
    # The model received the bytes.
    assert provider.calls[-1].messages[0]["content"][1]["data"] == PNG
    await page.reload()
    image = page.locator(".msg-user .part-file img")
    await expect(image).to_have_count(1)
    assert "/files/file_" in (await image.get_attribute("src") or "")
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 1


@pytest.mark.long
async def test_a_search_from_the_top_bar_links_to_the_message_loading_earlier_pages_to_show_it(
    page: Page, base_url: str, vault: Vault, tmp_path: Path
) -> None:
    await vault.create_chat("searched", title="The long migration chat")
    history = [
        {
            "id": f"m{i:03}",
            "role": "user" if i % 2 == 0 else "assistant",
            "parts": [{"type": "text", "text": "the okapi <b>hides</b> here" if i == 7 else f"filler {i}"}],
        }
        for i in range(130)
    ]
    async with vault.store.write() as conn:
        await chat_store.append_messages(conn, "searched", LOCAL_USER_ID, history)
    await page.goto(base_url)
    await page.fill(".searchbox input", "okapi")
    await page.press(".searchbox input", "Enter")
    await expect(page).to_have_url(re.compile(r"/search\?q=okapi$"))
    hits = page.locator(".search-hit")
    await expect(hits).to_have_count(1)
    await expect(hits.locator("mark")).to_have_text("okapi")
    await expect(hits.locator(".snippet")).to_have_text("the okapi <b>hides</b> here")  # markup shown as text
    await hits.locator("a").click()
    await expect(page).to_have_url(re.compile(r"/chat/searched\?message=m007$"))
    found = page.locator(".msg-found")
    await expect(found).to_have_count(1)  # two earlier pages were loaded to reach it
    await expect(found).to_have_attribute("data-id", "m007")
    await expect(found).to_be_in_viewport()
    await expect(page.locator(".msg")).to_have_count(130)
    await screenshot(page, "search-jump", tmp_path)
    # A malformed query is a page that says what is wrong.
    await page.goto(f"{base_url}/search?q=%22open")
    await expect(page.locator(".error")).to_contain_text("unclosed quote")
    problems: PageProblems = page.problems  # type: ignore[attr-defined]
    assert problems.errors == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    problems.errors.clear()  # that 400 was the point


@pytest.mark.long
async def test_the_api_docs_render_with_nothing_fetched_from_elsewhere(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    elsewhere: list[str] = []

    async def only_this_server(route: Any) -> None:
        if route.request.url.startswith(base_url):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_this_server)
    await page.goto(f"{base_url}/docs")
    await expect(page.locator(".opblock").first).to_be_visible()  # the operations, read from /openapi.json
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("genvault")
    assert elsewhere == []
    await screenshot(page, "docs", tmp_path)


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# A word no line can break by spaces: it must wrap inside its box, not widen the page.
LONG_WORD = "supercalifragilistic" * 8


@pytest.mark.long
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_every_page_fits_the_screen_and_the_composer_is_in_view(
    browser: Browser, vault: Vault, base_url: str, provider: tm.TestProvider, tmp_path: Path, viewport: dict[str, int]
) -> None:
    provider.tokens_per_second = 0
    provider.enqueue(tm.text(f"A reply with a long word {LONG_WORD}"), tm.usage(input=1200, output=300))
    turn = await vault.chat(
        "layout-chat", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": LONG_WORD}]}
    )
    await vault.wait(turn.generation.id)
    provider.enqueue(tm.text("a generated answer"), tm.usage(input=10, output=5))
    record = await vault.wait((await vault.generate(f"a prompt {LONG_WORD}")).id)
    image = await vault.wait((await vault.generate_image("a lighthouse", size="64x32")).id)
    pages = {
        "home": "/",
        "chat": "/chat/layout-chat",
        "new-chat": "/chat/a-new-chat",
        "generation": f"/generate/{record.id}",
        "image": f"/image/{image.id}",
        "usage": "/usage",
        "usage-by-day": "/usage?group_by=day",
        "search": "/search?q=reply",
        "not-found": "/generate/gen_unknown",
    }
    context = await browser.new_context(viewport=viewport)
    try:
        page = await context.new_page()
        page.set_default_timeout(60_000)
        name = "phone" if viewport is PHONE else "desktop"
        problems: list[str] = []
        for label, path in pages.items():
            await page.goto(f"{base_url}{path}")
            await page.wait_for_load_state("networkidle")
            widths = await page.evaluate(
                "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
            )
            await screenshot(page, f"{name}-{label}", tmp_path)
            if widths["scroll"] > widths["client"]:
                problems.append(f"{path} scrolls sideways: {widths}")
            # Nothing spills out of its card: what is wider than the card scrolls inside it.
            spills = await page.evaluate(
                """[...document.querySelectorAll('.card')].filter(card => {
                    const box = card.getBoundingClientRect();
                    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(card).overflowX);
                    return box.right > document.documentElement.clientWidth
                        || (card.scrollWidth > card.clientWidth && !scrolls);
                }).map(card => card.querySelector('h2')?.textContent || card.className)"""
            )
            if spills:
                problems.append(f"{path}: content spills out of cards {spills}")
            if label in ("chat", "new-chat"):
                # Stop shows while a reply streams; show it now to check both buttons fit together.
                await page.evaluate("document.getElementById('stop').hidden = false")
                for button in ("#send", "#stop", "#input"):
                    box = await page.locator(button).bounding_box()
                    assert box is not None, button
                    inside = box["x"] >= 0 and box["y"] >= 0
                    inside = inside and box["x"] + box["width"] <= viewport["width"]
                    inside = inside and box["y"] + box["height"] <= viewport["height"]
                    if not inside:
                        problems.append(f"{path}: {button} is out of view at {box}")
                if await page.evaluate("document.documentElement.scrollWidth") > viewport["width"]:
                    problems.append(f"{path} scrolls sideways once Stop shows")
                await screenshot(page, f"{name}-{label}-streaming", tmp_path)
        assert not problems, f"at {viewport}:\n" + "\n".join(problems)
    finally:
        await context.close()
