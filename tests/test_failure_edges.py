"""Failure edges of a generation (issue 14): what a client was shown is what is stored.

- a model that fails before its first token: the announced assistant message is in the chat, with
  its error status in the message metadata (item 2);
- a provider answer that is not a stream, or an empty one: an `error` record, never an empty
  `complete`, and never in the dedup cache (item 4);
- cancelled, interrupted and failed records carry usage and cost: the provider's where it sent
  any, else an estimate marked as such, counted as estimated in usage reports (item 6).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from genvault.errors import ProviderError
from genvault.estimate import CHARS_PER_TOKEN, input_tokens, text_tokens
from genvault.providers import testmodel as tm
from genvault.providers.anthropic import AnthropicProvider
from genvault.providers.base import ModelRequest, ProviderEvent, StreamTextDelta, StreamUsage
from genvault.providers.openai import OpenAIProvider
from genvault.replay import chunks_from_record

PAUSE = 3600.0


def user(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


# -- item 2: the model fails before its first token ------------------------------------------------


async def test_a_model_failing_before_its_first_token_leaves_the_announced_message_in_the_chat(
    vault_factory: Any,
) -> None:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider})
    provider.enqueue(tm.error("rate limited: slow down", status=429))
    turn = await vault.chat("c1", message=user("u1", "Hello?"))
    chunks = [c async for c in vault.stream(turn.generation.id)]
    record = await vault.wait(turn.generation.id)
    assert record.status == "error"
    types = [c["type"] for c in chunks]
    assert types == ["start", "start-step", "message-metadata", "error", "finish-step", "finish"]
    assert chunks[0]["messageId"] == turn.message_id
    status = chunks[2]["messageMetadata"]["genvault"]
    assert status["status"] == "error"
    assert status["error"] == "rate limited: slow down"

    messages = (await vault.chat_messages("c1")).messages
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assistant = messages[1]
    assert assistant["id"] == turn.message_id
    assert assistant["parts"] == [{"type": "step-start"}]
    assert assistant["metadata"] == chunks[2]["messageMetadata"]
    assert record.result_message == assistant
    # Replayed from the record (once the live stream is gone), the status comes along too.
    replayed = chunks_from_record(record)
    assert [c["type"] for c in replayed][-3:] == ["message-metadata", "error", "finish"]
    assert replayed[-3]["messageMetadata"] == assistant["metadata"]

    # The next turn answers the chat as the client holds it: four messages, not three.
    provider.enqueue(tm.text("Here now."))
    again = await vault.chat("c1", message=user("u2", "Still there?"))
    assert (await vault.wait(again.generation.id)).status == "complete"
    assert [m["role"] for m in (await vault.chat_messages("c1")).messages] == ["user", "assistant"] * 2
    assert [m["role"] for m in provider.calls[-1].messages] == ["user", "user"]


async def test_a_cancelled_turn_keeps_its_partial_reply_marked_cancelled(vault_factory: Any) -> None:
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await (gate.wait() if seconds == PAUSE else asyncio.sleep(seconds))

    provider = tm.TestProvider(tokens_per_second=0, sleep=sleep)
    vault = await vault_factory(providers={"offline": provider})
    provider.enqueue(tm.text("The first half"), tm.delay(PAUSE), tm.text(" and the rest"))
    turn = await vault.chat("c2", message=user("u1", "Go"))
    chunks: list[dict[str, Any]] = []

    async def follow() -> None:
        async for chunk in vault.stream(turn.generation.id):
            chunks.append(chunk)
            if chunk["type"] == "text-delta":
                await vault.cancel(turn.generation.id)

    await follow()
    record = await vault.wait(turn.generation.id)
    assert record.status == "cancelled"
    assert [c["type"] for c in chunks][-2:] == ["message-metadata", "abort"]
    assistant = (await vault.chat_messages("c2")).messages[-1]
    assert assistant["id"] == turn.message_id
    assert [p.get("text") for p in assistant["parts"] if p["type"] == "text"] == ["The first half"]
    assert assistant["metadata"]["genvault"]["status"] == "cancelled"
    assert assistant["metadata"] == chunks[-2]["messageMetadata"]


# -- item 4: an answer that is not a stream --------------------------------------------------------

ANTHROPIC_JSON = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "A whole answer, but not streamed."}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 12, "output_tokens": 9},
}


def json_answer(body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(200, json=body)


def empty_stream(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"", headers={"content-type": "text/event-stream"})


def unreadable_stream(_request: httpx.Request) -> httpx.Response:
    # Well-formed events that neither family's reader can make anything of, and no stop reason.
    body = (
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'data: {"id": "x", "object": "chat.completion.chunk", "choices": []}\n\n'
    )
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


@pytest.fixture
def answers() -> list[Callable[[httpx.Request], httpx.Response]]:
    return []


@pytest.fixture
async def mock_http(answers: list[Callable[[httpx.Request], httpx.Response]]) -> AsyncIterator[httpx.AsyncClient]:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1](request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        client.calls = calls  # type: ignore[attr-defined]
        yield client


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(json_answer(ANTHROPIC_JSON), "application/json instead of an event stream", id="json"),
        pytest.param(
            json_answer({"type": "error", "error": {"type": "invalid_request_error", "message": "bad field"}}),
            "bad field",
            id="json-error",
        ),
        pytest.param(
            lambda _r: httpx.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"}),
            "text/html instead of an event stream: <html>gateway</html>",
            id="html",
        ),
        pytest.param(empty_stream, "empty stream", id="empty-stream"),
        # The Anthropic SDK drops events it does not know (an empty stream to genvault); the OpenAI
        # one hands over a chunk with nothing in it.
        pytest.param(unreadable_stream, "(empty stream|nothing that could be read)", id="unreadable-stream"),
    ],
)
@pytest.mark.parametrize("family", ["anthropic", "openai-compatible"])
async def test_an_answer_that_is_not_a_stream_is_an_error_and_never_cached(
    vault_factory: Any,
    mock_http: httpx.AsyncClient,
    answers: list[Any],
    answer: Any,
    expected: str,
    family: str,
) -> None:
    answers.append(answer)
    if family == "anthropic":
        provider: Any = AnthropicProvider(api_key="sk-ant-test", http_client=mock_http, max_retries=0)
        model = "anthropic/claude-sonnet-4-6"
    else:
        provider = OpenAIProvider("local", api_key="x", base_url="http://127.0.0.1:9/v1", http_client=mock_http)
        model = "local/some-model"
    vault = await vault_factory(providers={model.split("/")[0]: provider})
    records = []
    for _ in range(2):
        started = await vault.generate("Say something", model=model)
        chunks = [c async for c in vault.stream(started.id)]
        records.append(await vault.wait(started.id))
        types = [c["type"] for c in chunks]
        assert types[-1] == "finish"
        assert types[types.index("error") - 1] == "message-metadata"
    for record in records:
        assert record.status == "error"
        assert record.error is not None
        assert re.search(expected, record.error)
        assert record.cached_from is None
    assert len(mock_http.calls) == 2  # type: ignore[attr-defined]  # the second asked again


async def test_an_empty_complete_answer_is_not_served_from_the_cache(vault_factory: Any) -> None:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider})
    provider.enqueue(tm.finish("stop"))
    provider.enqueue(tm.finish("stop"))
    first = await vault.wait((await vault.generate("Say nothing")).id)
    second = await vault.wait((await vault.generate("Say nothing")).id)
    assert (first.status, first.result_text) == ("complete", "")
    assert second.cached_from is None
    assert provider.call_count == 2


# -- item 6: usage and cost of replies cut short ----------------------------------------------------

PRICED = "anthropic/claude-sonnet-4-6"


async def test_a_cancelled_reply_without_provider_usage_gets_an_estimate_priced_and_marked(
    vault_factory: Any,
) -> None:
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await (gate.wait() if seconds == PAUSE else asyncio.sleep(seconds))

    provider = tm.TestProvider(tokens_per_second=0, sleep=sleep)
    vault = await vault_factory(providers={"anthropic": provider})
    partial = "Some words streamed before the cancel"
    provider.enqueue(tm.text(partial), tm.delay(PAUSE))
    prompt = "Write me a long essay about lighthouses"
    started = await vault.generate(prompt, model=PRICED)
    shown = ""
    async for chunk in vault.stream(started.id):
        if chunk["type"] == "text-delta":
            shown += chunk["delta"]
            if shown == partial:
                await vault.cancel(started.id)
    record = await vault.wait(started.id)
    assert record.status == "cancelled"
    assert record.usage.estimated
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    assert record.usage.input_tokens == input_tokens(messages, tools=[])
    assert record.usage.output_tokens == text_tokens(record.result_text or "")
    assert record.usage.output_tokens == -(-len(partial) // CHARS_PER_TOKEN)
    assert record.cost_nano_usd is not None
    assert record.cost_nano_usd > 0

    rows = await vault.usage()
    assert rows[0].estimated_generations == 1
    assert rows[0].estimated_cost_nano_usd == record.cost_nano_usd


class UsageThenFailure:
    """A provider that reports usage, then fails (as a stream cut after its usage event)."""

    name = "anthropic"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        yield StreamTextDelta("Half")
        yield StreamUsage(input_tokens=40, output_tokens=3, total_tokens=43)
        raise ProviderError("overloaded", provider=self.name, status=529)

    async def aclose(self) -> None:
        pass


async def test_provider_usage_sent_before_a_failure_is_kept_not_estimated(vault_factory: Any) -> None:
    vault = await vault_factory(providers={"anthropic": UsageThenFailure()})
    record = await vault.wait((await vault.generate("Hi", model=PRICED)).id)
    assert record.status == "error"
    assert not record.usage.estimated
    assert (record.usage.input_tokens, record.usage.output_tokens) == (40, 3)
    assert record.cost_nano_usd is not None
    assert record.cost_nano_usd > 0
    assert (await vault.usage())[0].estimated_generations == 0


def test_the_estimate_counts_every_string_the_model_reads() -> None:
    messages = [
        {"role": "system", "content": "abcd" * 3},
        {"role": "user", "content": [{"type": "text", "text": "abcd" * 5}, {"type": "image", "image": "data:x"}]},
    ]
    assert input_tokens(messages) == 2 * 4 + 8
    assert json.dumps(messages)  # plain JSON in, nothing mutated


async def cancelled_generation(vault: Any, provider: tm.TestProvider, gate: asyncio.Event) -> Any:
    provider.enqueue(tm.text("A beginning"), tm.delay(PAUSE))
    started = await vault.generate("Tell me about herons", model=PRICED)
    async for chunk in vault.stream(started.id):
        if chunk["type"] == "text-delta" and chunk["delta"].strip() == "beginning":
            await vault.cancel(started.id)
    return await vault.wait(started.id)


def gated_provider() -> tuple[tm.TestProvider, asyncio.Event]:
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await (gate.wait() if seconds == PAUSE else asyncio.sleep(seconds))

    return tm.TestProvider(tokens_per_second=0, sleep=sleep), gate


async def test_estimated_usage_is_shown_as_estimated_over_http_and_on_the_pages(vault_factory: Any) -> None:
    from genvault.server import create_app

    provider, gate = gated_provider()
    vault = await vault_factory(providers={"anthropic": provider})
    record = await cancelled_generation(vault, provider, gate)
    assert record.status == "cancelled"
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as client:
        body = (await client.get(f"/api/generations/{record.id}")).json()
        assert body["usage"]["estimated"] is True
        assert body["cost_usd"] is not None
        [row] = (await client.get("/api/usage")).json()
        assert row["estimated_generations"] == 1
        assert row["estimated_cost_usd"] == body["cost_usd"]
        usage_page = (await client.get("/usage")).text
        assert '<td class="num" data-field="estimated_generations">1</td>' in usage_page
        record_page = (await client.get(f"/generate/{record.id}")).text
        assert 'data-field="usage_estimated"' in record_page


def test_genvault_usage_counts_estimated_generations(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from genvault.cli import app
    from genvault.settings import Settings
    from genvault.vault import Vault

    async def cut_short() -> None:
        provider, gate = gated_provider()
        async with Vault(Settings(data_dir=tmp_path), providers={"anthropic": provider}) as vault:
            await cancelled_generation(vault, provider, gate)

    asyncio.run(cut_short())
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    as_json = runner.invoke(app, ["usage", "--json"])
    assert as_json.exit_code == 0, as_json.output
    [row] = json.loads(as_json.stdout)
    assert row["estimated_generations"] == 1
    table = runner.invoke(app, ["usage"])
    assert "estimated" in table.stdout


async def test_a_turn_cancelled_from_another_process_keeps_its_partial_reply_and_usage(vault_factory: Any) -> None:
    """B cancels a reply that A runs (behind a balancer, the cancel lands anywhere): B can write
    only the status; A, told by its checkpoint writer, adds the partial reply, usage and cost."""
    provider, _gate = gated_provider()
    owner = await vault_factory(providers={"anthropic": provider})
    other = await vault_factory(providers={"anthropic": provider})
    provider.enqueue(tm.text("Half a reply"), tm.delay(PAUSE))
    message = user("u1", "Go slowly")
    turn = await owner.chat("cx", message=message, model=PRICED)
    chunks: list[dict[str, Any]] = []
    async for chunk in owner.stream(turn.generation.id):
        chunks.append(chunk)
        if chunk["type"] == "text-delta" and chunk["delta"].strip() == "reply":
            assert not other.engine.is_running_here(turn.generation.id)
            await other.cancel(turn.generation.id)
    record = await owner.wait(turn.generation.id)
    assert record.status == "cancelled"
    assert record.result_text == "Half a reply"
    assert record.usage.estimated
    assert record.cost_nano_usd is not None
    assert [c["type"] for c in chunks][-2:] == ["message-metadata", "abort"]
    stored = (await other.chat_messages("cx")).messages[-1]
    assert stored["id"] == turn.message_id
    assert "".join(p.get("text", "") for p in stored["parts"]) == "Half a reply"
    assert stored["metadata"]["genvault"]["status"] == "cancelled"
    assert stored["metadata"] == chunks[-2]["messageMetadata"]


class _HeldFinalHook:
    """A final hook (in the finalize's transaction) held until released: the finalize is writing."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    def wants(self, status: str) -> bool:
        return True

    async def on_final(self, conn: Any, record: Any) -> None:
        self.entered.set()
        await self.release.wait()
        self.finished = True


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("stop", ["cancel", "aclose"])
async def test_a_cancel_arriving_while_the_finalize_writes_never_interrupts_that_write(
    vault_factory: Any, stop: str
) -> None:
    # The finalize runs in the generation's own task (no shielded task): a user's cancel, or the
    # shutdown's after its grace, must leave it alone, not cancel the write half-way.
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider})
    hook = _HeldFinalHook()
    vault.engine.final_hooks.append(hook)
    provider.enqueue(tm.text("the whole reply"))
    generation_id = (await vault.generate("q")).id
    await asyncio.wait_for(hook.entered.wait(), 20)
    run = vault.engine._runs[generation_id]
    assert run.finalizing
    if stop == "cancel":
        stopping = asyncio.create_task(vault.cancel(generation_id))
        await _until(lambda: run.cancel_requested)
    else:
        stopping = asyncio.create_task(vault.engine.aclose(grace_seconds=0))
        await _until(lambda: vault.engine._shutting_down)
        await asyncio.sleep(0.05)  # past its (zero) grace: a cancel would have been sent by now
    assert not stopping.done()  # it waits for the write, which it did not cancel
    hook.release.set()
    await asyncio.wait_for(stopping, 20)
    assert hook.finished
    record = await vault.get_generation(generation_id)
    assert (record.status, record.result_text) == ("complete", "the whole reply")
    assert not run.finalizing
