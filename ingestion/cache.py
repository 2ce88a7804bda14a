"""What the intake reads on every request, cached per process: the source by slug and its
active credentials. Saves and deletes in this process clear it at once (see apps.py); other
processes see a change within CRMSYNC_INTAKE_CACHE_SECONDS. Without it, two lookups cost more
than the insert they guard (bench/README.md)."""

import threading
import time
from typing import Callable, TypeVar

from django.conf import settings

T = TypeVar("T")
_lock = threading.Lock()
_entries: dict[tuple, tuple[float, object]] = {}
# Misses are cached too (an unknown slug costs no query), so a scanner trying random slugs
# must not grow the process: past this many entries the expired ones go, then the oldest.
MAX_ENTRIES = 5_000


def cached(key: tuple, load: Callable[[], T]) -> T:
    ttl = settings.CRMSYNC["INTAKE_CACHE_SECONDS"]
    now = time.monotonic()
    hit = _entries.get(key)
    if hit and hit[0] > now:
        return hit[1]  # type: ignore[return-value]
    value = load()
    if ttl > 0:
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                _evict(now)
            _entries[key] = (now + ttl, value)
    return value


def _evict(now: float) -> None:
    for key in [key for key, (expires, _) in _entries.items() if expires <= now]:
        del _entries[key]
    while len(_entries) >= MAX_ENTRIES:
        del _entries[next(iter(_entries))]  # dicts keep insertion order: the oldest first


def clear(**kwargs) -> None:
    with _lock:
        _entries.clear()
