"""Old import path: the cache operations live in :mod:`specfuse_core.local.kv_cache` (they need torch)."""

from .local.kv_cache import GrowableLayer, cache_length, common_prefix_length, crop_to, new_cache, splice

__all__ = ["GrowableLayer", "cache_length", "common_prefix_length", "crop_to", "new_cache", "splice"]
