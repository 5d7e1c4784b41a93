"""OpenTelemetry traces of generations (the GenAI semantic conventions).

On when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(and `OTEL_SDK_DISABLED` is not `true`); needs the `otel` extra (`opentelemetry-sdk` and the
OTLP/HTTP exporter). The Vault composes a `Telemetry` that listens to the engine: one span per
generation, opened when its pending record is written and ended when it is final, whatever the
HTTP request that started it did meanwhile. The caller's trace (a W3C `traceparent` joined by
`genvault.server.tracing`, or the library caller's current OpenTelemetry context) is its parent.
Prompts and outputs go on spans only when opted in (`GENVAULT_OTEL_CAPTURE_CONTENT=true` or
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`): they are personal data.
"""

from __future__ import annotations

from genvault.telemetry._spans import Telemetry, capture_content_from_env, enabled_by_env

__all__ = ["Telemetry", "capture_content_from_env", "enabled_by_env"]
