"""`data:` URLs (what `useChat` sends for attached files) to bytes, refusing anything malformed
or larger than the limit before decoding it all."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes

from genvault.errors import InvalidRequest, PayloadTooLarge

__all__ = ["parse_data_url"]


def parse_data_url(url: str, *, max_bytes: int) -> tuple[str, bytes]:
    """(media type, bytes) of `data:[<media type>][;base64],<data>`."""
    header, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma:
        raise InvalidRequest("a data URL must look like data:<media type>;base64,<data>")
    params = header[len("data:") :].split(";")
    media_type = params[0].strip() or "text/plain"
    if "base64" in (p.strip().lower() for p in params[1:]):
        # Four base64 characters hold three bytes: refuse an oversized file before decoding it.
        if len(payload) * 3 // 4 - 2 > max_bytes:
            raise PayloadTooLarge(f"the attached file is larger than the limit of {max_bytes} bytes")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the data URL's base64 content is not valid base64") from None
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the attached file is {len(data)} bytes; the limit is {max_bytes} bytes")
    return media_type, data
