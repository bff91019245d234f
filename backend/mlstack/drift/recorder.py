"""The replica's side of live drift: sends every loaded version's counts to Redis every few seconds, reads
a window back for the drift route, and keeps the drift gauges of each model's current version fresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from mlstack import connections
from mlstack.background import every, running
from mlstack.drift.buckets import Buckets, Taken, span
from mlstack.drift.counts import LiveCounts
from mlstack.drift.layout import Layout, layout_of
from mlstack.drift.report import drift_report, thresholds
from mlstack.drift.schema import DriftReport, Window
from mlstack.errors import DriftUnavailable, NotFound, ServingError
from mlstack.profile.schema import Profile
from mlstack.serving.registry import Registry
from mlstack.settings import Settings
from mlstack.telemetry.metrics import Metrics

log = logging.getLogger("mlstack.drift.recorder")


class DriftRecorder:
    def __init__(
        self, settings: Settings, registry: Registry, metrics: Metrics, buckets: Buckets | None
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._metrics = metrics
        self._buckets = buckets
        self._failing = False

    @property
    def failing(self) -> bool:
        """The last flush could not send its counts (they were lost); logged once per outage."""
        return self._failing

    @classmethod
    @asynccontextmanager
    async def start(
        cls, settings: Settings, registry: Registry, metrics: Metrics
    ) -> AsyncIterator[DriftRecorder]:
        client = connections.drift_counts(settings)
        buckets = (
            None if client is None else Buckets(client, settings.drift_bucket_s, settings.drift_retention_s)
        )
        recorder = cls(settings, registry, metrics, buckets)
        loops = []
        if buckets is not None:
            loops.append(every(settings.drift_flush_s, recorder.flush, log, "live drift: flush"))
            if settings.drift_gauges_s > 0:
                gauges = every(settings.drift_gauges_s, recorder.refresh_gauges, log, "live drift: gauges")
                loops.append(gauges)
        try:
            async with running(*loops):
                yield recorder
        finally:
            await recorder.flush()  # what was counted since the last flush
            if client is not None:
                await client.aclose()

    async def flush(self) -> None:
        """Every loaded version's counts since the last flush, in one transaction; lost if Redis fails."""
        taken = []
        for loaded in self._registry.all_loaded():
            counter = loaded.drift_counts
            if not isinstance(counter, LiveCounts):
                continue
            counts = counter.take()
            if counts is not None:
                taken.append(Taken(loaded.manifest.model, loaded.version, counter.layout.fields, counts))
        if not taken or self._buckets is None:
            return
        try:
            await self._buckets.add(taken, time.time())
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("live drift counts not sent to Redis (these are lost): %s", exc)
            self._failing = True
        else:
            self._failing = False

    async def report(self, model: str, version: str | None, window_s: int) -> DriftReport:
        """One version's drift over the last `window_s` (the current version when None)."""
        if self._buckets is None:
            raise DriftUnavailable(
                "live drift counts are kept in the cache Redis, and BACKEND_REDIS_URL is unset"
            )
        version = version or (await self._registry.get(model)).version
        profile, layout = await self._profile(model, version)
        window = span(time.time(), window_s, self._buckets.bucket_s)
        try:
            counts = await self._buckets.read(model, version, layout, window)
        except (RedisError, OSError) as exc:
            raise DriftUnavailable(f"the live drift counts could not be read from Redis: {exc}") from None
        shown = Window(
            asked_s=window_s, since=window.since, until=window.until, bucket_s=self._buckets.bucket_s
        )
        return drift_report(model, version, profile, layout, counts, shown, thresholds(self._settings))

    async def refresh_gauges(self) -> None:
        reports = []
        for model, version in list(self._registry.current.items()):
            with contextlib.suppress(ServingError):  # no profile (a recommender), Redis away: no gauges
                reports.append(await self.report(model, version, self._settings.drift_window_s))
        self._metrics.show_drift(reports)

    async def _profile(self, model: str, version: str) -> tuple[Profile, Layout]:
        """The loaded version's profile, or the store's (verified) for a version not loaded here."""
        counter = self._registry.loaded_drift_counts(model, version)
        if isinstance(counter, LiveCounts):
            return counter.profile, counter.layout
        profile = await asyncio.to_thread(self._registry.store.profile, model, version)
        if profile is None:
            raise NotFound(
                f"model '{model}' version '{version}' has no profile to measure drift against (recommenders "
                "have none, nor versions published before profiles existed)"
            )
        return profile, layout_of(profile)
