"""OpenAI image generation (`images.generate`) through the official SDK.

Images come back as base64 in the response (`b64_json`), never as expiring URLs: genvault stores
the bytes in its own blob store at once. Shares the chat provider's SDK client (key, base URL,
transport, retries), so tests drive it with the same `httpx.MockTransport`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import openai

from genvault.errors import InvalidRequest, ProviderError
from genvault.providers.base import StreamUsage
from genvault.providers.images import GeneratedImage, ImageRequest, ImageResult
from genvault.providers.openai import OpenAIProvider

__all__ = ["OpenAIImageProvider"]

logger = logging.getLogger(__name__)

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


class OpenAIImageProvider:
    def __init__(self, chat: OpenAIProvider) -> None:
        self.chat = chat
        self.name = chat.name

    def check(self, request: ImageRequest) -> None:
        if request.model.startswith("dall-e-3") and request.n != 1:
            raise InvalidRequest("dall-e-3 makes one image per request: set n to 1")

    def request_body(self, request: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": request.n}
        if request.size != "auto":
            body["size"] = request.size
        # DALL·E answers with expiring URLs unless asked for base64; GPT Image models always send
        # base64 and refuse the parameter.
        if request.model.startswith("dall-e"):
            body["response_format"] = "b64_json"
        return body

    async def generate_images(self, request: ImageRequest) -> ImageResult:
        generate: Any = self.chat._client.images.generate
        try:
            response = await generate(**self.request_body(request))
        except openai.OpenAIError as exc:
            raise self.chat._provider_error(exc) from exc
        media_type = _MEDIA_TYPES.get(str(getattr(response, "output_format", None) or "png"), "image/png")
        images: list[GeneratedImage] = []
        for item in response.data or []:
            if not item.b64_json:
                raise ProviderError("the image API answered without image data (b64_json)", provider=self.name)
            try:
                images.append(GeneratedImage(media_type, base64.b64decode(item.b64_json, validate=True)))
            except (binascii.Error, ValueError):
                raise ProviderError("the image API sent image data that is not base64", provider=self.name) from None
        if not images:
            raise ProviderError("the image API returned no images", provider=self.name)
        usage = None
        if response.usage is not None:
            usage = StreamUsage(
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                total_tokens=response.usage.total_tokens,
            )
        return ImageResult(images, usage)
