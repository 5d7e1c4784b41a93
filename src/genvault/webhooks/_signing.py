"""The signature of a delivery: HMAC-SHA256 over `"{timestamp}.{body}"` with the webhook's secret.

The timestamp is in the signed text so a captured delivery cannot be replayed later with a new
timestamp; a receiver checks the signature and refuses timestamps too far from its clock.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify"]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Genvault-Signature` header value: `sha256=` and the hex HMAC."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the one `sign` makes (compared in constant time)."""
    if not timestamp.isdecimal():
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
