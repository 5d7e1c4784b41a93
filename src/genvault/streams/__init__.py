"""Live fan-out of running generations: every chunk a generation produces, replayable from any
index, so any number of clients can follow, join late, or come back after a refresh."""

from genvault.streams.base import StreamHub
from genvault.streams.memory import MemoryHub
from genvault.streams.redis import RedisHub

__all__ = ["MemoryHub", "RedisHub", "StreamHub"]
