"""The core of a prediction, for every protocol and every runtime: resolve the version, validate, prepare,
look the rows up in the cache, predict the misses in micro-batches, write them back, answer.

An explanation takes the same path: a loaded version's explaining runtime answers each row's prediction
with its explanation, in a cache key space of its own. Edges (api/) hand the core a `PredictRequest` and
turn its `Result` into bytes; it never calls them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from mlstack.cache.predictions import Entry, PredictionCache, row_keys
from mlstack.errors import BadInput
from mlstack.serving.admission import RowBudget
from mlstack.serving.batching import Batcher
from mlstack.serving.registry import Loaded, Registry
from mlstack.serving.requests import CacheStatus, PredictRequest, Recount, Result
from mlstack.serving.runtime import Prediction, Runtime
from mlstack.serving.validation import Rows
from mlstack.settings import Settings
from mlstack.telemetry.metrics import Metrics

Compute = Callable[[Runtime, Rows], Awaitable[list[Entry]]]
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
        """Each row's prediction; the rows are counted as live traffic (drift)."""
        loaded = await self._loaded(request)
        try:
            rows = loaded.validator.validate(request.inputs)
        except BadInput as refused:
            loaded.drift_counts.refuse(request.inputs, refused)
            raise
        tally = loaded.drift_counts.count(rows)  # before the cache: a hit is served traffic too
        return await self._answer(loaded.runtime, rows, tally)

    async def explain(self, request: PredictRequest) -> Result:
        """Each row's prediction with its explanation. Not counted as live traffic: it asks why about rows
        a client was, or could have been, answered already."""
        loaded = await self._loaded(request)
        explaining = loaded.explaining
        return await self._answer(explaining.runtime, explaining.validator.validate(request.inputs), None)

    async def _loaded(self, request: PredictRequest) -> Loaded:
        version = request.version or self.registry.choose(request.model)
        return await self.registry.get(request.model, version)  # None: first use, or the model's 404

    async def _answer(self, runtime: Runtime, rows: Rows, tally: Recount | None) -> Result:
        prepare = runtime.prepare
        if prepare is not None:
            rows = await prepare(rows)
        with self._batcher.on_the_way():
            entries, status = await self._through_cache(runtime, rows, self._predicted)
        return _result(runtime, entries, status, rows.degraded, tally)

    async def _through_cache(
        self, runtime: Runtime, rows: Rows, compute: Compute
    ) -> tuple[list[Entry], CacheStatus]:
        """The one cache flow: look every row up at once, compute only the misses, store them, count.
        The runtime names its key space; the key carries the version and its artifact's sha256."""
        manifest = runtime.manifest
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
            computed = await compute(runtime, rows.subset(misses) if hits else rows)
            for i, entry in zip(misses, computed, strict=True):
                entries[i] = entry
            if cached is not None:
                self.cache.put_many([(keys[i], entry) for i, entry in zip(misses, computed, strict=True)])
        done = [entry for entry in entries if entry is not None]
        return done, cache_status(cached is not None, len(misses), len(rows))

    async def _predicted(self, runtime: Runtime, rows: Rows) -> list[Entry]:
        prediction = await self._batcher.predict(runtime, rows)  # cache hits never get here
        self.metrics.count_predicted(runtime.manifest.model, runtime.manifest.version, len(rows))
        return _entries(prediction)


def _entries(prediction: Prediction) -> list[Entry]:
    """Cache entries: `l` the label, `p` the probabilities, and each further output under its name."""
    if prediction.extra is not None:
        outputs = prediction.extra
        if prediction.probabilities is not None:  # an explained classifier's rows: probabilities as well
            outputs = {"p": prediction.probabilities, **outputs}
        names = list(outputs)
        columns = zip(prediction.labels, *outputs.values(), strict=True)
        return [{"l": label, **dict(zip(names, values, strict=True))} for label, *values in columns]
    if prediction.probabilities is None:
        return [{"l": label} for label in prediction.labels]
    return [{"l": lb, "p": p} for lb, p in zip(prediction.labels, prediction.probabilities, strict=True)]


def _complete(cached: list[Entry | None], outputs: tuple[str, ...]) -> list[Entry | None]:
    """Entries holding every output this runtime answers; anything else found in Redis is a miss."""
    if not outputs:
        return cached
    return [e if e is not None and all(name in e for name in outputs) else None for e in cached]


def _result(
    runtime: Runtime, entries: list[Entry], cache: CacheStatus, degraded: str | None, recount: Recount | None
) -> Result:
    manifest = runtime.manifest
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
        recount=recount,
    )


def cache_status(cache_used: bool, misses: int, total: int) -> CacheStatus:
    """The X-Cache header: BYPASS, HIT, MISS or PARTIAL."""
    if not cache_used:
        return "BYPASS"
    if misses == 0:
        return "HIT"
    return "MISS" if misses == total else "PARTIAL"
