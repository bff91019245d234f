"""Erasing a user's cached recommendations, which live under their id in the shared cache."""

from __future__ import annotations

import asyncio

from mlstack.cache.predictions import PredictionCache
from mlstack.recommend.runtime import user_cache_pattern

SWEEP_AGAIN_S = 2.0
"""After an erasure, the user's cached recommendations are swept once more this much later."""


class CachedRecommendations:
    def __init__(self, cache: PredictionCache) -> None:
        self._cache = cache
        self._sweeps: set[asyncio.Task[None]] = set()

    async def forget(self, user_id: str) -> bool:
        """Remove the user's cached recommendations; False when the cache could not be reached.

        A recommendation computed just before the erasure may store its entry just after this sweep, so
        a second sweep follows a little later, in the background."""
        swept = await self._cache.delete_matching(user_cache_pattern(user_id))
        task = asyncio.create_task(self._sweep_later(user_id))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)
        return swept

    async def _sweep_later(self, user_id: str) -> None:
        await asyncio.sleep(SWEEP_AGAIN_S)
        await self._cache.delete_matching(user_cache_pattern(user_id))
