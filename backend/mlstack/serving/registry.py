"""The versions this replica has loaded, which one is current per model, and the atomic swap on reload."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from mlstack.drift.counts import RowCounter
from mlstack.errors import ArtifactRejected, ModelNotFound, ModelNotReady
from mlstack.serving.lifecycle import Canary, Lifecycle
from mlstack.serving.runtime import Runtime
from mlstack.serving.runtimes import Answering, RowValidator, RuntimeFactory
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore
from mlstack.telemetry.metrics import Metrics

log = logging.getLogger("mlstack.serving.registry")


@dataclass(frozen=True, slots=True)
class Loaded:
    """One verified, loaded version: what answers its predictions, what answers its explanations, and its
    live drift counters."""

    manifest: Manifest
    predicting: Answering
    explaining: Answering
    """`:explain`: built at load (the tree method imports shap at its first explanation); a version that
    cannot be explained answers 409 with the reason."""
    drift_counts: RowCounter
    """Counts the rows served into the version's profile bins (does nothing for a version without one)."""

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def runtime(self) -> Runtime:
        return self.predicting.runtime

    @property
    def validator(self) -> RowValidator:
        return self.predicting.validator


class Registry:
    """Loaded versions keyed by (model, version); `current` maps a model to its served version.

    Loading runs in a worker thread and the maps are only changed on the event loop, so a request
    sees either the old or the new version, never a half-loaded one.
    """

    def __init__(
        self,
        store: ModelStore,
        runtimes: RuntimeFactory,
        metrics: Metrics,
        on_loaded: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._runtimes = runtimes
        self._metrics = metrics
        self._on_loaded = on_loaded
        """Called on the event loop after each version is loaded (the process tunes its heap then)."""
        self._loaded: dict[tuple[str, str], Loaded] = {}
        self.current: dict[str, str] = {}
        self.canaries: dict[str, Canary] = {}
        self.failures: dict[str, str] = {}
        self._lifecycle = Lifecycle(store)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def load_all(self) -> None:
        """At start: each model's CURRENT version. A failure is logged and leaves that model not ready."""
        for model in self.store.models():
            try:
                await self.reload(model)
            except (ArtifactRejected, ModelNotFound, ModelNotReady) as exc:
                log.error("model %s not loaded: %s", model, exc)

    async def reload(self, model: str) -> tuple[str | None, str]:
        """Load CURRENT (and the canary) beside the old versions, then switch. Returns (old, new)."""
        version = self.store.current(model)
        if version is None:
            raise ModelNotReady(f"model '{model}' has no CURRENT version in the store")
        canary = self._lifecycle.canary(model)
        try:
            for needed in (version, canary.version if canary else None):
                if needed is not None:
                    await self.get(model, needed)
        except ArtifactRejected as exc:
            self.failures[model] = str(exc)
            raise
        previous = self.current.get(model)
        self.current[model] = version  # the switch: requests from here on see the new versions
        self._set_canary(model, canary)
        if previous is not None:
            self._metrics.model_loaded.labels(model, previous).set(0)
        self._metrics.model_loaded.labels(model, version).set(1)
        self.failures.pop(model, None)
        log.info("model %s now serves version %s (was %s)", model, version, previous)
        return previous, version

    async def sync(self) -> None:
        """Reload every model whose CURRENT or canary changed in the store; a failure keeps the old."""
        for model in self.store.models():
            canary = self._lifecycle.canary(model)
            if (self.store.current(model), canary) == (self.current.get(model), self.canaries.get(model)):
                continue
            try:
                await self.reload(model)
            except (ArtifactRejected, ModelNotFound, ModelNotReady) as exc:
                log.error("model %s keeps version %s: %s", model, self.current.get(model), exc)

    def choose(self, model: str) -> str | None:
        """The version for an unpinned request: the canary for its share of traffic, else the current."""
        canary = self.canaries.get(model)
        if canary is not None and random.random() * 100 < canary.percent:  # a traffic split, not cryptography
            return canary.version
        return self.current.get(model)

    async def get(self, model: str, version: str | None = None) -> Loaded:
        """A loaded version; the current one when `version` is None. Loads a pinned version on first use."""
        if version is None:
            version = self.current.get(model)
            if version is None:
                return await self._first_use(model)
        loaded = self._loaded.get((model, version))
        return loaded if loaded is not None else await self._load(model, version)

    def _set_canary(self, model: str, canary: Canary | None) -> None:
        if canary is None:
            self.canaries.pop(model, None)
        else:
            self.canaries[model] = canary

    def forget(self, model: str, version: str) -> None:
        """Drop a deleted version from memory (it is neither current nor canary)."""
        self._loaded.pop((model, version), None)

    def all_loaded(self) -> list[Loaded]:
        return list(self._loaded.values())

    def loaded_drift_counts(self, model: str, version: str) -> RowCounter | None:
        loaded = self._loaded.get((model, version))
        return loaded.drift_counts if loaded is not None else None

    def loaded_versions(self, model: str) -> list[str]:
        return sorted((v for m, v in self._loaded if m == model), key=int)

    @property
    def ready(self) -> bool:
        return bool(self.current)

    async def _first_use(self, model: str) -> Loaded:
        if model not in self.store.models():
            raise ModelNotFound(model)
        try:
            await self.reload(model)
        except ArtifactRejected as exc:
            raise ModelNotReady(f"model '{model}' is not loaded: {exc}") from None
        return self._loaded[(model, self.current[model])]

    async def _load(self, model: str, version: str) -> Loaded:
        lock = self._locks.setdefault((model, version), asyncio.Lock())
        async with lock:  # concurrent first requests for a version load it once
            if (model, version) not in self._loaded:
                self._loaded[(model, version)] = await asyncio.to_thread(self._build, model, version)
                self._on_loaded()
        return self._loaded[(model, version)]

    def _build(self, model: str, version: str) -> Loaded:
        manifest, artifact = self.store.load(model, version)
        predicting, explaining = self._runtimes.build(manifest, artifact)
        drift_counts = self._runtimes.drift_counts(manifest)
        log.info(
            "loaded %s version %s (sha256 %s…), served with %s",
            model,
            version,
            manifest.artifact.sha256[:12],
            predicting.runtime.engine,
        )
        return Loaded(manifest, predicting, explaining, drift_counts)
