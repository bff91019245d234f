"""Per-replica statistics shared through Redis: each replica publishes a snapshot every second."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mlstack import connections
from mlstack.background import running
from mlstack.settings import Settings
from mlstack.telemetry.metrics import Metrics

log = logging.getLogger("mlstack.telemetry.board")
KEY_PREFIX = "mlstack:stats:"
PERIOD_S = 1.0


class StatsBoard:
    """Publishes this replica's snapshot under its name (it expires, so a dead replica drops off)."""

    def __init__(self, metrics: Metrics, client: aioredis.Redis | None) -> None:
        self.metrics = metrics
        self._redis = client

    @classmethod
    @asynccontextmanager
    async def start(cls, settings: Settings, metrics: Metrics) -> AsyncIterator[StatsBoard]:
        client = connections.stats(settings)
        board = cls(metrics, client)
        try:
            async with running(board._publish_forever()):
                yield board
        finally:
            if client is not None:
                await client.aclose()

    async def replicas(self) -> list[dict[str, Any]]:
        """Every live replica's latest snapshot; only this one's when Redis cannot be read."""
        own = self.metrics.snapshot()
        if self._redis is None:
            return [own]
        try:
            keys = sorted([key async for key in self._redis.scan_iter(match=f"{KEY_PREFIX}*", count=100)])
            values = await self._redis.mget(keys) if keys else []
        except (RedisError, OSError) as exc:
            log.warning("stats unavailable from Redis: %s", exc)
            return [own]
        found = [orjson.loads(value) for value in values if value is not None]
        return [own, *[s for s in found if s.get("name") != own["name"]]]

    async def _publish_forever(self) -> None:
        while self._redis is not None:
            await asyncio.sleep(PERIOD_S)
            snapshot = orjson.dumps(self.metrics.snapshot())
            try:
                await self._redis.set(f"{KEY_PREFIX}{self.metrics.replica}", snapshot, ex=5)
            except (RedisError, OSError) as exc:
                log.debug("stats not published: %s", exc)
