"""Chat turns end to end over the AI SDK HTTP contract, on SQLite and PostgreSQL: what is streamed
is what is stored; edit, regenerate, tool-result continuation, server tools, resume, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from genvault.errors import Conflict
from genvault.messages.assembler import assemble
from genvault.messages.convert import to_model_messages
from genvault.messages.sse import parse_sse
from genvault.messages.ui import message_to_json, parse_ui_message
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.openings import copy_json, with_message
from genvault.vault import parse_params
from live_server import serve


def user(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


@pytest.fixture
def provider() -> tm.TestProvider:
    return tm.TestProvider(tokens_per_second=0)


@pytest.fixture
async def client(vault_factory: Any, provider: tm.TestProvider) -> AsyncIterator[httpx.AsyncClient]:
    vault = await vault_factory(providers={"offline": provider})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        http.vault = vault  # type: ignore[attr-defined]
        yield http


async def post_chat(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    for header, value in {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "connection": "keep-alive",
        "x-vercel-ai-ui-message-stream": "v1",
        "x-accel-buffering": "no",
    }.items():
        assert response.headers[header].startswith(value)
    events = parse_sse(response.content)
    assert events[-1] == "[DONE]"
    return events[:-1]


async def stored(client: httpx.AsyncClient, chat_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/chats/{chat_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


async def settle(client: httpx.AsyncClient) -> None:
    for run in list(client.vault.engine._runs.values()):  # type: ignore[attr-defined]
        await run.done.wait()


class TestSend:
    async def test_the_streamed_reply_is_exactly_the_stored_assistant_message(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(
            tm.reasoning("Thinking it over"), tm.text("Hello! How can I help?"), tm.usage(input=9, output=6)
        )
        chunks = await post_chat(
            client, {"id": "chat1", "messages": [user("u1", "Hi there")], "trigger": "submit-message"}
        )
        await settle(client)
        assert chunks[0]["type"] == "start"
        assistant_id = chunks[0]["messageId"]
        assert assistant_id.startswith("msg_")
        # The 5.0.0-compatible stream: no finishReason, no nulls.
        assert all("finishReason" not in c for c in chunks)
        messages = await stored(client, "chat1")
        assert [m["id"] for m in messages] == ["u1", assistant_id]
        assert messages[0] == user("u1", "Hi there")
        assert message_to_json(assemble(chunks)) == messages[1]
        metadata = messages[1]["metadata"]
        assert metadata["totalUsage"] == {"inputTokens": 9, "outputTokens": 6, "totalTokens": 15}
        assert metadata["genvault"]["costUsd"] is None  # the offline model has no price
        record = (await client.get(f"/api/generations/{metadata['genvault']['generationId']}")).json()
        assert record["kind"] == "chat"
        assert record["chat_id"] == "chat1"
        assert record["message_id"] == assistant_id
        assert record["status"] == "complete"
        assert record["result_message"] == messages[1]
        # The page's footer duration: from the request to the reply's end, within the record's times.
        waited = datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["created_at"])
        assert 0 <= metadata["genvault"]["durationMs"] <= waited.total_seconds() * 1000
        chat = (await client.get("/api/chats/chat1")).json()
        assert chat["chat"]["title"] == "Hi there"
        assert chat["active"] is False

    async def test_the_model_sees_the_stored_history_not_the_clients_copy(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("first answer"))
        await post_chat(client, {"id": "c", "messages": [user("u1", "one")], "trigger": "submit-message"})
        await settle(client)
        forged = [user("u1", "FORGED history"), user("u2", "two")]
        provider.enqueue(tm.text("second answer"))
        await post_chat(client, {"id": "c", "messages": forged, "trigger": "submit-message"})
        await settle(client)
        seen = provider.calls[-1].messages
        texts = [part.get("text") for m in seen for part in m["content"] if isinstance(m["content"], list)]
        assert "FORGED history" not in texts
        assert texts == ["one", "first answer", "two"]

    async def test_a_first_turns_model_messages_are_the_stored_messages_conversion(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        # A new chat's history is its message alone: the model's messages are converted from the
        # message as `Vault.chat` validated it, not from the stored copy parsed again; they must
        # be what the stored message converts to (keys the model drops, unknown keys, metadata).
        message = {
            "id": "u1",
            "role": "user",
            "metadata": {"sent": "by the client", "n": [1, 2.5, None]},
            "unknown": "stripped",
            "parts": [
                {"type": "text", "text": "look at this", "providerMetadata": {"p": {"cache": True}}},
                {"type": "file", "mediaType": "image/png", "url": "https://example.com/cat.png", "filename": "c.png"},
                {"type": "text", "text": "and this", "extra": "stripped too"},
            ],
        }
        provider.enqueue(tm.text("answer"))
        await post_chat(client, {"id": "alone", "messages": [message], "trigger": "submit-message"})
        await settle(client)
        stored = (await client.get("/api/chats/alone")).json()["messages"][0]
        assert provider.calls[-1].messages == to_model_messages([stored], ignore_incomplete_tool_calls=True)

    async def test_the_last_message_only_shape_is_accepted(self, client: httpx.AsyncClient) -> None:
        chunks = await post_chat(client, {"id": "c2", "message": user("u1", "hello")})
        await settle(client)
        assert [m["id"] for m in await stored(client, "c2")] == ["u1", chunks[0]["messageId"]]


class TestEditAndRegenerate:
    async def test_editing_an_earlier_message_replaces_it_and_drops_what_followed(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        for text in ("a1", "a2", "a3"):
            provider.enqueue(tm.text(text))
        await post_chat(client, {"id": "c", "messages": [user("u1", "first")], "trigger": "submit-message"})
        await settle(client)
        await post_chat(client, {"id": "c", "messages": [user("u2", "second")], "trigger": "submit-message"})
        await settle(client)
        chunks = await post_chat(
            client,
            {"id": "c", "messages": [user("u1", "first, edited")], "trigger": "submit-message", "messageId": "u1"},
        )
        await settle(client)
        messages = await stored(client, "c")
        assert [m["id"] for m in messages] == ["u1", chunks[0]["messageId"]]
        assert messages[0]["parts"][0]["text"] == "first, edited"
        assert messages[1]["parts"][-1]["text"] == "a3"

    async def test_regenerate_replaces_the_last_reply_with_a_new_one(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("take one"))
        provider.enqueue(tm.text("take two"))
        first = await post_chat(client, {"id": "c", "messages": [user("u1", "q")], "trigger": "submit-message"})
        await settle(client)
        second = await post_chat(client, {"id": "c", "messages": [user("u1", "q")], "trigger": "regenerate-message"})
        await settle(client)
        messages = await stored(client, "c")
        assert [m["id"] for m in messages] == ["u1", second[0]["messageId"]]
        assert second[0]["messageId"] != first[0]["messageId"]
        assert messages[1]["parts"][-1]["text"] == "take two"


class TestTools:
    async def test_a_client_side_tool_result_continues_the_same_assistant_message(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        vault = client.vault  # type: ignore[attr-defined]
        vault.register_tool("getLocation", description="Where the user is", input_schema={"type": "object"})
        provider.enqueue(tm.text("Let me check."), tm.tool_call("getLocation", {}, call_id="call_1"))
        provider.enqueue(tm.text("You are in Paris."))
        first = await post_chat(
            client, {"id": "c", "messages": [user("u1", "Where am I?")], "trigger": "submit-message"}
        )
        await settle(client)
        assert provider.calls[0].tools[0].name == "getLocation"
        messages = await stored(client, "c")
        assistant = messages[1]
        tool_part = next(p for p in assistant["parts"] if p["type"] == "tool-getLocation")
        assert tool_part["state"] == "input-available"
        # The client answers the call (addToolResult) and re-posts with messageId = the last id.
        answered = {
            **assistant,
            "parts": [
                {**p, "state": "output-available", "output": {"city": "Paris"}}
                if p["type"] == "tool-getLocation"
                else p
                for p in assistant["parts"]
            ],
        }
        second = await post_chat(
            client,
            {"id": "c", "messages": [messages[0], answered], "trigger": "submit-message", "messageId": assistant["id"]},
        )
        await settle(client)
        assert second[0] == {"type": "start", "messageId": assistant["id"]}
        final = await stored(client, "c")
        assert [m["id"] for m in final] == ["u1", assistant["id"]]
        parts = final[1]["parts"]
        assert next(p for p in parts if p["type"] == "tool-getLocation")["output"] == {"city": "Paris"}
        assert parts[-1]["text"] == "You are in Paris."
        # What the model saw on the second call: the tool result.
        tool_messages = [m for m in provider.calls[1].messages if m["role"] == "tool"]
        assert tool_messages[0]["content"][0]["output"] == {"type": "json", "value": {"city": "Paris"}}
        # The client assembles the continuation on top of its copy of the message: same result.
        assert message_to_json(assemble(second, start=parse_ui_message(answered))) == final[1]
        assert first[0]["messageId"] == assistant["id"]

    async def test_a_server_side_tool_runs_and_the_model_is_called_again(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        async def weather(args: Any) -> dict[str, Any]:
            return {"city": args["city"], "tempC": 21}

        client.vault.register_tool(  # type: ignore[attr-defined]
            "weather", input_schema={"type": "object", "properties": {"city": {"type": "string"}}}, execute=weather
        )
        provider.enqueue(tm.tool_call("weather", {"city": "Paris"}, call_id="w1"), tm.usage(input=5, output=2))
        provider.enqueue(tm.text("It is 21°C in Paris."), tm.usage(input=8, output=7))
        chunks = await post_chat(client, {"id": "c", "messages": [user("u1", "weather?")], "trigger": "submit-message"})
        await settle(client)
        types = [c["type"] for c in chunks]
        assert types.count("start-step") == 2
        assert {"type": "tool-output-available", "toolCallId": "w1", "output": {"city": "Paris", "tempC": 21}} in chunks
        final = (await stored(client, "c"))[1]
        assert [p["type"] for p in final["parts"]][:3] == ["step-start", "tool-weather", "step-start"]
        assert final["metadata"]["totalUsage"] == {"inputTokens": 13, "outputTokens": 9, "totalTokens": 22}


class TestResumeAndCancel:
    async def test_resume_is_204_when_nothing_runs(self, client: httpx.AsyncClient) -> None:
        await client.post("/api/chat", json={"id": "c", "messages": [user("u1", "x")], "trigger": "submit-message"})
        await settle(client)
        response = await client.get("/api/chat/c/stream")
        assert response.status_code == 204
        assert (await client.get("/api/chat/nope/stream")).status_code == 404

    async def test_cancel_saves_the_partial_reply_and_ends_the_record_cancelled(
        self, vault_factory: Any, provider: tm.TestProvider
    ) -> None:

        provider.enqueue(tm.text("partial words"), tm.delay(30), tm.text(" never sent"))
        vault = await vault_factory(providers={"offline": provider})
        async with serve(create_app(vault=vault)) as base, httpx.AsyncClient(base_url=base) as http:
            body = {"id": "c", "messages": [user("u1", "x")], "trigger": "submit-message"}
            async with http.stream("POST", "/api/chat", json=body) as response:
                seen = ""
                async for line in response.aiter_lines():
                    seen += line
                    if "words" in seen:
                        break
                cancel = await http.post("/api/chat/c/cancel")
            assert cancel.status_code == 200, cancel.text
            assert cancel.json()["status"] == "cancelled"
            messages = (await http.get("/api/chats/c")).json()["messages"]
            assert messages[1]["parts"][-1]["text"] == "partial words"
            assert (await http.post("/api/chat/c/cancel")).status_code == 409

    async def test_resume_replays_the_running_reply_from_its_first_chunk(
        self, vault_factory: Any, provider: tm.TestProvider
    ) -> None:

        provider.enqueue(tm.text("one two"), tm.delay(2.0), tm.text(" three"))
        vault = await vault_factory(providers={"offline": provider})
        async with serve(create_app(vault=vault)) as base, httpx.AsyncClient(base_url=base) as http:
            body = {"id": "c", "messages": [user("u1", "x")], "trigger": "submit-message"}
            async with http.stream("POST", "/api/chat", json=body) as response:
                async for _line in response.aiter_lines():
                    break  # the tab closes after the first bytes
            resumed = await http.get("/api/chat/c/stream")
            assert resumed.status_code == 200
            events = parse_sse(resumed.content)
            assert events[-1] == "[DONE]"
            assert events[0]["type"] == "start"
            text = "".join(e["delta"] for e in events[:-1] if e["type"] == "text-delta")
            assert text == "one two three"
            for run in list(vault.engine._runs.values()):
                await run.done.wait()
            stored_messages = (await http.get("/api/chats/c")).json()["messages"]
            assert message_to_json(assemble(events[:-1])) == stored_messages[1]


@pytest.mark.slow
async def test_twenty_disconnects_mid_stream_leave_twenty_complete_records(
    vault_factory: Any, provider: tm.TestProvider
) -> None:

    vault = await vault_factory(providers={"offline": provider})
    for _ in range(20):
        provider.enqueue(tm.text("alpha beta"), tm.delay(0.05), tm.text(" gamma delta"))
    async with serve(create_app(vault=vault)) as base, httpx.AsyncClient(base_url=base) as http:
        for i in range(20):
            body = {"id": f"c{i}", "messages": [user(f"u{i}", "go")], "trigger": "submit-message"}
            async with http.stream("POST", "/api/chat", json=body) as response:
                async for _chunk in response.aiter_bytes():
                    break  # disconnect after the first bytes
        for _ in range(200):
            if not vault.engine._runs:
                break
            await asyncio.sleep(0.05)
        page = await vault.list_generations(kind="chat", limit=100)
        assert len(page.items) == 20
        assert {r.status for r in page.items} == {"complete"}
        assert {r.result_text for r in page.items} == {"alpha beta gamma delta"}
        for i in range(20):
            messages = (await http.get(f"/api/chats/c{i}")).json()["messages"]
            assert messages[1]["parts"][-1]["text"] == "alpha beta gamma delta"


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            (b"{not json", 400, "not valid JSON"),
            (b"[]", 400, "JSON object"),
            (b'{"messages": []}', 400, "chat id is required"),
            (b'{"id": "c", "trigger": "resume"}', 400, "trigger must be"),
            (b'{"id": "c", "messages": []}', 400, "send the new message"),
            (
                b'{"id": "c", "messages": [{"id": "u", "role": "user", "parts": [{"type": "mystery"}]}]}',
                400,
                "unknown part type",
            ),
            (b'{"id": "c", "messages": [{"id": "u", "role": "user", "parts": []}]}', 400, "at least one part"),
            (
                b'{"id": "c", "messages": [{"id": "u", "role": "robot", "parts": [{"type":"text","text":"x"}]}]}',
                400,
                "role",
            ),
            (
                b'{"id": "c", "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": null}]}]}',
                400,
                "text",
            ),
            (
                b'{"id": "c", "model": "nosuch/m", "messages": '
                b'[{"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}]}]}',
                400,
                "nosuch",
            ),
            # Text no database can keep, in the message a new chat's title is taken from.
            (
                b'{"id": "c", "messages": [{"id": "u", "role": "user", '
                b'"parts": [{"type": "text", "text": "\\ud800"}]}]}',
                400,
                "message 'u' contains an unpaired UTF-16 surrogate",
            ),
            (
                b'{"id": "c", "messages": [{"id": "u", "role": "user", '
                b'"parts": [{"type": "text", "text": "a\\u0000"}]}]}',
                400,
                "message 'u' contains a NUL character",
            ),
            (
                b'{"id": "c\\u0000", "messages": [{"id": "u", "role": "user", '
                b'"parts": [{"type": "text", "text": "x"}]}]}',
                400,
                "chat id must be 1 to 200 visible ASCII characters",
            ),
        ],
    )
    async def test_a_bad_chat_request_gets_a_4xx_text_body_and_stores_nothing(
        self, client: httpx.AsyncClient, body: bytes, status: int, message: str
    ) -> None:
        response = await client.post("/api/chat", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("text/plain")
        assert message in response.text
        assert (await client.get("/api/chats")).json()["items"] == []
        assert (await client.get("/api/generations")).json()["items"] == []

    async def test_an_oversized_body_is_413(self, client: httpx.AsyncClient) -> None:
        huge = {"id": "c", "messages": [user("u", "x" * 11_000_000)], "trigger": "submit-message"}
        response = await client.post("/api/chat", json=huge)
        assert response.status_code == 413
        assert "limit" in response.text

    async def test_a_second_message_while_a_reply_runs_is_a_conflict(
        self, client: httpx.AsyncClient, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("slow"), tm.delay(30))
        vault = client.vault  # type: ignore[attr-defined]
        await vault.chat("c", message=user("u1", "first"))
        response = await client.post("/api/chat", json={"id": "c", "messages": [user("u2", "second")]})
        assert response.status_code == 409
        assert "still generating" in response.text
        await vault.cancel_chat("c")


async def test_second_turns_of_one_chat_at_once_run_one_and_refuse_the_rest(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    """Four new turns of an existing, idle chat at once: one runs, the others are told the chat is
    still generating (409) and leave nothing behind. The check and the claim of the chat are one
    step: on PostgreSQL all four used to read the idle chat and run side by side."""
    vault = client.vault  # type: ignore[attr-defined]
    first = await vault.chat("c", message=user("u0", "first"))
    await vault.wait(first.generation.id)
    for _ in range(4):
        provider.enqueue(tm.text("slow"), tm.delay(30))

    results = await asyncio.gather(
        *(vault.chat("c", message=user(f"u{i}", f"again {i}")) for i in range(1, 5)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(refused) == 3, results
    assert all("still generating" in str(r) for r in refused)
    await vault.cancel_chat("c")
    users = [m["id"] for m in await stored(client, "c") if m["role"] == "user"]
    assert len(users) == 2, users
    assert users[0] == "u0"


async def test_follow_here_checks_the_owner_of_a_turn_running_in_this_process(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    """`Vault.follow_here` skips the record read, so it checks the owner from the running turn."""
    provider.enqueue(tm.text("slow"), tm.delay(30))
    vault = client.vault  # type: ignore[attr-defined]
    await vault.create_user("bob")
    turn = await vault.chat("c", message=user("u1", "first"))
    generation_id = turn.generation.id
    assert vault.follow_here(generation_id, user_id="bob") is None
    assert vault.follow_here("gen_not_running_here") is None
    for follower in (vault.follow_here(generation_id), vault.follow_here(generation_id, user_id=None)):
        assert follower is not None
        assert (await anext(follower))["type"] == "start"
        await follower.aclose()
    await vault.cancel_chat("c")
    await vault.wait(generation_id)
    assert vault.follow_here(generation_id) is None


async def test_first_turns_of_one_new_chat_at_once_get_one_chat_and_clear_answers(
    client: httpx.AsyncClient,
) -> None:
    """Six first turns of the same new chat id at once: both databases end with one chat; a turn
    that loses the race to create it finds the chat and is told it is busy (409) or runs after
    it, never a storage error (on PostgreSQL the losing insert used to fail on the primary key)."""

    async def first_turn(i: int) -> int:
        body = {"id": "fresh", "messages": [user(f"u{i}", f"hi {i}")], "trigger": "submit-message"}
        response = await client.post("/api/chat", json=body)
        return response.status_code

    statuses = await asyncio.gather(*(first_turn(i) for i in range(6)))
    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses
    chats = (await client.get("/api/chats")).json()["items"]
    assert [c["id"] for c in chats] == ["fresh"]
    stored_users = [m["id"] for m in await stored(client, "fresh") if m["role"] == "user"]
    assert len(stored_users) == statuses.count(200)


async def test_a_turns_reply_leaves_the_chat_where_the_turns_start_put_it_in_the_list(
    client: httpx.AsyncClient,
) -> None:
    """A chat sorts by the start of its latest turn: the opening sets `updated_at` (a new chat's
    insert, an existing chat's claim) and the reply's one-step finalize leaves it, so on
    PostgreSQL that update changes no indexed column and can be HOT (`store/finishes.py`)."""
    vault = client.vault  # type: ignore[attr-defined]
    for message in (user("u1", "first"), user("u2", "second")):
        turn = await vault.chat("c", message=message)
        record = await vault.wait(turn.generation.id)
        assert record.status == "complete"
        assert record.finished_at > record.created_at
        chat = await vault.get_chat("c")
        assert chat.updated_at == record.created_at
        assert chat.active_generation_id is None
        listed = (await client.get("/api/chats")).json()["items"]
        assert [(c["id"], datetime.fromisoformat(c["updated_at"])) for c in listed] == [("c", record.created_at)]
    assert [m["role"] for m in await stored(client, "c")] == ["user", "assistant", "user", "assistant"]


async def test_a_continued_replys_save_by_the_general_path_leaves_the_chat_where_its_turns_start_put_it(
    client: httpx.AsyncClient, provider: tm.TestProvider
) -> None:
    """A reply the one-step finalize does not save (here: it continues a stored message, the
    client's tool result, so the engine's finalize transaction replaces that message) leaves
    `updated_at` where the continuing turn's start put it, as the one-step finalize does."""
    vault = client.vault  # type: ignore[attr-defined]
    vault.register_tool("getLocation", description="Where the user is", input_schema={"type": "object"})
    provider.enqueue(tm.text("Let me check."), tm.tool_call("getLocation", {}, call_id="call_1"))
    provider.enqueue(tm.text("You are in Paris."))
    await post_chat(client, {"id": "c", "messages": [user("u1", "Where am I?")], "trigger": "submit-message"})
    await settle(client)
    question, assistant = await stored(client, "c")
    answered = {
        **assistant,
        "parts": [
            {**p, "state": "output-available", "output": {"city": "Paris"}} if p["type"] == "tool-getLocation" else p
            for p in assistant["parts"]
        ],
    }
    body = {"id": "c", "messages": [question, answered], "trigger": "submit-message", "messageId": assistant["id"]}
    await post_chat(client, body)
    await settle(client)
    records = (await vault.list_generations()).items
    first, continued = sorted(records, key=lambda r: r.created_at)
    assert (first.status, continued.status) == ("complete", "complete")
    chat = await vault.get_chat("c")
    assert first.finished_at < chat.updated_at < continued.finished_at  # moved by the start only
    assert (await stored(client, "c"))[1]["parts"][-1]["text"] == "You are in Paris."


def test_a_turns_message_copy_is_a_deep_copy_of_its_json() -> None:
    """The history's copy of the user message (`copy_json`, in place of `copy.deepcopy`) is equal
    to it, key order included, and shares no dict or list with it; a value that is not JSON is
    deep-copied as before."""
    when = datetime(2026, 1, 1)
    message = {
        "id": "m1",
        "role": "user",
        "metadata": {"n": [1, 2.5, True, None, {"deep": ["x"]}], "when": when},
        "parts": [{"type": "text", "text": "hé"}],
    }
    history = with_message([{"id": "m0"}], message)
    copied = history[-1]
    assert copied == message
    assert list(copied) == list(message)
    assert list(copied["metadata"]) == list(message["metadata"])
    assert copied is not message
    assert copied["parts"] is not message["parts"]
    assert copied["parts"][0] is not message["parts"][0]
    assert copied["metadata"]["n"][4]["deep"] is not message["metadata"]["n"][4]["deep"]
    assert copy_json([when])[0] == when


async def test_a_turns_tokens_reach_its_message_through_the_text_sink(
    client: httpx.AsyncClient, provider: tm.TestProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine hands each token of the open text part to the turn's assembler as `(id, text)`
    (`TurnHooks.text_sink`, one call a token): the stored reply is the streamed one."""
    from genvault.messages.assembler import MessageAssembler

    taken: list[tuple[str, str]] = []
    original = MessageAssembler.feed_text

    def counted(self: MessageAssembler, stream_id: str, text: str) -> None:
        taken.append((stream_id, text))
        original(self, stream_id, text)

    monkeypatch.setattr(MessageAssembler, "feed_text", counted)
    provider.enqueue(tm.text("one two three four"))
    events = await post_chat(client, {"id": "c", "messages": [user("u1", "hi")], "trigger": "submit-message"})
    streamed = "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")
    assert streamed == "one two three four"
    assert len(taken) >= 2
    assert "".join(text for _, text in taken) in streamed
    reply = next(m for m in await stored(client, "c") if m["role"] == "assistant")
    assert "".join(p["text"] for p in reply["parts"] if p["type"] == "text") == streamed


async def test_a_turns_text_deltas_after_each_parts_first_are_published_as_plain_deltas(
    client: httpx.AsyncClient, provider: tm.TestProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine builds an open text part's deltas itself and publishes them vouched for
    (`MemoryHub.publish_nowait(..., delta=True)`, which the response writes without testing
    them); a part's first delta, and every other chunk, as the translator gives them."""
    engine = client.vault.engine  # type: ignore[attr-defined]
    published: list[tuple[dict[str, Any], bool]] = []
    original = engine._publish_nowait

    def counted(stream_id: str, chunk: dict[str, Any], *, delta: bool = False) -> None:
        published.append((chunk, delta))
        original(stream_id, chunk, delta=delta)

    monkeypatch.setattr(engine, "_publish_nowait", counted)
    provider.enqueue(tm.text("one two three"), tm.reasoning("hm"), tm.text(" four five"))
    events = await post_chat(client, {"id": "c", "messages": [user("u1", "hi")], "trigger": "submit-message"})
    sent = [e for e in events if isinstance(e, dict)]
    assert [chunk for chunk, _ in published][:-1] == sent[:-1]  # the `finish` as this client's level takes it
    vouched = [chunk["delta"] for chunk, delta in published if delta]
    assert vouched == [" two", " three", " five"]
    assert all(chunk["type"] == "text-delta" and list(chunk) == ["type", "id", "delta"] for chunk, d in published if d)


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"k": value}
    return value


async def test_a_served_turns_message_is_walked_for_depth_once_and_the_library_path_still_is(
    client: httpx.AsyncClient, provider: tm.TestProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP the input guard checks the whole body's depth, and `Vault.chat` does not walk the
    message again; called directly (no server), or with another object than the one the server
    marked, it walks and refuses a message nested too deep."""
    from genvault import chat_turns
    from genvault.errors import InvalidRequest

    walked: list[str] = []
    original = chat_turns.check_json_depth

    def counted(value: Any, what: str, **kwargs: Any) -> None:
        walked.append(what)
        original(value, what, **kwargs)

    monkeypatch.setattr(chat_turns, "check_json_depth", counted)
    provider.enqueue(tm.text("hello"))
    await post_chat(client, {"id": "c", "messages": [user("u1", "hi")], "trigger": "submit-message"})
    assert "the message" not in walked
    assert chat_turns.DEPTH_CHECKED.get() is None  # reset after the request

    vault: Any = client.vault  # type: ignore[attr-defined]
    deep = user("u2", "hi")
    deep["metadata"] = _deep(70)
    with pytest.raises(InvalidRequest, match="the message nests arrays and objects more than 64 deep"):
        await vault.chat("c2", message=deep)
    assert walked == ["the message"]
    marked = user("u3", "hi")
    token = chat_turns.DEPTH_CHECKED.set(marked)
    try:
        with pytest.raises(InvalidRequest, match="more than 64 deep"):
            await vault.chat("c2", message=deep)  # not the marked object
        with pytest.raises(InvalidRequest, match="more than 64 deep"):
            await vault.chat("c2", message=marked, params={"temperature": _deep(70)})  # params: walked
    finally:
        chat_turns.DEPTH_CHECKED.reset(token)
    assert walked == ["the message"] * 3


def test_no_params_dump_to_an_empty_object() -> None:
    # `Vault.chat` writes `{}` for a turn without params instead of validating and dumping
    # `GenerationParams()`: the two must stay the same (a default added later would differ).
    assert parse_params(None).model_dump(exclude_none=True) == {}
