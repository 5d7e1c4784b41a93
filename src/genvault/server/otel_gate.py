"""FastAPI's per-request "is OpenTelemetry configured?" check, answered without its cost when nothing is.

`FastAPI.__call__` (fastapi 0.165, `applications.py`, `__call__`) asks
`NativeTelemetry.enabled()` (`fastapi/telemetry/_asgi.py`) on every HTTP request, a chat turn's
`POST /api/chat` included, before anything of genvault's runs. That method calls OpenTelemetry's
`trace.get_tracer_provider()`, `metrics.get_meter_provider()` and `_logs.get_logger_provider()`:
each, while no global provider is set, tests `OTEL_PYTHON_<KIND>_PROVIDER in os.environ`, which is
`os._Environ`'s Python-level `__getitem__` raising and catching a `KeyError`; then FastAPI's
`_unconfigured` compares the proxy provider's class. ~7 µs a request on this machine (timeit), the
same whether telemetry is on or off, and for nothing while it is off.

`fast_enabled` gives the same answer: when the app was given no provider and OpenTelemetry's
three global providers are unset (its modules' own globals, read as `get_*_provider` reads them)
and none of the three environment variables that would load one is set (a dict look-up in the
environment's own mapping, not the `KeyError` path), FastAPI's `enabled()` is False for certain:
every clause of it needs a provider given or a global one configured. Otherwise it asks FastAPI's
own method, so a provider set at any time (before or after the app was made, globally or through
the environment) turns FastAPI's HTTP telemetry on exactly as before. Installed only when every
private name it reads exists (else FastAPI's method stays).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["install"]

_NAMES = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER", "OTEL_PYTHON_LOGGER_PROVIDER")


def fast_enabled(native: Any) -> Callable[[], bool] | None:
    """A drop-in for `native.enabled` (a FastAPI `NativeTelemetry`), or None if this FastAPI or
    OpenTelemetry does not have what it reads."""
    try:
        from opentelemetry import trace
        from opentelemetry._logs import _internal as logs_internal
        from opentelemetry.metrics import _internal as metrics_internal

        config = native.config
        original = native.enabled
        environ: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]
        keys = tuple(os.environ.encodekey(name) for name in _NAMES)
        for module, name in (
            (trace, "_TRACER_PROVIDER"),
            (metrics_internal, "_METER_PROVIDER"),
            (logs_internal, "_LOGGER_PROVIDER"),
        ):
            getattr(module, name)
        for name in ("tracer_provider", "meter_provider", "logger_provider"):
            config[name]
    except (ImportError, AttributeError, KeyError, TypeError):
        return None
    trace_key, meter_key, logger_key = keys

    def enabled() -> bool:
        if (
            trace._TRACER_PROVIDER is None
            and metrics_internal._METER_PROVIDER is None
            and logs_internal._LOGGER_PROVIDER is None
            and config["tracer_provider"] is None
            and config["meter_provider"] is None
            and config["logger_provider"] is None
            and trace_key not in environ
            and meter_key not in environ
            and logger_key not in environ
        ):
            return False
        result: bool = original()
        return result

    return enabled


def install(app: Any) -> None:
    """`fast_enabled` in place of the app's `NativeTelemetry.enabled` (FastAPI ≥ 0.165), if it can."""
    native = getattr(app, "_native_telemetry", None)
    if native is None:
        return
    enabled = fast_enabled(native)
    if enabled is not None:
        native.enabled = enabled
