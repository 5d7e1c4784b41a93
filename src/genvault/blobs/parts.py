"""File parts and the blob store: recognizing genvault's own file URLs in messages, and putting
the bytes back into model messages, so a provider receives the content, not a URL it cannot
fetch."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["file_id_in_url", "inline_stored_files"]

_FILE_PATH = re.compile(r"^/files/(file_[0-9a-hjkmnp-tv-z]{26})$")


def file_id_in_url(url: str, public_url: str | None) -> str | None:
    """The file id if `url` is one of ours (`/files/{id}`, or under `public_url`), else None."""
    if public_url and url.startswith(public_url + "/"):
        url = url[len(public_url) :]
    match = _FILE_PATH.match(url)
    return match.group(1) if match else None


async def inline_stored_files(
    messages: list[dict[str, Any]], public_url: str | None, load: Callable[[str], Awaitable[bytes]]
) -> None:
    """Replace, in place, the `data` of model-message file parts that point at stored files with
    the files' bytes (loaded with `load(file_id)`, which checks access)."""
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "file" and isinstance(part.get("data"), str):
                file_id = file_id_in_url(part["data"], public_url)
                if file_id is not None:
                    part["data"] = await load(file_id)
