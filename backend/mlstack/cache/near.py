"""Each replica's own copy of recent prediction-cache entries, in front of Redis (a near cache).

A hit through Redis costs the replica a round trip, about 100 µs of CPU; a hit from memory about one.
Copies never go stale: a key holds the model version, the artifact's sha256 and the row, and a value is a
pure function of them. So the copy only has to respect three things:
- memory: a bounded number of entries, least recently used out first, each kept at most `ttl_s`;
- churn: only rows seen twice are copied (found in Redis), so a stream of one-off rows passes through;
- `X-Cache: BYPASS` while Redis is down (the contract). A connection to Redis stays open for that: when
  Redis goes away the kernel closes it at once, the copies are dropped and none are used until the
  connection is back. Meanwhile lookups go to Redis, fail, and trip the cache's breaker as before.
  A Redis that hangs instead is noticed by a PING every second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("mlstack.cache.near")

WATCH_CHANNEL = "mlstack:near-cache"
"""Nothing is published here: subscribing keeps a connection that only Redis going away ends."""
PING_EVERY_S = 1.0
PING_TIMEOUT_S = 1.0
"""Lenient: a busy Redis is not a lost one. Lookups keep their own, much shorter timeout."""


class NearCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        max_entries: int,
        ttl_s: float,
        retry_after_s: float,
        on_lost: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self._redis = redis
        self._on_lost = on_lost
        # OrderedDict, not cachetools.TTLCache: its get and put cost 5-10 times as much, on every row
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._retry_after_s = retry_after_s
        self.watching = False
        """True while the watch connection is open: only then are copies kept and used."""
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="near-cache-watch")

    async def close(self) -> None:
        self._closed = True
        # Python 3.11's asyncio.timeout (inside redis-py) can turn a cancellation that meets a timeout into
        # a TimeoutError, which the watch survives: cancel until it has ended.
        while self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
            await asyncio.wait([self._watcher], timeout=0.1)
        await self._redis.aclose()

    def get(self, key: Hashable) -> Any:
        found = self._entries.get(key) if self.watching else None
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found[1]

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        """get() for each key; the lookups in C, since most rows of a batch are not here."""
        if not self.watching:
            return [None] * len(keys)
        found: list[Any] = list(map(self._entries.get, keys))
        for i, hit in enumerate(found):
            if hit is not None:
                found[i] = self.get(keys[i])
        return found

    def put(self, key: Hashable, entry: Any) -> None:
        if not self.watching:
            return
        self._entries[key] = (time.monotonic() + self._ttl_s, entry)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def _watch(self) -> None:
        while not self._closed:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(WATCH_CHANNEL)
                await self._reply(pubsub, "subscribe")
                self.watching = True
                while not self._closed:
                    await pubsub.ping()
                    await self._reply(pubsub, "pong")
                    # Waits for a message that never comes; Redis closing the connection ends it early.
                    await pubsub.get_message(timeout=PING_EVERY_S)
            except (TimeoutError, RedisError, OSError) as exc:
                self._lost(exc)
            finally:
                await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]  # redis-py: unannotated
            await asyncio.sleep(max(self._retry_after_s, 0.1))

    async def _reply(self, pubsub: aioredis.client.PubSub, kind: str) -> None:
        message = await pubsub.get_message(timeout=PING_TIMEOUT_S)
        if message is None or message.get("type") != kind:
            raise TimeoutError(f"Redis did not answer {kind!r} within {PING_TIMEOUT_S:g}s")

    def _lost(self, exc: BaseException) -> None:
        if self.watching:
            log.warning("near cache dropped: the connection to Redis was lost (%s)", exc)
            self._on_lost(exc)
        self.watching = False
        self._entries.clear()
