"""`genvault serve` without a Redis URL does not import redis-py (which imports its whole client
and the OpenTelemetry SDK's metrics), and jsonschema waits for the first JSON Schema checked:
start-up of every server process, and of the tests' ones."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_server_does_not_import_redis_or_the_otel_sdk() -> None:
    probe = (
        "import sys, genvault.server.app, genvault.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules if m == 'redis' or m.startswith('redis.')}), "
        "'opentelemetry.sdk' in sys.modules, 'jsonschema' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "False", "False"], done.stdout + done.stderr


def test_redis_errors_include_redis_own_error() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from genvault._redis import redis_errors

    assert issubclass(RedisConnectionError, redis_errors())
    assert issubclass(TimeoutError, redis_errors())
    assert issubclass(OSError, redis_errors())
