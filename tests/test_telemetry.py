"""OpenTelemetry: one span per generation (GenAI conventions), exported over OTLP/HTTP to a real
receiver started by the test (`otlp_receiver`), which decodes the protobuf a collector reads.

The library tests set the standard `OTEL_EXPORTER_OTLP_ENDPOINT` and let the Vault build its
exporter from it; the last test runs `genvault serve` as a process with the variables set and
joins a W3C `traceparent` on `/api/generate`, `/api/chat` and the `/v1` gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from genvault.providers import testmodel as tm
from genvault.telemetry import Telemetry, enabled_by_env
from otlp_receiver import Receiver, otlp_receiver
from redis_server import free_port

ERROR, CLIENT, INTERNAL = 2, 3, 1  # the protobuf's Status.code and Span.kind numbers


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with otlp_receiver() as (rcv, url):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv(STANDARD_CAPTURE, raising=False)
        yield rcv


STANDARD_CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def remote_parent() -> tuple[str, str, Any]:
    trace_id, span_id = secrets.randbits(128), secrets.randbits(64)
    parent = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1)))
    return f"{trace_id:032x}", f"{span_id:016x}", trace.set_span_in_context(parent)


class TestSwitch:
    def test_telemetry_is_on_only_with_an_otlp_endpoint(self) -> None:
        assert not enabled_by_env({})
        assert enabled_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
        assert enabled_by_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
        assert not enabled_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})

    async def test_a_vault_without_an_endpoint_has_no_telemetry(
        self, vault_factory: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        vault = await vault_factory()
        assert vault.telemetry is None
        assert vault.engine.start_listeners == []


class TestGenerationSpans:
    async def test_a_generation_is_a_client_span_inside_the_callers_trace(
        self, receiver: Receiver, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("Hello there"), tm.usage(input=7, output=3), tm.finish("stop"))
        vault = await vault_factory(providers={"offline": provider})
        assert isinstance(vault.telemetry, Telemetry)
        trace_id, parent_id, ctx = remote_parent()
        token = context.attach(ctx)
        try:
            record = await vault.generate(
                "Say hello", params={"temperature": 0.5, "max_tokens": 20}, tags=["team-a"], system="Be brief"
            )
        finally:
            context.detach(token)
        final = await vault.wait(record.id)
        span = await asyncio.to_thread(receiver.generation_span, record.id)

        assert span["name"] == "text_completion test-model"
        assert span["kind"] == CLIENT
        assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent_id)
        attrs = span["attributes"]
        assert attrs["gen_ai.operation.name"] == "text_completion"
        assert attrs["gen_ai.provider.name"] == "offline"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "test-model"
        assert attrs["gen_ai.response.id"] == record.id
        assert attrs["gen_ai.usage.input_tokens"] == 7
        assert attrs["gen_ai.usage.output_tokens"] == 3
        assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
        assert attrs["gen_ai.request.temperature"] == 0.5
        assert attrs["gen_ai.request.max_tokens"] == 20
        assert attrs["genvault.status"] == "complete"
        assert attrs["genvault.tags"] == ["team-a"]
        assert "error.type" not in attrs
        assert span["resource"]["service.name"] == "genvault"
        # The span covers the record's life, and the first token is an event at its own time.
        assert final.finished_at is not None
        assert final.first_token_at is not None
        assert span["start"] == int(final.created_at.timestamp() * 1e9)
        assert span["end"] == int(final.finished_at.timestamp() * 1e9)
        (first,) = [e for e in span["events"] if e["name"] == "gen_ai.first_token"]
        assert first["time"] == int(final.first_token_at.timestamp() * 1e9)
        assert first["attributes"]["gen_ai.response.time_to_first_chunk"] >= 0
        # Not opted in: no prompt, no system prompt, no output on the span.
        assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} & set(attrs)

    async def test_prompts_and_outputs_are_on_the_span_only_when_opted_in(
        self, receiver: Receiver, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("Bonjour"))
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"otel_capture_content": True})
        record = await vault.generate("Greet me in French", system="Be brief")
        await vault.wait(record.id)
        attrs = (await asyncio.to_thread(receiver.generation_span, record.id))["attributes"]
        assert '"Greet me in French"' in attrs["gen_ai.input.messages"]
        assert '"Be brief"' in attrs["gen_ai.system_instructions"]
        assert '"Bonjour"' in attrs["gen_ai.output.messages"]

    async def test_a_gateway_calls_messages_are_its_captured_input(
        self, receiver: Receiver, vault_factory: Any
    ) -> None:
        from genvault.server import create_app

        vault = await vault_factory(settings_overrides={"otel_capture_content": True})
        transport = httpx.ASGITransport(app=create_app(vault=vault))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            body = {"model": "offline/test-model", "messages": [{"role": "user", "content": "hi gateway"}]}
            answered = await http.post("/v1/chat/completions", json=body)
        assert answered.status_code == 200, answered.text
        generation_id = answered.headers["X-Genvault-Generation-Id"]
        await vault.wait(generation_id)
        attrs = (await asyncio.to_thread(receiver.generation_span, generation_id))["attributes"]
        assert attrs["gen_ai.operation.name"] == "chat"
        assert json.loads(attrs["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "hi gateway"}]}
        ]
        assert answered.json()["choices"][0]["message"]["content"] in attrs["gen_ai.output.messages"]

    async def test_the_standard_genai_variable_also_opts_in(
        self, receiver: Receiver, vault_factory: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(STANDARD_CAPTURE, "true")
        vault = await vault_factory()
        assert vault.telemetry is not None
        assert vault.telemetry.capture_content

    async def test_a_provider_error_ends_the_span_with_an_error_type(
        self, receiver: Receiver, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("Partial"), tm.error("overloaded", status=529))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("x")
        assert (await vault.wait(record.id)).status == "error"
        span = await asyncio.to_thread(receiver.generation_span, record.id)
        assert span["attributes"]["error.type"] == "provider_error"
        assert span["attributes"]["genvault.status"] == "error"
        assert span["status_code"] == ERROR
        assert "overloaded" in span["status_message"]

    async def test_a_cancelled_generation_ends_its_span_when_it_is_cancelled(
        self, receiver: Receiver, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("partial words"), tm.delay(600), tm.text(" never sent"))
        vault = await vault_factory(providers={"offline": provider})
        record = await vault.generate("x")
        for _ in range(12000):  # a ceiling for a loaded machine: until the first words streamed
            if (await vault.get_generation(record.id)).status == "streaming":
                break
            await asyncio.sleep(0.01)
        assert receiver.spans == []  # still running: its span is open, not exported
        await vault.cancel(record.id)
        span = await asyncio.to_thread(receiver.generation_span, record.id)
        assert span["attributes"]["genvault.status"] == "cancelled"
        assert "error.type" not in span["attributes"]

    async def test_an_image_generation_is_generate_content(self, receiver: Receiver, vault_factory: Any) -> None:
        vault = await vault_factory()
        record = await vault.generate_image("a red square")
        assert (await vault.wait(record.id)).status == "complete"
        span = await asyncio.to_thread(receiver.generation_span, record.id)
        assert span["name"] == "generate_content test-image"
        assert span["attributes"]["gen_ai.operation.name"] == "generate_content"

    async def test_a_generation_cut_off_by_shutdown_ends_its_span_interrupted_before_the_flush(
        self, receiver: Receiver, settings_factory: Any, database: tuple[str, str | None]
    ) -> None:
        from genvault.vault import Vault

        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("partial words"), tm.delay(600), tm.text(" never sent"))
        vault = Vault(settings_factory(), database_schema=database[1], providers={"offline": provider})
        await vault.start()
        try:
            record = await vault.generate("x")
            for _ in range(12000):  # a ceiling for a loaded machine: until the first words streamed
                if (await vault.get_generation(record.id)).status == "streaming":
                    break
                await asyncio.sleep(0.01)
        finally:
            await vault.aclose(grace_seconds=0)
        # `aclose` flushed the exporter: the span is there without waiting for the next batch.
        (span,) = [s for s in receiver.spans if s["attributes"].get("genvault.generation.id") == record.id]
        assert span["attributes"]["genvault.status"] == "interrupted"
        assert span["attributes"]["error.type"] == "interrupted"
        assert span["status_code"] == ERROR


class TestToolSpans:
    async def test_tools_run_here_are_child_spans_and_client_tools_are_events(
        self, receiver: Receiver, vault_factory: Any
    ) -> None:
        provider = tm.TestProvider(tokens_per_second=0)
        vault = await vault_factory(providers={"offline": provider}, settings_overrides={"otel_capture_content": True})

        async def weather(args: Any) -> dict[str, Any]:
            return {"city": args["city"], "tempC": 21}

        async def broken(args: Any) -> Any:
            raise LookupError("no such station")

        vault.register_tool("weather", execute=weather)
        vault.register_tool("station", execute=broken)
        vault.register_tool("getLocation")  # the client runs it
        provider.enqueue(
            tm.tool_call("weather", {"city": "Paris"}, call_id="w1"), tm.tool_call("station", {}, call_id="s1")
        )
        provider.enqueue(tm.text("21°C"), tm.tool_call("getLocation", {}, call_id="g1"))
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "weather?"}]}
        turn = await vault.chat("c1", message=message)
        await vault.wait(turn.generation.id)
        generation = await asyncio.to_thread(receiver.generation_span, turn.generation.id)
        assert generation["name"] == "chat test-model"
        assert generation["attributes"]["gen_ai.conversation.id"] == "c1"
        tools = {
            s["attributes"]["gen_ai.tool.call.id"]: s
            for s in [
                await asyncio.to_thread(
                    receiver.wait_for, lambda s, i=i: s["attributes"].get("gen_ai.tool.call.id") == i
                )
                for i in ("w1", "s1")
            ]
        }
        for span in tools.values():
            assert span["trace_id"] == generation["trace_id"]
            assert span["parent_span_id"] == generation["span_id"]
            assert span["kind"] == INTERNAL
            assert span["attributes"]["gen_ai.operation.name"] == "execute_tool"
            assert generation["start"] <= span["start"] <= span["end"] <= generation["end"]
        assert tools["w1"]["name"] == "execute_tool weather"
        assert '"tempC": 21' in tools["w1"]["attributes"]["gen_ai.tool.call.result"]
        assert "error.type" not in tools["w1"]["attributes"]
        assert tools["s1"]["attributes"]["error.type"] == "LookupError"
        assert tools["s1"]["status_code"] == ERROR
        (asked,) = [e for e in generation["events"] if e["name"] == "gen_ai.tool.call"]
        assert asked["attributes"]["gen_ai.tool.name"] == "getLocation"
        assert asked["attributes"]["genvault.tool.runs_on"] == "client"


# -- `genvault serve` as a process -------------------------------------------------------------


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def start_serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "genvault", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


@pytest.mark.long
@pytest.mark.slow
async def test_genvault_serve_exports_spans_that_join_the_callers_traceparent(tmp_path: Path) -> None:
    port = free_port()
    with otlp_receiver() as (receiver, url):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GENVAULT_", "OTEL_"))},
            "GENVAULT_DATA_DIR": str(tmp_path),
            "GENVAULT_PORT": str(port),
            "GENVAULT_TEST_MODEL_TPS": "20",  # the chat reply streams on after its request hung up
            "OTEL_EXPORTER_OTLP_ENDPOINT": url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "genvault-under-test",
        }
        log = tmp_path / "serve.log"
        proc = start_serve(port, env, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                for _ in range(1200):  # imports alone take seconds on a loaded machine
                    assert proc.poll() is None, log.read_text()
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                ids: dict[str, tuple[str, str, str]] = {}

                t_gen, s_gen, header = traceparent()
                response = await http.post("/api/generate", json={"prompt": "one two"}, headers={"traceparent": header})
                assert response.status_code == 201, response.text
                ids["generate"] = (response.json()["id"], t_gen, s_gen)

                t_chat, s_chat, header = traceparent()
                body = {
                    "id": "chat-otel",
                    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "tell me more"}]}],
                    "trigger": "submit-message",
                }
                async with http.stream("POST", "/api/chat", json=body, headers={"traceparent": header}) as streamed:
                    assert streamed.status_code == 200
                    chat_generation = streamed.headers["X-Genvault-Generation-Id"]
                    async for line in streamed.aiter_lines():
                        if '"text-delta"' in line:
                            break  # hang up: the generation goes on, and so does its span
                ids["chat"] = (chat_generation, t_chat, s_chat)

                t_v1, s_v1, header = traceparent()
                response = await http.post(
                    "/v1/chat/completions",
                    json={"model": "offline/test-model", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"traceparent": header},
                )
                assert response.status_code == 200, response.text
                ids["v1"] = (response.headers["X-Genvault-Generation-Id"], t_v1, s_v1)

                response = await http.post("/api/generate", json={"prompt": "no caller trace"})
                root_id = response.json()["id"]

                spans = {
                    name: await asyncio.to_thread(receiver.generation_span, gid) for name, (gid, _, _) in ids.items()
                }
                for name, (gid, trace_id, parent_id) in ids.items():
                    span = spans[name]
                    assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent_id), name
                    assert span["attributes"]["gen_ai.response.id"] == gid
                    assert span["attributes"]["genvault.status"] == "complete", name
                    assert span["attributes"]["gen_ai.usage.output_tokens"] > 0
                    assert span["resource"]["service.name"] == "genvault-under-test"
                    assert "gen_ai.input.messages" not in span["attributes"]
                assert spans["generate"]["attributes"]["gen_ai.operation.name"] == "text_completion"
                assert spans["chat"]["attributes"]["gen_ai.operation.name"] == "chat"
                assert spans["chat"]["attributes"]["gen_ai.conversation.id"] == "chat-otel"
                assert spans["v1"]["attributes"]["gen_ai.operation.name"] == "chat"
                # The chat turn outlived its request: its span ended with the generation.
                chat_record = (await http.get(f"/api/generations/{ids['chat'][0]}")).json()
                assert chat_record["status"] == "complete"
                assert f"OpenTelemetry: a span per generation to {url} (without prompts" in log.read_text()
                root = await asyncio.to_thread(receiver.generation_span, root_id)
                assert root["parent_span_id"] == ""
                assert root["trace_id"] not in {t for _, t, _ in ids.values()}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
async def test_a_record_the_sweeper_finds_interrupted_gets_its_span_then(receiver: Receiver, tmp_path: Path) -> None:
    """Its process was killed with its open span; the process that sweeps it sends one whole,
    from the record's own times."""
    from sqlalchemy import select

    from genvault.settings import Settings
    from genvault.store import Store
    from genvault.store.schema import generations
    from genvault.vault import Vault

    url = f"sqlite:///{tmp_path / 'genvault.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GENVAULT_", "OTEL_"))},
        "GENVAULT_DATABASE_URL": url,
        "GENVAULT_DATA_DIR": str(tmp_path),
        "GENVAULT_TEST_MODEL_TPS": "10",
        "GENVAULT_CHECKPOINT_MS": "50",
    }
    proc = start_generate(env, tmp_path / "child.err")
    store = Store(url)
    try:
        row = None
        for _ in range(1200):  # a ceiling (120 s) for a loaded machine
            await asyncio.sleep(0.1)
            try:
                async with store.read() as conn:
                    row = (await conn.execute(select(generations))).mappings().first()
            except Exception:
                continue  # the child has not made the schema yet
            if row is not None and row["status"] == "streaming":
                break
        assert row is not None, (tmp_path / "child.err").read_text()
        assert row["status"] == "streaming", (tmp_path / "child.err").read_text()
    finally:
        proc.kill()
        proc.wait()
        await store.aclose()
    async with Vault(Settings(database_url=url, data_dir=tmp_path, lease_seconds=0.5)) as vault:
        record = await vault.get_generation(row["id"])
        for _ in range(1200):  # the dead process is noticed once its heartbeat is older than the lease
            if record.status == "interrupted":
                break
            await asyncio.sleep(0.1)
            record = await vault.get_generation(row["id"])
    assert record.status == "interrupted"
    span = await asyncio.to_thread(receiver.generation_span, record.id)
    assert span["attributes"]["error.type"] == "interrupted"
    assert span["start"] == int(record.created_at.timestamp() * 1e9)
    assert span["parent_span_id"] == ""


def start_generate(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "genvault", "generate", "Tell me something long enough to be killed midway."],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


async def test_an_endpoint_without_the_otel_extra_stops_start_up_with_how_to_install_it(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"genvault\[otel\]"):
        Telemetry.from_env()
