"""OpenAI images through the official SDK, its transport replaced by `httpx.MockTransport`: the
request genvault sends, and a whole image generation kept through the Vault."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from genvault.errors import ProviderError
from genvault.providers.images import ImageRequest, draw
from genvault.providers.openai import OpenAIProvider
from genvault.providers.openai_images import OpenAIImageProvider

PNG = draw("mock", 0, 16, 16)


def images_response(count: int = 1, **extra: Any) -> httpx.Response:
    body = {
        "created": 1_763_900_000,
        "data": [{"b64_json": base64.b64encode(PNG).decode()} for _ in range(count)],
        "output_format": "png",
        "size": "1024x1024",
        "usage": {
            "input_tokens": 12,
            "output_tokens": 272,
            "total_tokens": 284,
            "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
        },
        **extra,
    }
    return httpx.Response(200, json=body)


@pytest.fixture
def images(http_client: httpx.AsyncClient) -> OpenAIImageProvider:
    return OpenAIImageProvider(OpenAIProvider(api_key="sk-test", http_client=http_client, max_retries=0))


async def test_gpt_image_requests_base64_images_and_reads_usage(server: Any, images: Any) -> None:
    server.responses.append(images_response(2))
    result = await images.generate_images(ImageRequest("gpt-image-1", "a red fox", "1024x1024", 2))
    assert server.last.url == "https://api.openai.com/v1/images/generations"
    assert server.last.json == {"model": "gpt-image-1", "prompt": "a red fox", "n": 2, "size": "1024x1024"}
    assert server.last.headers["authorization"] == "Bearer sk-test"
    assert [(i.media_type, i.data) for i in result.images] == [("image/png", PNG)] * 2
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 272)


async def test_dall_e_is_asked_for_base64_not_urls(server: Any, images: Any) -> None:
    server.responses.append(images_response(1, usage=None))
    result = await images.generate_images(ImageRequest("dall-e-3", "a fox", "auto", 1))
    assert server.last.json == {"model": "dall-e-3", "prompt": "a fox", "n": 1, "response_format": "b64_json"}
    assert result.usage is None


async def test_an_api_error_is_a_provider_error_with_the_apis_sentence(server: Any, images: Any) -> None:
    server.error(400, "openai_401.json")
    with pytest.raises(ProviderError) as info:
        await images.generate_images(ImageRequest("gpt-image-1", "a fox"))
    assert info.value.status == 400


async def test_an_openai_image_generation_is_kept_through_the_vault(
    vault_factory: Any, http_client: httpx.AsyncClient, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server.responses.append(images_response(1))
    vault = await vault_factory(http_client=http_client)
    record = await vault.wait((await vault.generate_image("a red fox", model="openai/gpt-image-1")).id)
    assert record.status == "complete", record.error
    assert (record.provider, record.usage.input_tokens, record.usage.output_tokens) == ("openai", 12, 272)
    [file] = await vault.generation_files(record.id)
    assert record.image_urls == [file.url]
    assert await vault.read_file(file.id, user_id="local") == PNG


async def test_a_failed_openai_image_call_ends_the_record_in_error(
    vault_factory: Any, http_client: httpx.AsyncClient, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server.error(429, "openai_429.json")
    vault = await vault_factory(http_client=http_client)
    record = await vault.wait((await vault.generate_image("a red fox", model="openai/gpt-image-1")).id)
    assert record.status == "error"
    assert record.error
    assert record.image_urls == []
