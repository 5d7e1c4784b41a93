"""A real OTLP/HTTP trace receiver for tests: accepts `POST /v1/traces` (protobuf, maybe gzip)
and decodes each body with opentelemetry-proto's `ExportTraceServiceRequest`, the wire format a
collector reads. Spans are kept as plain dicts (hex ids, attribute values unwrapped)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


class Receiver:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        self._cond = threading.Condition()

    def accept(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self._cond:
            self.requests += 1
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "start": span.start_time_unix_nano,
                                "end": span.end_time_unix_nano,
                                "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                                "events": [
                                    {
                                        "name": e.name,
                                        "time": e.time_unix_nano,
                                        "attributes": {kv.key: _value(kv.value) for kv in e.attributes},
                                    }
                                    for e in span.events
                                ],
                                "status_code": span.status.code,
                                "status_message": span.status.message,
                                "resource": resource,
                                "scope": scope_spans.scope.name,
                            }
                        )
            self._cond.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], *, timeout: float = 120.0) -> dict[str, Any]:
        """The first span that matches, waiting for it (a ceiling for a loaded machine)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for span in self.spans:
                    if match(span):
                        return span
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [(s["name"], s["attributes"].get("genvault.generation.id")) for s in self.spans]
                    raise AssertionError(f"no matching span arrived; received {names}")
                self._cond.wait(left)

    def generation_span(self, generation_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        return self.wait_for(lambda s: s["attributes"].get("genvault.generation.id") == generation_id, timeout=timeout)


@contextmanager
def otlp_receiver() -> Iterator[tuple[Receiver, str]]:
    """A running receiver and its base URL (for OTEL_EXPORTER_OTLP_ENDPOINT)."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_response(404)
                self.end_headers()
                return
            receiver.accept(body)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
