"""`Telemetry`: the engine's events as OpenTelemetry spans.

A generation's span starts at its `created_at` (the pending record) and ends at its
`finished_at`, with the attributes of the final record; a tool genvault runs on the server is a
child span (`execute_tool`), a tool the client runs is an event on the generation's span (genvault
never sees it run). A record this process did not start (one the sweeper found interrupted) gets
its span whole, from the record's own times.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from genvault.money import usd_text
from genvault.records import Generation
from genvault.tools import ToolEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = ["Telemetry", "capture_content_from_env", "enabled_by_env"]

log = logging.getLogger(__name__)

CAPTURE_ENV = "GENVAULT_OTEL_CAPTURE_CONTENT"
# The OpenTelemetry GenAI instrumentations' own switch, honoured too.
STANDARD_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# At most this many spans open at once (a finalize that never came, e.g. a record finalized by
# another process): the oldest is ended as it is dropped, never kept for ever.
MAX_OPEN_SPANS = 10_000


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def enabled_by_env(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if _true(env.get("OTEL_SDK_DISABLED")):
        return False
    return any((env.get(name) or "").strip() for name in ENDPOINT_ENVS)


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return _true(env.get(CAPTURE_ENV)) or _true(env.get(STANDARD_CAPTURE_ENV))


def _ns(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000_000)


def _operation(record: Generation) -> str:
    if record.kind == "chat" or "api" in record.request:  # the `/v1` gateway: chat-shaped APIs
        return "chat"
    if record.kind == "image":
        return "generate_content"
    return "text_completion"


def _bare_model(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


def _error_type(record: Generation) -> str | None:
    if record.status == "error":
        return "internal_error" if (record.error or "").startswith("internal error") else "provider_error"
    if record.status == "interrupted":
        return "interrupted"
    return None


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append({"type": "text", "content": part["text"]})
    return parts


def _input_messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's messages in the GenAI conventions' JSON shape (text parts only)."""
    if isinstance(request.get("prompt"), str):
        return [{"role": "user", "parts": _text_parts(request["prompt"])}]
    if isinstance(request.get("message"), dict):  # a chat turn: the message it sent
        message = request["message"]
        return [{"role": message.get("role", "user"), "parts": _text_parts(message.get("parts"))}]
    body = request.get("body")  # the `/v1` gateway: the provider-shaped body
    raw = body.get("messages", body.get("input")) if isinstance(body, dict) else None
    if isinstance(raw, str):
        return [{"role": "user", "parts": _text_parts(raw)}]
    out = []
    for message in raw if isinstance(raw, list) else []:
        if isinstance(message, dict):
            out.append({"role": message.get("role", "user"), "parts": _text_parts(message.get("content"))})
    return out


class Telemetry:
    """Listens to an engine (`attach`) and turns its generations into spans."""

    def __init__(self, provider: TracerProvider, *, capture_content: bool = False, owned: bool = True) -> None:
        self.provider = provider
        self.capture_content = capture_content
        self._owned = owned
        self._tracer: Tracer = provider.get_tracer("genvault")
        self._open: dict[str, Span] = {}

    @classmethod
    def from_env(cls, *, capture_content: bool = False) -> Telemetry | None:
        """A `Telemetry` exporting over OTLP/HTTP as the standard `OTEL_*` variables say, or None
        when no OTLP endpoint is set. Content is captured when `capture_content` or the
        environment (`GENVAULT_OTEL_CAPTURE_CONTENT`, the GenAI standard variable) says so."""
        if not enabled_by_env():
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise RuntimeError(
                f"an OTLP endpoint is set but OpenTelemetry is not installed ({exc.name}): "
                "install genvault with the `otel` extra (pip install 'genvault[otel]')"
            ) from None
        # `service.name` from OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES when set (the SDK reads them).
        named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
        resource = Resource.create({} if named else {"service.name": "genvault"})
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, capture_content=capture_content or capture_content_from_env())

    def attach(self, engine: Any) -> None:
        """Listen to `engine` (a `genvault.engine.Engine`)."""
        engine.start_listeners.append(self.started)
        engine.tool_listeners.append(self.tool)
        engine.listeners.append(self.finished)

    # -- the engine's events ------------------------------------------------------------------

    def started(self, record: Generation) -> None:
        """A pending record: its span opens, a child of the current context (the caller's)."""
        self._open[record.id] = self._span(record)
        while len(self._open) > MAX_OPEN_SPANS:
            oldest = next(iter(self._open))
            self._open.pop(oldest).end()

    def tool(self, event: ToolEvent) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        parent = self._open.get(event.generation_id)
        if parent is None:
            return
        call = event.call
        attrs: dict[str, Any] = {
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.type": "function",
        }
        if self.capture_content:
            attrs["gen_ai.tool.call.arguments"] = json.dumps(call.input, ensure_ascii=False, default=str)
        if event.began is None:  # the client runs it: all genvault knows is that it was asked for
            parent.add_event("gen_ai.tool.call", {**attrs, "genvault.tool.runs_on": "client"})
            return
        span = self._tracer.start_span(
            f"execute_tool {call.name}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.INTERNAL,
            start_time=_ns(event.began),
            attributes={"gen_ai.operation.name": "execute_tool", **attrs},
        )
        output = event.output or {}
        if event.failed:
            text = str(output.get("errorText", ""))
            name = text.split(":", 1)[0]
            span.set_attribute("error.type", name if name.isidentifier() else "tool_error")
            span.set_status(Status(StatusCode.ERROR, text[:500]))
        elif self.capture_content:
            span.set_attribute("gen_ai.tool.call.result", json.dumps(output.get("output"), ensure_ascii=False))
        span.end(end_time=_ns(event.ended))

    def finished(self, record: Generation) -> None:
        """A final record: its span gets the outcome and ends at the record's `finished_at`."""
        span = self._open.pop(record.id, None) or self._span(record)
        self._finish(span, record)

    def swept(self, records: list[Generation]) -> None:
        """Records the sweeper marked interrupted (their process died with their spans)."""
        for record in records:
            self.finished(record)

    def shutdown(self) -> None:
        """End what is still open and flush the exporter (the Vault's `aclose`)."""
        for span in self._open.values():
            span.set_attribute("genvault.status", "unknown")
            span.end()
        self._open.clear()
        if self._owned:
            self.provider.shutdown()

    # -- spans --------------------------------------------------------------------------------

    def _span(self, record: Generation) -> Span:
        from opentelemetry.trace import SpanKind

        operation = _operation(record)
        model = _bare_model(record.model)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": record.provider,
            "gen_ai.request.model": model,
            "genvault.generation.id": record.id,
            "genvault.generation.kind": record.kind,
        }
        if record.chat_id:
            attrs["gen_ai.conversation.id"] = record.chat_id
        if record.tags:
            attrs["genvault.tags"] = list(record.tags)
        params = record.request.get("params")
        if isinstance(params, dict):
            for key, name in (
                ("temperature", "gen_ai.request.temperature"),
                ("top_p", "gen_ai.request.top_p"),
                ("max_tokens", "gen_ai.request.max_tokens"),
                ("seed", "gen_ai.request.seed"),
                ("stop", "gen_ai.request.stop_sequences"),
            ):
                if params.get(key) is not None:
                    attrs[name] = params[key]
        if self.capture_content:
            attrs["gen_ai.input.messages"] = json.dumps(_input_messages(record.request), ensure_ascii=False)
            if isinstance(record.request.get("system"), str):
                attrs["gen_ai.system_instructions"] = json.dumps(
                    [{"type": "text", "content": record.request["system"]}], ensure_ascii=False
                )
        return self._tracer.start_span(
            f"{operation} {model}", kind=SpanKind.CLIENT, start_time=_ns(record.created_at), attributes=attrs
        )

    def _finish(self, span: Span, record: Generation) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("gen_ai.response.model", _bare_model(record.model))
        span.set_attribute("gen_ai.response.id", record.id)
        span.set_attribute("genvault.status", record.status)
        if record.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [record.finish_reason])
        usage = record.usage
        for value, name in (
            (usage.input_tokens, "gen_ai.usage.input_tokens"),
            (usage.output_tokens, "gen_ai.usage.output_tokens"),
            (usage.cached_input_tokens, "gen_ai.usage.cache_read.input_tokens"),
            (usage.cache_write_tokens, "gen_ai.usage.cache_creation.input_tokens"),
            (usage.reasoning_tokens, "genvault.usage.reasoning_tokens"),
        ):
            if value is not None:
                span.set_attribute(name, value)
        if usage.estimated:
            span.set_attribute("genvault.usage.estimated", True)
        if record.cost_usd is not None:
            span.set_attribute("genvault.cost_usd", usd_text(record.cost_usd))
        if record.cached_from:
            span.set_attribute("genvault.cached_from", record.cached_from)
        if record.first_token_at is not None:
            ttft = (record.first_token_at - record.created_at).total_seconds()
            span.add_event(
                "gen_ai.first_token",
                {"gen_ai.response.time_to_first_chunk": ttft},
                timestamp=_ns(record.first_token_at),
            )
        if self.capture_content:
            output = record.result_text or ""
            if record.kind == "chat" and record.result_message:
                output = "".join(
                    str(p.get("text", "")) for p in record.result_message.get("parts", []) if p.get("type") == "text"
                )
            span.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [{"role": "assistant", "parts": _text_parts(output), "finish_reason": record.finish_reason}],
                    ensure_ascii=False,
                ),
            )
        error_type = _error_type(record)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, (record.error or record.status)[:500]))
        span.end(end_time=_ns(record.finished_at))
