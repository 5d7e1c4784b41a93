"""The public surface of genvault.providers, pinned (as httpx pins its exported members)."""

from __future__ import annotations

import subprocess
import sys

import genvault.providers


def test_the_exported_names_are_exactly_these_and_all_importable():
    assert set(genvault.providers.__all__) == {
        "FinishReason",
        "ModelRequest",
        "Provider",
        "ProviderEvent",
        "ProviderRegistry",
        "StreamFile",
        "StreamFinish",
        "StreamReasoningDelta",
        "StreamSource",
        "StreamTextDelta",
        "StreamToolCall",
        "StreamToolInputDelta",
        "StreamToolInputStart",
        "StreamUsage",
        "TEST_MODEL",
        "TEST_PROVIDER",
        "TestProvider",
        "ToolSpec",
        "parse_model_name",
    }
    assert len(genvault.providers.__all__) == len(set(genvault.providers.__all__))
    assert all(hasattr(genvault.providers, name) for name in genvault.providers.__all__)


def test_importing_providers_and_pricing_loads_no_optional_sdk():
    # A fresh interpreter: this test process has long since imported the SDKs.
    code = (
        "import sys, genvault.providers, genvault.pricing; "
        "print(sorted(m for m in ('openai', 'anthropic', 'httpx2', 'genai_prices') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)

    assert result.stdout.strip() == "[]"
