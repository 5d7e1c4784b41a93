"""OpenAI (and OpenAI-compatible) embeddings through the official SDK, sharing the chat
provider's client (key, base URL, transport, retries)."""

from __future__ import annotations

from typing import Any

import openai

from genvault.embeddings.models import EmbeddingRequest, EmbeddingResult
from genvault.embeddings.vectors import encode_vector
from genvault.errors import InvalidRequest, ProviderError
from genvault.providers.base import StreamUsage
from genvault.providers.openai import OpenAIProvider

__all__ = ["OpenAIEmbeddingProvider"]


class OpenAIEmbeddingProvider:
    def __init__(self, chat: OpenAIProvider) -> None:
        self.chat = chat
        self.name = chat.name

    def check(self, request: EmbeddingRequest) -> None:
        if request.dimensions is not None and request.dimensions < 1:
            raise InvalidRequest("dimensions must be a positive integer")

    def request_body(self, request: EmbeddingRequest) -> dict[str, Any]:
        # base64 (little-endian float32) is what the OpenAI SDK itself asks for: a quarter of the
        # bytes of a float list, and exactly the form genvault keeps.
        body: dict[str, Any] = {"model": request.model, "input": request.inputs, "encoding_format": "base64"}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        return body

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        create: Any = self.chat._client.embeddings.create
        try:
            response = await create(**self.request_body(request))
        except openai.OpenAIError as exc:
            raise self.chat._provider_error(exc) from exc
        items = sorted(response.data or [], key=lambda item: item.index)
        vectors: list[str] = []
        for item in items:
            embedding = item.embedding
            if isinstance(embedding, str):  # base64, as asked
                vectors.append(embedding)
            elif isinstance(embedding, list):  # a compatible server that ignores encoding_format
                vectors.append(encode_vector([float(v) for v in embedding]))
            else:
                raise ProviderError("the embeddings API answered an embedding that is neither base64 nor numbers")
        usage = None
        if response.usage is not None:
            tokens = response.usage.prompt_tokens
            usage = StreamUsage(input_tokens=tokens, output_tokens=0, total_tokens=response.usage.total_tokens)
        return EmbeddingResult(vectors, usage)
