"""What the server's first requests would otherwise load mid-burst, loaded at start.

A module imported by the first streaming response (anyio's event-loop backend, which Starlette's
`StreamingResponse` starts its task group with: 13 modules, their classes, functions and ABC
caches) lives as long as the process. Imported while hundreds of replies stream, its objects
land in the small-object arenas that the burst fills, and each keeps its 1 MiB arena from going
back to the system once the burst is over (docs/benchmarks.md, "What stays in memory after a
run"). Loaded before the server reports healthy, they sit with the rest of the start-up, frozen
with it (`gc.freeze`).
"""

from __future__ import annotations

import anyio

__all__ = ["warm_asgi"]


async def warm_asgi() -> None:
    """Load what the first streaming response would: anyio's backend (and what it imports)."""
    async with anyio.create_task_group():
        pass
