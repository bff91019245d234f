"""The core of a prediction, for every protocol and every runtime: resolve the version, validate, prepare,
look the rows up in the cache, predict the misses in micro-batches, write them back, answer.

Edges (api/) hand it a `PredictRequest` and turn its `Result` into bytes; it never calls them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from mlstack.cache.predictions import Entry, PredictionCache, row_keys
from mlstack.serving.admission import RowBudget
from mlstack.serving.batching import Batcher
from mlstack.serving.registry import Loaded, Registry
from mlstack.serving.requests import CacheStatus, PredictRequest, Result
from mlstack.serving.runtime import Prediction
from mlstack.serving.validation import Rows
from mlstack.settings import Settings
from mlstack.telemetry.metrics import Metrics

Compute = Callable[[Loaded, Rows], Awaitable[list[Entry]]]
"""How the missing rows of a request are answered, as cache entries."""


class Predictor:
    """Predictions for every protocol edge. Model code runs on one worker thread or, for calls cheaper
    than a thread hop, on the event loop (Runtime.inline_rows)."""

    def __init__(
        self, registry: Registry, cache: PredictionCache, batcher: Batcher, metrics: Metrics
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.metrics = metrics
        self._batcher = batcher

    @classmethod
    @asynccontextmanager
    async def start(
        cls, settings: Settings, registry: Registry, cache: PredictionCache, metrics: Metrics
    ) -> AsyncIterator[Predictor]:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        batcher = Batcher(
            executor,
            settings.microbatch_max_rows,
            settings.microbatch_max_wait_ms / 1000,
            settings.microbatch_enabled,
            on_batch=metrics.count_batch,
            row_budget=RowBudget(settings.max_queued_rows),
        )
        try:
            yield cls(registry, cache, batcher, metrics)
        finally:
            executor.shutdown(wait=True)

    async def predict(self, request: PredictRequest) -> Result:
        version = request.version or self.registry.choose(request.model)
        loaded = await self.registry.get(request.model, version)  # None: first use, or the model's 404
        rows = loaded.validator.validate(request.inputs)
        prepare = loaded.runtime.prepare
        if prepare is not None:
            rows = await prepare(rows)
        with self._batcher.on_the_way():
            entries, status = await self._through_cache(loaded, rows, self._predicted)
        return _result(loaded, entries, status, rows.degraded)

    async def _through_cache(
        self, loaded: Loaded, rows: Rows, compute: Compute
    ) -> tuple[list[Entry], CacheStatus]:
        """The one cache flow: look every row up at once, compute only the misses, store them, count."""
        runtime, manifest = loaded.runtime, loaded.manifest
        keys = row_keys(
            runtime.cache_space,
            manifest.model,
            manifest.version,
            manifest.artifact.sha256,
            rows.values,
            rows.keys,
        )
        usable = rows.degraded is None
        cached = await self.cache.get_many(keys, near=not runtime.erasable) if usable else None
        entries: list[Entry | None] = (
            _complete(cached, runtime.outputs) if cached is not None else [None] * len(rows)
        )
        misses = [i for i, entry in enumerate(entries) if entry is None]
        hits = len(rows) - len(misses)
        self.metrics.count_cache(
            hits, len(misses) if cached is not None else 0, 0 if cached is not None else len(rows)
        )
        if misses:
            computed = await compute(loaded, rows.subset(misses) if hits else rows)
            for i, entry in zip(misses, computed, strict=True):
                entries[i] = entry
            if cached is not None:
                self.cache.put_many([(keys[i], entry) for i, entry in zip(misses, computed, strict=True)])
        done = [entry for entry in entries if entry is not None]
        return done, cache_status(cached is not None, len(misses), len(rows))

    async def _predicted(self, loaded: Loaded, rows: Rows) -> list[Entry]:
        prediction = await self._batcher.predict(loaded.runtime, rows)  # cache hits never get here
        self.metrics.count_predicted(loaded.manifest.model, loaded.version, len(rows))
        return _entries(prediction)


def _entries(prediction: Prediction) -> list[Entry]:
    """Cache entries: `l` the label, `p` the probabilities, and each further output under its name."""
    if prediction.extra is not None:
        names = list(prediction.extra)
        columns = zip(prediction.labels, *prediction.extra.values(), strict=True)
        return [{"l": label, **dict(zip(names, values, strict=True))} for label, *values in columns]
    if prediction.probabilities is None:
        return [{"l": label} for label in prediction.labels]
    return [{"l": lb, "p": p} for lb, p in zip(prediction.labels, prediction.probabilities, strict=True)]


def _complete(cached: list[Entry | None], outputs: tuple[str, ...]) -> list[Entry | None]:
    """Entries holding every output this runtime answers; anything else found in Redis is a miss."""
    if not outputs:
        return cached
    return [e if e is not None and all(name in e for name in outputs) else None for e in cached]


def _result(loaded: Loaded, entries: list[Entry], cache: CacheStatus, degraded: str | None) -> Result:
    manifest, runtime = loaded.manifest, loaded.runtime
    extra: dict[str, list[Any]] | None = None
    if runtime.outputs:
        extra = {name: [entry[name] for entry in entries] for name in runtime.outputs}
    return Result(
        model=manifest.model,
        version=manifest.version,
        labels=[entry["l"] for entry in entries],
        probabilities=[entry["p"] for entry in entries] if manifest.is_classifier else None,
        classes=manifest.classes,
        cache=cache,
        extra=extra,
        degraded=degraded,
        artifact_sha256=manifest.artifact.sha256,
        erasable=runtime.erasable,
    )


def cache_status(cache_used: bool, misses: int, total: int) -> CacheStatus:
    """The X-Cache header: BYPASS, HIT, MISS or PARTIAL."""
    if not cache_used:
        return "BYPASS"
    if misses == 0:
        return "HIT"
    return "MISS" if misses == total else "PARTIAL"
