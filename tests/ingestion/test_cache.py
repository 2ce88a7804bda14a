"""The per-process intake cache stays bounded whatever slugs a scanner tries."""

from ingestion import cache


def test_a_scan_of_random_slugs_never_grows_the_cache_past_its_bound(settings):
    settings.CRMSYNC = {**settings.CRMSYNC, "INTAKE_CACHE_SECONDS": 60}
    cache.clear()
    for n in range(cache.MAX_ENTRIES * 3):
        assert cache.cached(("source", f"scan-{n}"), lambda: None) is None

    assert len(cache._entries) <= cache.MAX_ENTRIES
    assert cache.cached(("source", "known"), lambda: "source") == "source"
    assert cache.cached(("source", "known"), lambda: "reloaded") == "source"  # still a hit
    cache.clear()
