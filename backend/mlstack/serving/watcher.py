"""Keeps every replica's registry in step with the store: a Redis message from the replica that changed it,
and a periodic check of the store's pointer files for when Redis is down (they are replaced atomically)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mlstack import connections
from mlstack.background import every, running
from mlstack.serving.registry import Registry
from mlstack.settings import Settings

log = logging.getLogger("mlstack.serving.watcher")
CHANNEL = "mlstack:store-changed"


class StoreWatcher:
    """Listens on a Redis channel and polls the store; either way the registry reloads what changed."""

    def __init__(self, registry: Registry, client: aioredis.Redis | None, poll_s: float) -> None:
        self.registry = registry
        self._redis = client
        self._poll_s = poll_s

    @classmethod
    @asynccontextmanager
    async def start(cls, settings: Settings, registry: Registry) -> AsyncIterator[StoreWatcher]:
        client = connections.store_events(settings)  # no command timeout: a subscriber waits
        watcher = cls(registry, client, settings.store_poll_s)
        loops = [watcher._listen()]
        if settings.store_poll_s > 0:
            loops.append(every(settings.store_poll_s, registry.sync, log, "store check"))
        try:
            async with running(*loops):
                yield watcher
        finally:
            if client is not None:
                await client.aclose()

    async def announce(self, model: str) -> bool:
        """Tell the other replicas; False when Redis is unreachable (they catch up at their next poll)."""
        if self._redis is None:
            return False
        try:
            await asyncio.wait_for(self._redis.publish(CHANNEL, model), timeout=1)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "store change of %s not announced (%s); replicas will see it when they poll", model, exc
            )
            return False
        return True

    async def _listen(self) -> None:
        while self._redis is not None:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            await self.registry.sync()
            except (RedisError, OSError) as exc:
                log.debug("store-change channel unavailable: %s", exc)
                await asyncio.sleep(1)
