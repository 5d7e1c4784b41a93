"""The dedup cache and single-flight: identical requests never cost twice (see `dedup`)."""

from genvault.cache.base import Cache
from genvault.cache.dedup import CachePolicy, CacheProbe, Dedup
from genvault.cache.key import cache_key
from genvault.cache.redis import RedisCache
from genvault.cache.sql import SqlCache

__all__ = ["Cache", "CachePolicy", "CacheProbe", "Dedup", "RedisCache", "SqlCache", "cache_key"]
