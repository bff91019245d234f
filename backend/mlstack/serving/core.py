"""The protocol-free core of a prediction: resolve the version, validate, use the cache, predict misses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from mlstack.cache.predictions import Entry, PredictionCache, cache_status, row_keys
from mlstack.recommend.runtime import is_recommender
from mlstack.recommend.service import Recommendations
from mlstack.serving.admission import RowBudget
from mlstack.serving.batching import Batcher
from mlstack.serving.registry import Loaded, Registry
from mlstack.serving.validation import Rows
from mlstack.settings import Settings
from mlstack.telemetry.metrics import Metrics
from mlstack.users.store import UserStore


@dataclass(frozen=True, slots=True)
class Result:
    """What any protocol needs to answer a prediction."""

    model: str
    version: str
    labels: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    cache: str
    """HIT, MISS, PARTIAL or BYPASS, for the X-Cache header."""
    extra: dict[str, list[Any]] | None = None
    """Further per-instance outputs (a recommender's scores and sources)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Model-Version": self.version, "X-Cache": self.cache}


MAX_REMEMBERED_BODY = 1024
"""Request bodies up to this size (a row or a few) may have their whole answer remembered."""


@dataclass(frozen=True, slots=True)
class Remembered:
    """A whole answer, kept by the replica for a byte-identical request body."""

    sha256: str
    """The artifact that answered: a version republished under the same number is not the same answer."""
    payload: bytes
    rows: int
    headers: dict[str, str]


Answer = tuple[bytes, dict[str, str]]
"""A response's JSON and its headers."""


class Edge(Protocol):
    """One protocol's side of a prediction: its body parsed, predicted with a loaded version, rendered."""

    name: str

    def parse(self, body: bytes) -> Any:
        """The request, or a 4xx error naming what is wrong; runs before the model is looked up."""

    async def predict(self, inference: Inference, loaded: Loaded, request: Any) -> Result: ...

    def render(self, result: Result, request: Any) -> bytes: ...


class Inference:
    """Predictions for every protocol edge. Model code runs on one worker thread, never on the event loop."""

    def __init__(
        self,
        registry: Registry,
        cache: PredictionCache,
        batcher: Batcher,
        metrics: Metrics,
        recommendations: Recommendations | None = None,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.metrics = metrics
        self._batcher = batcher
        self.recommendations = recommendations

    @classmethod
    @asynccontextmanager
    async def start(
        cls, settings: Settings, registry: Registry, metrics: Metrics, users: UserStore | None = None
    ) -> AsyncIterator[Inference]:
        cache = PredictionCache(
            settings, on_near_hits=metrics.near_cache_rows.inc, on_unwritten=metrics.cache_unwritten_rows.inc
        )
        cache.start()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        batcher = Batcher(
            executor,
            settings.batch_max_rows,
            settings.batch_max_wait_ms / 1000,
            settings.batching_enabled,
            on_batch=metrics.count_batch,
            row_budget=RowBudget(settings.max_queued_rows),
        )
        recommendations = Recommendations(users, cache, metrics, settings) if users is not None else None
        try:
            yield cls(registry, cache, batcher, metrics, recommendations)
        finally:
            await cache.close()
            executor.shutdown(wait=True)

    async def answer_body(self, model: str, version: str | None, body: bytes, edge: Edge) -> Answer:
        """A protocol's answer (payload and headers) to a request body. A body sent again byte for byte,
        whose answer came wholly from the cache, is answered from memory: no parsing, validation, hashing
        or rendering. Those answers live among the near cache's rows, under its rules (a bounded LRU, its
        TTL, nothing while Redis is unreachable), and a recommendation is never kept (an erasure must
        reach it at once)."""
        # The version that answers: the pinned one, else the current one or, for its share, the canary.
        # One draw per request: a remembered answer and a computed one must be of the same version, or a
        # canary would get its share squared until its own answers are remembered.
        chosen = version or self.registry.choose(model)
        remembered = await self._remembered(edge.name, model, chosen, body) if chosen is not None else None
        if remembered is not None:
            return remembered.payload, remembered.headers
        request = edge.parse(body)  # a bad body is refused before the model is looked up, as always
        loaded = await self.registry.get(model, chosen)  # None: the model's first use, or its 404
        result = await edge.predict(self, loaded, request)
        payload = edge.render(result, request)
        near = self.cache.near
        kept_whole = result.cache == "HIT" and not is_recommender(loaded.runtime)
        if kept_whole and near is not None and len(body) <= MAX_REMEMBERED_BODY:
            sha256 = loaded.manifest.artifact.sha256
            kept = Remembered(sha256, payload, len(result.labels), result.headers)
            near.put((edge.name, model, result.version, body), kept)
        return payload, result.headers

    async def predict_instances(self, loaded: Loaded, instances: Any) -> Result:
        """V1: `instances` is the client's list of feature objects."""
        if self.recommendations is not None and is_recommender(loaded.runtime):
            return _recommended(loaded, *await self.recommendations.answer(loaded, instances))
        return await self._run(loaded, loaded.validator.rows(instances))

    async def _remembered(self, edge: str, model: str, version: str, body: bytes) -> Remembered | None:
        near = self.cache.near
        if near is None or len(body) > MAX_REMEMBERED_BODY or not self.cache.available:
            return None
        found = near.get((edge, model, version, body))
        if found is None:
            return None
        loaded = await self.registry.get(model, version)
        if loaded.manifest.artifact.sha256 != found.sha256:
            return None
        self.metrics.count_cache(found.rows, 0, 0)
        self.metrics.near_cache_rows.inc(found.rows)
        return found  # type: ignore[no-any-return]

    async def predict_columns(self, loaded: Loaded, columns: dict[str, list[Any]], count: int) -> Result:
        """V2: one list of `count` values per feature of the resolved version."""
        rows = loaded.validator.columns(columns, count)
        if self.recommendations is not None and is_recommender(loaded.runtime):
            return _recommended(loaded, *await self.recommendations.answer_rows(loaded, rows))
        return await self._run(loaded, rows)

    async def _run(self, loaded: Loaded, rows: Rows) -> Result:
        with self._batcher.on_the_way():
            return await self._answer(loaded, rows)

    async def _answer(self, loaded: Loaded, rows: Rows) -> Result:
        manifest = loaded.manifest
        keys = row_keys(manifest.model, manifest.version, manifest.artifact.sha256, rows.values)
        cached = await self.cache.get_many(keys)
        entries: list[Entry | None] = cached if cached is not None else [None] * len(rows)
        misses = [i for i, entry in enumerate(entries) if entry is None]
        hits = len(rows) - len(misses)
        self.metrics.count_cache(
            hits, len(misses) if cached is not None else 0, 0 if cached is not None else len(rows)
        )
        if misses:
            computed = await self._compute(loaded, rows.subset(misses))
            for i, entry in zip(misses, computed, strict=True):
                entries[i] = entry
            if cached is not None:
                self.cache.put_many([(keys[i], entries[i]) for i in misses])  # type: ignore[misc]
        return self._result(loaded, entries, cache_status(cached is not None, len(misses), len(rows)))

    async def _compute(self, loaded: Loaded, rows: Rows) -> list[Entry]:
        prediction = await self._batcher.predict(loaded.runtime, rows)  # cache hits never get here
        self.metrics.count_predicted(loaded.manifest.model, loaded.version, len(rows))
        if prediction.probabilities is None:
            return [{"l": label} for label in prediction.labels]
        return [{"l": lb, "p": p} for lb, p in zip(prediction.labels, prediction.probabilities, strict=True)]

    @staticmethod
    def _result(loaded: Loaded, entries: list[Entry | None], cache: str) -> Result:
        done = [entry for entry in entries if entry is not None]
        manifest = loaded.manifest
        probabilities = [entry["p"] for entry in done] if manifest.is_classifier else None
        return Result(
            model=manifest.model,
            version=manifest.version,
            labels=[entry["l"] for entry in done],
            probabilities=probabilities,
            classes=manifest.classes,
            cache=cache,
        )


def _recommended(loaded: Loaded, entries: list[Entry], cache: str) -> Result:
    return Result(
        model=loaded.manifest.model,
        version=loaded.version,
        labels=[entry["l"] for entry in entries],
        probabilities=None,
        classes=None,
        cache=cache,
        extra={"scores": [entry["s"] for entry in entries], "sources": [entry["src"] for entry in entries]},
    )
