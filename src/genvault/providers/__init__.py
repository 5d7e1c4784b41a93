"""Model providers: the protocol, the offline test model and the registry.

The OpenAI and Anthropic adapters live in `genvault.providers.openai` and
`genvault.providers.anthropic`; they are not imported here because their SDKs are optional
extras, and importing this package must not need them.
"""

from genvault.providers.base import (
    FinishReason,
    ModelRequest,
    Provider,
    ProviderEvent,
    StreamFile,
    StreamFinish,
    StreamReasoningDelta,
    StreamSource,
    StreamTextDelta,
    StreamToolCall,
    StreamToolInputDelta,
    StreamToolInputStart,
    StreamUsage,
    ToolSpec,
)
from genvault.providers.registry import ProviderRegistry, parse_model_name
from genvault.providers.testmodel import TEST_MODEL, TEST_PROVIDER, TestProvider

__all__ = [
    "TEST_MODEL",
    "TEST_PROVIDER",
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
    "TestProvider",
    "ToolSpec",
    "parse_model_name",
]
