"""Embeddings: text in, vectors out, kept as a generation like every other model call.

An embedding call is a generation of kind `embedding`: the pending row is committed before the
provider is called, the vectors land in the record (one `data-embeddings` part of its result
message, base64 float32 — compact, exact, and what the OpenAI API itself sends), and usage and
cost are priced as input tokens. Because the vectors live in the record, the dedup cache,
idempotency, export, erasure and retention need nothing of their own.
"""

from genvault.embeddings.models import (
    MAX_INPUTS,
    TEST_EMBEDDING_MODEL,
    EmbeddingInput,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResult,
    TestEmbeddingProvider,
)
from genvault.embeddings.service import Embeddings, embedding_result
from genvault.embeddings.vectors import decode_vector, encode_vector

__all__ = [
    "MAX_INPUTS",
    "TEST_EMBEDDING_MODEL",
    "EmbeddingInput",
    "EmbeddingProvider",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Embeddings",
    "TestEmbeddingProvider",
    "decode_vector",
    "embedding_result",
    "encode_vector",
]
