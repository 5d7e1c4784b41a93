"""Vectors as little-endian float32 in base64: the form the OpenAI API sends with
`encoding_format: base64`, a quarter of the JSON float list's size and exact for float32."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence

from genvault.errors import ProviderError

__all__ = ["decode_vector", "encode_vector"]


def encode_vector(values: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def decode_vector(encoded: str) -> list[float]:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError("an embedding is not base64") from None
    if len(raw) % 4:
        raise ProviderError("an embedding's bytes are not whole float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))
