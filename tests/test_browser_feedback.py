"""The feedback buttons in a real browser (Chromium): on a record page and under each assistant
message of a chat; what the buttons show is what is stored, also after a reload."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from genvault.vault import Vault
from test_browser import (  # noqa: F401  (the browser fixtures)
    ON_SESSION_LOOP,
    base_url,
    browser,
    chromium,
    page,
    provider,
    vault,
)

pytestmark = [pytest.mark.slow, ON_SESSION_LOOP, pytest.mark.parametrize("database", ["sqlite"], indirect=True)]


@pytest.mark.long
async def test_the_record_page_rates_comments_and_clears(page: Page, base_url: str, vault: Vault) -> None:  # noqa: F811
    record = await vault.wait((await vault.generate("rate me in the browser")).id)
    await page.goto(f"{base_url}/generate/{record.id}")
    bar = page.locator(".feedback")
    await bar.locator(".thumb[data-rating='1']").click()
    await expect(bar.locator(".feedback-note")).to_have_text("saved")
    await expect(bar.locator(".thumb[data-rating='1']")).to_have_attribute("aria-pressed", "true")
    stored = await vault.feedback.generation_rating(record.id, user_id="local")
    assert stored is not None
    assert stored.rating == 1

    await bar.locator(".feedback-comment").fill("clear and short")
    await bar.locator(".feedback-note").evaluate("node => node.textContent = ''")
    await bar.locator(".feedback-comment").press("Enter")
    await expect(bar.locator(".feedback-note")).to_have_text("saved")
    stored = await vault.feedback.generation_rating(record.id, user_id="local")
    assert stored is not None
    assert (stored.rating, stored.comment) == (1, "clear and short")

    await page.reload()
    await expect(bar.locator(".thumb[data-rating='1']")).to_have_attribute("aria-pressed", "true")
    await expect(bar.locator(".feedback-comment")).to_have_value("clear and short")
    await bar.locator(".thumb[data-rating='1']").click()  # the chosen thumb again: removed
    await expect(bar.locator(".feedback-note")).to_have_text("rating removed")
    assert await vault.feedback.generation_rating(record.id, user_id="local") is None


@pytest.mark.long
async def test_each_assistant_message_of_a_chat_has_its_own_thumbs(page: Page, base_url: str, vault: Vault) -> None:  # noqa: F811
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]}
    turn = await vault.chat("rated-chat", message=message)
    await vault.wait(turn.generation.id)
    await page.goto(f"{base_url}/chat/rated-chat")
    reply = page.locator(f"article.msg-assistant[data-id='{turn.message_id}']")
    await expect(reply.locator(".feedback")).to_have_count(1)
    await expect(page.locator("article.msg-user .feedback")).to_have_count(0)
    await reply.locator(".thumb[data-rating='-1']").click()
    await expect(reply.locator(".feedback-note")).to_have_text("saved")
    stored = await vault.feedback.message_rating("rated-chat", turn.message_id, user_id="local")
    assert stored is not None
    assert stored.rating == -1

    await page.reload()
    await expect(reply.locator(".thumb[data-rating='-1']")).to_have_attribute("aria-pressed", "true")
    await expect(reply.locator(".thumb[data-rating='1']")).to_have_attribute("aria-pressed", "false")
