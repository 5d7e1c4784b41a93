"""Image models: the small protocol, the offline test image model, and the adapter that lets the
engine run an image call like any other generation (pending row, lease, finalize, cancel).

An `ImageProvider` turns an `ImageRequest` into images (bytes + media type) and usage. The engine
never sees base64 for them: `ImageStream` yields each image as a `StreamFile`, and the Vault's
file sink stores it in the blob store and puts its permanent URL in the record.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from genvault.errors import InvalidRequest
from genvault.providers._png import encode_png
from genvault.providers.base import ModelRequest, ProviderEvent, StreamFile, StreamFinish, StreamUsage
from genvault.providers.testmodel import TEST_PROVIDER, count_tokens

__all__ = [
    "SIZE_PATTERN",
    "TEST_IMAGE_MODEL",
    "GeneratedImage",
    "ImageProvider",
    "ImageRequest",
    "ImageResult",
    "ImageStream",
    "TestImageProvider",
    "image_request_from",
]

TEST_IMAGE_MODEL = "test-image"
SIZE_PATTERN = re.compile(r"^(auto|[1-9][0-9]{0,3}x[1-9][0-9]{0,3})$")


@dataclass(frozen=True, slots=True)
class ImageRequest:
    model: str  # the bare model name, as the provider knows it
    prompt: str
    size: str = "auto"  # `WIDTHxHEIGHT` or `auto`
    n: int = 1


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    media_type: str
    data: bytes


@dataclass(slots=True)
class ImageResult:
    images: list[GeneratedImage] = field(default_factory=list)
    usage: StreamUsage | None = None


@runtime_checkable
class ImageProvider(Protocol):
    name: str

    def check(self, request: ImageRequest) -> None:
        """Raise `InvalidRequest` for a request this model cannot serve (before anything is written)."""

    async def generate_images(self, request: ImageRequest) -> ImageResult: ...


def image_request_from(request: ModelRequest) -> ImageRequest:
    """The image request the Vault packed into a `ModelRequest` (prompt as the user text)."""
    prompt = "".join(
        part.get("text", "") for m in request.messages for part in m.get("content", []) if part.get("type") == "text"
    )
    return ImageRequest(
        model=request.model,
        prompt=prompt,
        size=str(request.params.get("size", "auto")),
        n=int(request.params.get("n", 1)),
    )


class ImageStream:
    """An `ImageProvider` seen as a streaming `Provider`: one file event per image, then usage."""

    def __init__(self, images: ImageProvider) -> None:
        self.images = images
        self.name = images.name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        result = await self.images.generate_images(image_request_from(request))
        for image in result.images:
            yield StreamFile(image.media_type, image.data)
        if result.usage is not None:
            yield result.usage
        yield StreamFinish("stop")


class TestImageProvider:
    """`offline/test-image`: draws a real PNG from the prompt, the same picture for the same
    prompt (and index), so records made with it are reproducible. No model was involved."""

    __test__ = False  # not a pytest test class
    name = TEST_PROVIDER
    max_side = 1024

    def __init__(self) -> None:
        self.calls: list[ImageRequest] = []

    def _dimensions(self, size: str) -> tuple[int, int]:
        if size == "auto":
            return 256, 256
        width, height = (int(v) for v in size.split("x"))
        return width, height

    def check(self, request: ImageRequest) -> None:
        width, height = self._dimensions(request.size)
        if not (8 <= width <= self.max_side and 8 <= height <= self.max_side):
            raise InvalidRequest(
                f"the offline test image model draws 8 to {self.max_side} pixels a side; got {request.size}"
            )

    async def generate_images(self, request: ImageRequest) -> ImageResult:
        self.calls.append(request)
        width, height = self._dimensions(request.size)
        images = [GeneratedImage("image/png", draw(request.prompt, i, width, height)) for i in range(request.n)]
        tokens = count_tokens(request.prompt)
        return ImageResult(images, StreamUsage(input_tokens=tokens, output_tokens=0, total_tokens=tokens))


def draw(prompt: str, index: int, width: int, height: int) -> bytes:
    """An 8×8 grid of colored cells chosen by the prompt's sha256: deterministic, and different
    prompts visibly differ."""
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest() * 2
    palette = [bytes(digest[i : i + 3]) for i in range(0, 48, 3)]  # 16 colors
    columns = [(c * width) // 8 for c in range(9)]
    rows: list[bytes] = []
    for y in range(height):
        cell_row = (y * 8) // height
        row = b"".join(palette[digest[(cell_row * 8 + c) % 64] % 16] * (columns[c + 1] - columns[c]) for c in range(8))
        rows.append(row)
    return encode_png(width, height, rows)
