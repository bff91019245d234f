"""The near cache's bounds: least recently used out first, nothing older than its TTL, nothing unwatched."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from mlstack.cache.near import NearCache


def near(max_entries: int, ttl_s: float) -> NearCache:
    cache = NearCache(aioredis.Redis(), max_entries, ttl_s, retry_after_s=1.0)  # never connects here
    cache.watching = True
    return cache


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = near(3, 60)
    for key in "abc":
        cache.put(key, {"l": key})
    cache.get("a")  # a is now the most recent
    cache.put("d", {"l": "d"})

    assert [cache.get(key) for key in "abcd"] == [{"l": "a"}, None, {"l": "c"}, {"l": "d"}]
    assert len(cache) == 3


def test_an_entry_older_than_the_ttl_is_gone() -> None:
    cache = near(10, 0.05)
    cache.put("a", {"l": 1})
    fresh = cache.get("a")
    time.sleep(0.08)

    assert fresh == {"l": 1}
    assert cache.get("a") is None
    assert len(cache) == 0


def test_without_the_watch_connection_nothing_is_kept_or_given() -> None:
    cache = near(10, 60)
    cache.put("a", {"l": 1})
    cache.watching = False
    cache.put("b", {"l": 2})

    assert cache.get("a") is None
    assert len(cache) == 1  # b was not kept
