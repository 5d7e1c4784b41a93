"""`Embeddings`, composed by the Vault: checks an embedding request, resolves its model, and
starts it through the engine's one lifecycle (pending row first, idempotency, dedup, limits)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from genvault import labels
from genvault.cache import CachePolicy
from genvault.embeddings.models import (
    DATA_PART,
    MAX_INPUTS,
    TEST_EMBEDDING_MODEL,
    EmbeddingInput,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingStream,
    TestEmbeddingProvider,
)
from genvault.engine import Engine
from genvault.errors import InvalidRequest, ProviderError
from genvault.providers.base import ModelRequest
from genvault.providers.registry import ProviderRegistry, parse_model_name
from genvault.providers.testmodel import TEST_PROVIDER
from genvault.records import Generation
from genvault.result_message import ResultMessage
from genvault.settings import Settings
from genvault.store.text import check_storable
from genvault.store.users import LOCAL_USER_ID
from genvault.validation import check_id

__all__ = ["Embeddings", "checked_inputs", "embedding_result"]

MAX_INPUT_CHARS = 100_000  # per text; far above any embedding model's context


def checked_inputs(value: Any) -> list[EmbeddingInput]:
    """The inputs of a request (`input` of the OpenAI API): one text, a list of texts, token ids,
    or a list of token id lists; `InvalidRequest` saying what is wrong otherwise."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidRequest("input must be a string, a list of strings, or token ids")
    if not 1 <= len(items) <= MAX_INPUTS:
        raise InvalidRequest(f"input must hold 1 to {MAX_INPUTS} items, got {len(items)}")
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise InvalidRequest(f"input[{index}] is empty: every text to embed needs at least one character")
            if len(item) > MAX_INPUT_CHARS:
                raise InvalidRequest(f"input[{index}] is {len(item)} characters; the limit is {MAX_INPUT_CHARS}")
        elif isinstance(item, list) and item:
            if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**32 for t in item):
                raise InvalidRequest(f"input[{index}]: token ids must be non-negative integers")
        else:
            raise InvalidRequest(f"input[{index}] must be a non-empty string or a non-empty list of token ids")
    check_storable(items, "the input")
    return items


def embedding_result(record: Generation) -> list[str]:
    """The vectors of a complete embedding record, base64 float32 in input order."""
    message = record.result_message or {}
    for part in message.get("parts", []):
        if part.get("type") == f"data-{DATA_PART}":
            vectors = part.get("data", {}).get("vectors")
            if isinstance(vectors, list):
                return [str(v) for v in vectors]
    raise ProviderError(f"generation {record.id} holds no embeddings (status {record.status})")


class Embeddings:
    def __init__(
        self,
        engine: Engine,
        registry: ProviderRegistry,
        settings: Settings,
        providers: Mapping[str, EmbeddingProvider] | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.settings = settings
        self._providers: dict[str, EmbeddingProvider] = dict(providers or {})

    def resolve(self, model_name: str) -> tuple[EmbeddingProvider, str]:
        """The embedding provider for `model_name` (`offline/test-embedding`, `openai/…`, a
        configured OpenAI-compatible server, or an injected one) and the bare model name."""
        provider_name, model = parse_model_name(model_name)
        found = self._providers.get(provider_name)
        if found is None:
            if provider_name == TEST_PROVIDER and provider_name not in self.settings.compatible_providers:
                found = TestEmbeddingProvider()
            elif provider_name == "openai" or provider_name in self.settings.compatible_providers:
                from genvault.embeddings.openai import OpenAIEmbeddingProvider
                from genvault.providers.openai import OpenAIProvider

                chat, _ = self.registry.resolve(model_name)
                if not isinstance(chat, OpenAIProvider):
                    raise InvalidRequest(f"provider {provider_name!r} does not make embeddings")
                found = OpenAIEmbeddingProvider(chat)
            else:
                raise InvalidRequest(
                    f"no embedding models for provider {provider_name!r}; use {TEST_PROVIDER}/{TEST_EMBEDDING_MODEL}, "
                    "openai/text-embedding-3-small or a configured OpenAI-compatible server"
                )
            self._providers[provider_name] = found
        if isinstance(found, TestEmbeddingProvider) and model != TEST_EMBEDDING_MODEL:
            raise InvalidRequest(
                f"the offline provider has one embedding model, {TEST_PROVIDER}/{TEST_EMBEDDING_MODEL}; "
                f"got {model_name!r}"
            )
        return found, model

    async def embed(
        self,
        inputs: Any,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user_id: str = LOCAL_USER_ID,
        idempotency_key: str | None = None,
        cache: CachePolicy | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        request_json: dict[str, Any] | None = None,
    ) -> Generation:
        """Start an embedding call and return its `pending` record at once; `wait(id)` then
        `embedding_result(record)` gives the vectors."""
        items = checked_inputs(inputs)
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
            raise InvalidRequest("dimensions must be an integer")
        if idempotency_key is not None:
            check_id(idempotency_key, "the idempotency key")
        given_labels = labels.checked(tags, metadata)
        model = model or self.settings.default_embedding_model
        provider, bare_model = self.resolve(model)
        request = EmbeddingRequest(model=bare_model, inputs=items, dimensions=dimensions)
        provider.check(request)
        hooks = ResultMessage()
        params: dict[str, Any] = {"embedding": True}
        if dimensions is not None:
            params["dimensions"] = dimensions
        return await self.engine.start(
            kind="embedding",
            user_id=user_id,
            model=model,
            request_json=request_json or {"input": items, **({"dimensions": dimensions} if dimensions else {})},
            # The model request carries the inputs as one text part, so the dedup key (and the
            # limits' worst-case estimate) see exactly what is embedded.
            model_request=ModelRequest(
                model=bare_model,
                messages=[{"role": "user", "content": [{"type": "text", "text": json.dumps(items)}]}],
                params=params,
            ),
            idempotency_key=idempotency_key,
            resolved=(EmbeddingStream(provider, request), bare_model),
            before_insert=hooks.before_insert,
            chunk_sink=hooks.feed,
            snapshot=hooks.snapshot,
            cache=cache,
            labels=given_labels,
        )
