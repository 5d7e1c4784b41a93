"""The real AI SDK browser client against a running genvault: what the client assembles is what
the server stores, for every client version we promise to serve.

`tests/client/run-scenario.mjs` drives each version's own `AbstractChat` and
`DefaultChatTransport` (so the client's message-list logic, chunk validation and assembly are the
real ones) from the npm packages pinned in `tests/client/package-lock.json`: `ai@5.0.0` (the
strictest chunk schema), the latest 5.x and the latest `ai`. The server runs with its default
`stream_compat="5.0.0"`, so no client may report an error on any scenario.

Needs Node 20+; `npm ci --prefix tests/client` is run here when `node_modules` is missing or stale.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.vault import Vault
from live_server import serve

pytestmark = pytest.mark.slow

CLIENT_DIR = Path(__file__).parent / "client"
SCRIPT = CLIENT_DIR / "run-scenario.mjs"
VERSIONS = ["ai-5.0.0", "ai-5", "ai-latest"]
IN_CI = os.environ.get("CI", "").lower() == "true"
# `tm.delay(PAUSE)` parks the scripted model until the test opens the gate.
PAUSE = 3600.0
CLIENT_TIMEOUT = 60.0


# -- the Node side -------------------------------------------------------------------------------


def _installed_matches_lock() -> bool:
    """Every package of the lock file is installed at its locked version."""
    lock = json.loads((CLIENT_DIR / "package-lock.json").read_text())
    for path, meta in lock["packages"].items():
        if not path:
            continue
        manifest = CLIENT_DIR / path / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != meta.get("version"):
            return False
    return True


@pytest.fixture(scope="session")
def node() -> Path:
    """`node`, with tests/client/node_modules installed from the lock file (`npm ci`, only if needed)."""
    executable, npm = shutil.which("node"), shutil.which("npm")
    if executable is None or npm is None:
        message = "Node.js 20+ and npm are needed to run the AI SDK client"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    import fcntl
    import hashlib
    import tempfile

    # One install at a time: parallel workers (xdist) all get here, and `npm ci` empties
    # node_modules first, under any other worker's feet.
    lock_name = f"genvault-npm-{hashlib.sha256(str(CLIENT_DIR).encode()).hexdigest()[:12]}.lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed_matches_lock():
            done = subprocess.run(
                [npm, "ci", "--prefix", str(CLIENT_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return Path(executable)


# -- the server side -----------------------------------------------------------------------------


@pytest.fixture
def database(database_maker: Any) -> tuple[str, str | None]:
    # The client contract does not depend on the backend (test_chat_turns runs on both).
    made: tuple[str, str | None] = database_maker("sqlite")
    return made


@pytest.fixture
def gate() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def provider(gate: asyncio.Event) -> tm.TestProvider:
    async def sleep(seconds: float) -> None:
        if seconds == PAUSE:
            await gate.wait()
        else:
            await asyncio.sleep(seconds)

    return tm.TestProvider(tokens_per_second=0, sleep=sleep)


async def spawn_client(node: Path, version: str) -> asyncio.subprocess.Process:
    """A run-scenario.mjs process that starts loading `version` at once and waits for its spec."""
    return await asyncio.create_subprocess_exec(
        str(node),
        str(SCRIPT),
        version,
        cwd=CLIENT_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@dataclass
class Client:
    """One AI SDK client version pointed at the running server; each action is one Node process."""

    version: str
    node: Path
    base_url: str
    # Started before the server, so loading `ai` (about half a second) overlaps with its start.
    warm: asyncio.subprocess.Process | None = None
    chat_id: str = "chat-aisdk"

    async def run(
        self,
        action: str,
        messages: list[dict[str, Any]],
        *,
        on_chunk: Callable[[dict[str, Any]], None] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """Run one action of run-scenario.mjs; returns its report (see the script's header)."""
        payload = {
            "version": self.version,
            "baseUrl": self.base_url,
            "api": "/api/chat",
            "chatId": self.chat_id,
            "messages": messages,
            "action": action,
            **spec,
        }
        process, self.warm = self.warm or await spawn_client(self.node, self.version), None
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
        assert stdin is not None
        assert stdout is not None
        assert stderr is not None
        log: list[str] = []

        async def read_stderr() -> None:
            async for raw in stderr:
                line = raw.decode()
                if not line.startswith("@@chunk "):
                    log.append(line)
                elif on_chunk is not None:
                    on_chunk(json.loads(line.removeprefix("@@chunk ")))

        async def talk() -> bytes:
            stdin.write(json.dumps(payload).encode())
            await stdin.drain()
            stdin.close()
            out, _ = await asyncio.gather(stdout.read(), read_stderr())
            await process.wait()
            return out

        try:
            out = await asyncio.wait_for(talk(), CLIENT_TIMEOUT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, f"{self.version} {action} failed:\n{''.join(log)}"
        report: dict[str, Any] = json.loads(out)
        return report


@dataclass
class Server:
    base_url: str
    vault: Vault
    http: httpx.AsyncClient

    async def stored(self, chat_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/chats/{chat_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        return list((await self.stored(chat_id))["messages"])

    async def settle(self) -> None:
        """Wait until no reply runs (the stream's end comes just before the record is final)."""
        for run in list(self.vault.engine._runs.values()):
            await run.done.wait()

    async def post(self, chat_id: str, text: str, message_id: str) -> None:
        """Seed the chat the way another tab would: one turn over plain HTTP, run to its end."""
        body = {"id": chat_id, "messages": [user(message_id, text)], "trigger": "submit-message"}
        async with self.http.stream("POST", "/api/chat", json=body) as response:
            assert response.status_code == 200, await response.aread()
            await response.aread()
        await self.settle()


@pytest.fixture
def stream_compat() -> str:
    return "5.0.0"  # the server's default; parametrize `stream_compat` to change it


@pytest.fixture
async def server(vault_factory: Any, provider: tm.TestProvider, stream_compat: str) -> AsyncIterator[Server]:
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"stream_compat": stream_compat})
    async with serve(create_app(vault=vault)) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        yield Server(base_url, vault, http)


@pytest.fixture(params=VERSIONS)
async def warm_client(request: pytest.FixtureRequest, node: Path) -> AsyncIterator[Client]:
    process = await spawn_client(node, request.param)
    yield Client(request.param, node, base_url="", warm=process)
    if process.returncode is None:
        process.kill()
        await process.wait()


@pytest.fixture
def client(warm_client: Client, server: Server) -> Client:
    warm_client.base_url = server.base_url
    return warm_client


# -- helpers -------------------------------------------------------------------------------------


def user(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def ok(report: dict[str, Any]) -> dict[str, Any]:
    """The report of a run the client finished without an error (the strict schema included)."""
    assert "error" not in report, report["error"]
    assert report["chatStatus"] == "ready", report
    return report


def as_assembled_by(version: str, value: Any) -> Any:
    """The stored JSON as `version` assembles it. The server stores reasoning parts with the
    stream's reasoning id, as clients since 5.0.234 do; earlier clients never copy it (spec §1.2.2)."""
    if isinstance(value, list):
        return [as_assembled_by(version, item) for item in value]
    if not isinstance(value, dict) or version != "ai-5.0.0":
        return value
    if value.get("type") == "reasoning":
        return {k: v for k, v in value.items() if k != "id"}
    return {k: as_assembled_by(version, v) if k == "parts" else v for k, v in value.items()}


def same(client: Client, client_side: Any, server_side: Any) -> None:
    """Assert the client's JSON equals the server's as that client version would have assembled
    it, showing a line diff (sorted keys) when they differ."""
    server_side = as_assembled_by(client.version, server_side)
    if client_side == server_side:
        return
    left = json.dumps(client_side, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    right = json.dumps(server_side, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    diff = "\n".join(difflib.unified_diff(left, right, "client", "server", lineterm="", n=2))
    pytest.fail(f"the client's JSON differs from the server's:\n{diff}")


def text_of(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


# -- the scenarios -------------------------------------------------------------------------------


class TestSend:
    async def test_the_assembled_reply_and_the_whole_list_equal_what_the_server_stored(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.reasoning("The user greets me."), tm.text("Hello! How can I help?"))
        report = ok(await client.run("send", [], text="Hi there"))
        await server.settle()
        stored = await server.messages(client.chat_id)
        same(client, report["messages"], stored)
        assistant = report["assembled"]
        same(client, assistant, stored[-1])
        assert [p["type"] for p in assistant["parts"]] == ["step-start", "reasoning", "text"]
        assert text_of(assistant) == "Hello! How can I help?"
        assert report["chunks"][0]["type"] == "start"
        assert report["chunks"][0]["messageId"] == assistant["id"]
        request = report["requests"][0]
        assert request["body"]["trigger"] == "submit-message"
        assert "messageId" not in request["body"]

    async def test_extra_body_fields_such_as_the_model_are_honoured(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Scripted."))
        report = ok(await client.run("send", [], text="Hi", body={"model": "offline/test-model"}))
        await server.settle()
        assert report["requests"][0]["body"]["model"] == "offline/test-model"
        same(client, report["messages"], await server.messages(client.chat_id))

    async def test_tags_and_metadata_in_the_transport_body_label_the_new_chat_and_its_turn(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Labelled."))
        body = {"tags": ["from-usechat"], "metadata": {"customer": "acme"}}
        ok(await client.run("send", [], text="Hi", body=body))
        await server.settle()
        chat = (await server.stored(client.chat_id))["chat"]
        assert chat["tags"] == ["from-usechat"]
        assert chat["metadata"] == {"customer": "acme"}
        (record,) = (await server.vault.list_generations(tag="from-usechat")).items
        assert record.chat_id == client.chat_id


class TestEditAndRegenerate:
    async def test_an_edit_replaces_the_user_message_and_drops_what_followed(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("One."))
        await server.post(client.chat_id, "first", "u1")
        provider.enqueue(tm.text("Two."))
        await server.post(client.chat_id, "second", "u2")
        loaded = await server.messages(client.chat_id)
        provider.enqueue(tm.text("One, edited."))
        report = ok(await client.run("edit", loaded, text="first, edited", messageId="u1"))
        await server.settle()
        stored = await server.messages(client.chat_id)
        same(client, report["messages"], stored)
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[0] == user("u1", "first, edited")
        assert text_of(stored[1]) == "One, edited."
        assert stored[1]["id"] not in {m["id"] for m in loaded}
        assert report["requests"][0]["body"]["messageId"] == "u1"

    async def test_regenerate_replaces_the_last_assistant_message(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("First try."))
        await server.post(client.chat_id, "question", "u1")
        loaded = await server.messages(client.chat_id)
        provider.enqueue(tm.reasoning("Again."), tm.text("Second try."))
        report = ok(await client.run("regenerate", loaded))
        await server.settle()
        stored = await server.messages(client.chat_id)
        same(client, report["messages"], stored)
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[0]["id"] == "u1"
        assert stored[1]["id"] != loaded[1]["id"]
        assert text_of(stored[1]) == "Second try."
        body = report["requests"][0]["body"]
        assert body["trigger"] == "regenerate-message"
        assert [m["id"] for m in body["messages"]] == ["u1"]


class TestClientSideTools:
    @pytest.fixture(autouse=True)
    def _get_location(self, server: Server) -> None:
        server.vault.register_tool(
            "getLocation", description="Where the user is", input_schema={"type": "object", "properties": {}}
        )

    async def test_a_tool_answered_in_on_tool_call_continues_the_same_assistant_message(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.tool_call("getLocation", {}))
        provider.enqueue(tm.text("You are in Paris."))
        report = ok(await client.run("send", [], text="Where am I?", toolOutputs={"getLocation": {"city": "Paris"}}))
        await server.settle()
        stored = await server.messages(client.chat_id)
        same(client, report["messages"], stored)
        assert [m["role"] for m in stored] == ["user", "assistant"]
        first, second = report["requests"]
        assistant_id = first["chunks"][0]["messageId"]
        assert stored[1]["id"] == assistant_id
        assert second["body"]["trigger"] == "submit-message"
        assert second["body"]["messageId"] == assistant_id
        assert second["chunks"][0]["messageId"] == assistant_id
        self._assert_answered(stored[1])

    async def test_a_tool_answered_after_a_reload_continues_the_same_assistant_message(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.tool_call("getLocation", {}, call_id="call_loc"))
        await server.post(client.chat_id, "Where am I?", "u1")
        loaded = await server.messages(client.chat_id)
        (tool_part,) = [p for p in loaded[-1]["parts"] if p["type"] == "tool-getLocation"]
        assert tool_part["state"] == "input-available"
        provider.enqueue(tm.text("You are in Paris."))
        report = ok(await client.run("continue", loaded, toolCallId="call_loc", output={"city": "Paris"}))
        await server.settle()
        stored = await server.messages(client.chat_id)
        same(client, report["messages"], stored)
        assert [m["id"] for m in stored] == [m["id"] for m in loaded]
        assert report["requests"][0]["body"]["messageId"] == loaded[-1]["id"]
        self._assert_answered(stored[1])

    @staticmethod
    def _assert_answered(assistant: dict[str, Any]) -> None:
        (tool_part,) = [p for p in assistant["parts"] if p["type"] == "tool-getLocation"]
        assert tool_part["state"] == "output-available"
        assert tool_part["output"] == {"city": "Paris"}
        assert text_of(assistant) == "You are in Paris."
        assert [p["type"] for p in assistant["parts"]] == [
            "step-start",
            "tool-getLocation",
            "step-start",
            "text",
        ]


class TestRicherReplies:
    async def test_server_tools_sources_files_and_signed_reasoning_assemble_as_stored(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        async def weather(args: Any) -> dict[str, Any]:
            return {"city": args["city"], "tempC": 21}

        async def broken(args: Any) -> None:
            raise RuntimeError("the sensor is offline")

        city = {"type": "object", "properties": {"city": {"type": "string"}}}
        server.vault.register_tool("weather", input_schema=city, execute=weather)
        server.vault.register_tool("humidity", input_schema=city, execute=broken)
        provider.enqueue(
            tm.reasoning("Look it up.", provider_metadata={"anthropic": {"signature": "c2lnbmF0dXJl"}}),
            tm.tool_call("weather", {"city": "Paris"}),
            tm.tool_call("humidity", {"city": "Paris"}, stream_input=False),
        )
        provider.enqueue(
            tm.source("https://example.com/paris", "Paris weather"),
            tm.file("image/png", b"\x89PNG\r\n"),
            tm.text("It is 21°C in Paris."),
        )
        report = ok(await client.run("send", [], text="Weather in Paris?"))
        await server.settle()
        stored = await server.messages(client.chat_id)
        same(client, report["messages"], stored)
        kinds = [p["type"] for p in stored[-1]["parts"]]
        assert kinds == [
            "step-start",
            "reasoning",
            "tool-weather",
            "tool-humidity",
            "step-start",
            "source-url",
            "file",
            "text",
        ]
        states = {p["type"]: p.get("state") for p in stored[-1]["parts"]}
        assert states["tool-weather"] == "output-available"
        assert states["tool-humidity"] == "output-error"


class TestResume:
    async def test_after_the_post_is_aborted_a_resume_replays_the_reply_from_its_first_chunk(
        self, client: Client, server: Server, provider: tm.TestProvider, gate: asyncio.Event
    ) -> None:
        provider.enqueue(tm.reasoning("Let me think."), tm.text("Part one."), tm.delay(PAUSE), tm.text(" Part two."))
        aborted = ok(await client.run("send", [], text="Tell me", abortAfterChunks=3))
        received = len(aborted["chunks"])  # 3, or one more already in the pipe when the fetch was aborted
        assert received >= 3
        assistant_id = aborted["chunks"][0]["messageId"]
        # The reply runs on without the client; a reloaded page loads the chat and resumes it.
        chat = await server.stored(client.chat_id)
        assert chat["active"] is True
        loaded = chat["messages"]
        # No partial reply in the loaded chat: clients before 5.0.231 would assemble the replay
        # onto a copy of it and show every part twice.
        assert [m["role"] for m in loaded] == ["user"]
        connected = asyncio.Event()
        resuming = asyncio.create_task(client.run("resume", loaded, on_chunk=lambda _chunk: connected.set()))
        waiting = asyncio.create_task(connected.wait())
        await asyncio.wait({resuming, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        gate.set()  # the model goes on only once the resumed client is following
        resumed = ok(await resuming)
        await server.settle()
        stored = await server.messages(client.chat_id)
        assert resumed["status"] == 200
        assert resumed["requests"][0]["method"] == "GET"
        assert resumed["requests"][0]["url"] == f"/api/chat/{client.chat_id}/stream"
        assert resumed["chunks"][:received] == aborted["chunks"]
        same(client, resumed["assembled"], stored[-1])
        assert stored[-1]["id"] == assistant_id
        assert text_of(stored[-1]) == "Part one. Part two."
        same(client, resumed["messages"], stored)

    async def test_a_resume_when_nothing_runs_is_204_and_leaves_the_list_alone(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Done already."))
        await server.post(client.chat_id, "hello", "u1")
        loaded = await server.messages(client.chat_id)
        report = await client.run("resume", loaded)
        # Not ok(): ai@5.0.0 leaves its status at "submitted" after a 204 (fixed in later 5.x).
        assert "error" not in report, report["error"]
        assert report["status"] == 204
        assert report["messages"] == loaded == await server.messages(client.chat_id)
        assert report["chunks"] == []


class TestErrors:
    async def test_a_model_failure_mid_reply_reaches_the_client_as_its_error(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Partial answer"), tm.error("the model is overloaded", status=529))
        report = await client.run("send", [], text="Hi")
        await server.settle()
        stored = await server.messages(client.chat_id)
        assert report["chatStatus"] == "error"
        assert report["error"] == "the model is overloaded"
        assert report["chunks"][-1] == {"type": "error", "errorText": "the model is overloaded"}
        # The client stops at the error chunk; the partial reply it shows is the one stored.
        same(client, report["messages"], stored)
        assert text_of(stored[-1]) == "Partial answer"

    async def test_a_model_failing_before_its_first_token_leaves_the_same_message_on_both_sides(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        # A rate limit, a bad key or a network failure: the stream has announced the message
        # (`start` with its id), so the client holds it; the store keeps it too, with the error.
        provider.enqueue(tm.error("rate limited: try again in a minute", status=429))
        report = await client.run("send", [], text="Hi")
        await server.settle()
        stored = await server.messages(client.chat_id)
        assert report["chatStatus"] == "error"
        assert report["error"] == "rate limited: try again in a minute"
        same(client, report["messages"], stored)
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[-1]["metadata"]["genvault"]["status"] == "error"
        assert stored[-1]["metadata"]["genvault"]["error"] == "rate limited: try again in a minute"

        # The next turn: the client holds four messages, and so does the server.
        provider.enqueue(tm.text("Back again."))
        report = ok(await client.run("send", report["messages"], text="Again?"))
        await server.settle()
        stored = await server.messages(client.chat_id)
        assert len(stored) == 4
        same(client, report["messages"], stored)

    async def test_a_refused_request_shows_the_servers_sentence_as_the_error(
        self, client: Client, server: Server, provider: tm.TestProvider, gate: asyncio.Event
    ) -> None:
        provider.enqueue(tm.text("Still thinking"), tm.delay(PAUSE))
        await server.vault.chat(client.chat_id, message=user("u1", "first"))
        loaded = await server.messages(client.chat_id)
        report = await client.run("send", loaded, text="second")
        gate.set()
        await server.settle()
        assert report["status"] == 409
        assert report["chatStatus"] == "error"
        assert "still generating" in report["error"]
        assert not report["error"].lstrip().startswith("{")  # a sentence, not a JSON envelope


@pytest.mark.parametrize("stream_compat", ["latest"])
class TestStreamCompatLatest:
    async def test_newer_clients_accept_the_finish_reason_and_ai_5_0_0_rejects_it(
        self, client: Client, server: Server, provider: tm.TestProvider
    ) -> None:
        provider.enqueue(tm.text("Hello."))
        report = await client.run("send", [], text="Hi")
        await server.settle()
        if client.version == "ai-5.0.0":
            assert "finishReason" in report["error"]
            return
        ok(report)
        assert report["chunks"][-1]["finishReason"] == "stop"
        same(client, report["messages"], await server.messages(client.chat_id))
