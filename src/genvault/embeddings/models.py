"""The embedding protocol, the offline test embedding model, and the adapter that runs an
embedding call through the engine's lifecycle like any other generation."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from genvault.embeddings.vectors import encode_vector
from genvault.errors import InvalidRequest, ProviderError
from genvault.providers.base import ModelRequest, ProviderEvent, StreamData, StreamFinish, StreamUsage
from genvault.providers.testmodel import TEST_PROVIDER, count_tokens

__all__ = [
    "DATA_PART",
    "MAX_INPUTS",
    "TEST_EMBEDDING_MODEL",
    "EmbeddingInput",
    "EmbeddingProvider",
    "EmbeddingRequest",
    "EmbeddingResult",
    "EmbeddingStream",
    "TestEmbeddingProvider",
]

TEST_EMBEDDING_MODEL = "test-embedding"
MAX_INPUTS = 2048  # OpenAI's own limit per request
DATA_PART = "embeddings"  # the record's part is `data-embeddings`

# A text, or token ids (LangChain's OpenAIEmbeddings sends tiktoken ids for OpenAI models).
EmbeddingInput = str | list[int]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str  # the bare model name, as the provider knows it
    inputs: list[EmbeddingInput]
    dimensions: int | None = None


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[str] = field(default_factory=list)  # base64 float32, one per input, in order
    usage: StreamUsage | None = None


@runtime_checkable
class EmbeddingProvider(Protocol):
    name: str

    def check(self, request: EmbeddingRequest) -> None:
        """Raise `InvalidRequest` for a request this model cannot serve (before anything is written)."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult: ...


class EmbeddingStream:
    """An `EmbeddingProvider` seen as a streaming `Provider`: one data event with every vector,
    then usage and the finish."""

    def __init__(self, embeddings: EmbeddingProvider, request: EmbeddingRequest) -> None:
        self.embeddings = embeddings
        self.request = request
        self.name = embeddings.name

    async def stream(self, _request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        result = await self.embeddings.embed(self.request)
        if len(result.vectors) != len(self.request.inputs):
            raise ProviderError(
                f"{self.name} answered {len(result.vectors)} embeddings for {len(self.request.inputs)} inputs",
                provider=self.name,
            )
        yield StreamData(DATA_PART, {"encoding": "float32-base64", "vectors": result.vectors})
        if result.usage is not None:
            yield result.usage
        yield StreamFinish("stop")


_WORD = re.compile(r"\w+", re.UNICODE)


class TestEmbeddingProvider:
    """`offline/test-embedding`: a hashed bag of words, L2-normalized (256 dimensions unless asked
    otherwise). Deterministic, and texts that share words point the same way, so similarity search
    over it behaves like the real thing in tests. No model was involved."""

    __test__ = False  # not a pytest test class
    name = TEST_PROVIDER
    default_dimensions = 256
    max_dimensions = 4096

    def check(self, request: EmbeddingRequest) -> None:
        if request.dimensions is not None and not 1 <= request.dimensions <= self.max_dimensions:
            raise InvalidRequest(f"dimensions must be 1 to {self.max_dimensions} for the offline embedding model")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        size = request.dimensions or self.default_dimensions
        vectors, tokens = [], 0
        for item in request.inputs:
            words = [str(t) for t in item] if isinstance(item, list) else _WORD.findall(item.lower()) or [item]
            tokens += len(item) if isinstance(item, list) else count_tokens(item)
            vectors.append(encode_vector(_hashed(words, size)))
        return EmbeddingResult(vectors, StreamUsage(input_tokens=tokens, output_tokens=0, total_tokens=tokens))


def _hashed(words: Sequence[str], size: int) -> list[float]:
    vector = [0.0] * size
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % size
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
