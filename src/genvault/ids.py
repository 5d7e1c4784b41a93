"""Server-minted identifiers.

Every ID is a ULID (48 bits of millisecond time + 80 random bits from the OS CSPRNG) written in
lower-case Crockford base32, behind a readable prefix: `gen_01jd…`. They sort by creation time to
the millisecond, are URL-safe and cannot be guessed. Within one millisecond the order is random:
we deliberately do not use ULID's monotonic mode, whose "+1" successor would be guessable. Where
order inside a millisecond matters (messages in a chat), a sequence column carries it.
"""

from __future__ import annotations

import re

from ulid import ULID

__all__ = ["ID_PATTERN", "new_id"]

# Prefix, underscore, 26 base32 characters. Client-sent IDs (user message IDs from useChat) do not
# have to match this; only the IDs we mint do.
ID_PATTERN = re.compile(r"^[a-z]{2,8}_[0-9a-hjkmnp-tv-z]{26}$")


def new_id(prefix: str) -> str:
    """Mint a new `prefix_<ulid>` ID."""
    return f"{prefix}_{str(ULID()).lower()}"
