"""Fixed-window request counters on Django's cache, which all processes share: Redis when
REDIS_URL is set (atomic INCR), else the database cache table."""

import time

from django.core.cache import cache


def hit(key: str, *, limit: int, window_seconds: int) -> int:
    """Count one request; return 0 when within the limit, else the seconds until the window
    resets (for Retry-After)."""
    now = int(time.time())
    window_start = now - now % window_seconds
    cache_key = f"throttle:{key}:{window_start}"
    cache.add(cache_key, 0, timeout=window_seconds + 5)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window_seconds + 5)
        count = 1
    if count <= limit:
        return 0
    return max(1, window_start + window_seconds - now)
