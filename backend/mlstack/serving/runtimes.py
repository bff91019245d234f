"""Which runtime serves a loaded version, and the validator its rows go through."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from mlstack.drift.counts import NO_COUNTS, LiveCounts, RowCounter
from mlstack.explain.loading import Explainer, explainer_for
from mlstack.explain.runtime import RecommendationExplaining, TabularExplaining
from mlstack.recommend.runtime import QueryValidator, RecommenderRuntime
from mlstack.serving.requests import Inputs
from mlstack.serving.runtime import OnnxRuntime, Runtime, SklearnRuntime
from mlstack.serving.validation import Rows, Validator
from mlstack.settings import Settings
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore
from mlstack.users.store import UserStore

log = logging.getLogger("mlstack.serving.runtimes")


class RowValidator(Protocol):
    def validate(self, inputs: Inputs) -> Rows: ...


@dataclass(frozen=True, slots=True)
class Answering:
    """How a loaded version answers one kind of request: the validator its rows pass (with that kind's
    batch limit) and the runtime that computes the answers."""

    runtime: Runtime
    validator: RowValidator


class RuntimeFactory:
    """Builds a version's runtimes from its verified artifact: a recommender for that task; otherwise its
    ONNX export when there is one, it verifies and it loads, else the joblib pipeline. Beside each, the
    runtime that explains its answers (`:explain`)."""

    def __init__(self, settings: Settings, store: ModelStore, users: UserStore | None = None) -> None:
        self._settings = settings
        self._store = store
        self._users = users

    def build(self, manifest: Manifest, artifact: Any) -> tuple[Answering, Answering]:
        """What answers the version's predictions, and what answers its explanations (the same checks,
        with the explanations' batch limit)."""
        settings = self._settings
        recommender = None
        if manifest.task == "recommendation":
            recommender = RecommenderRuntime(manifest, artifact, self._users)
            predicting: Runtime = recommender
            explaining: Runtime = RecommendationExplaining(recommender)
        else:
            predicting = self._tabular(manifest, artifact)
            explaining = TabularExplaining(predicting, self.explainer(manifest, artifact))
        return (
            Answering(predicting, self._validator(manifest, recommender, settings.max_instances)),
            Answering(explaining, self._validator(manifest, recommender, settings.explain_max_instances)),
        )

    def _validator(
        self, manifest: Manifest, recommender: RecommenderRuntime | None, max_rows: int
    ) -> RowValidator:
        rows = Validator(manifest, max_rows, self._settings.max_string_length)
        if recommender is None:
            return rows
        return QueryValidator(manifest, recommender, rows, self._settings.recommend_max_k)

    def explainer(self, manifest: Manifest, artifact: Any) -> Explainer:
        """The version's explainer, or an Unavailable saying why it has none (never raises)."""
        return explainer_for(
            manifest,
            artifact,
            lambda extra: self._store.read_artifact(manifest.model, manifest.version, extra),
            self._settings.explain_permutations,
        )

    def drift_counts(self, manifest: Manifest) -> RowCounter:
        """Live counters on the version's profile, when drift is counted and the version has a profile."""
        settings = self._settings
        if not (settings.drift_enabled and settings.redis_url) or manifest.profile_artifact is None:
            return NO_COUNTS
        profile = self._store.profile(manifest.model, manifest.version)
        try:
            return LiveCounts(profile, manifest.inputs) if profile is not None else NO_COUNTS
        except ValueError as exc:  # a profile this replica cannot count against must not stop the version
            log.error("model %s version %s: no live drift counts: %s", manifest.model, manifest.version, exc)
            return NO_COUNTS

    def _tabular(self, manifest: Manifest, pipeline: Any) -> Runtime:
        onnx = manifest.onnx_artifact
        if onnx is None or not self._settings.onnx_enabled:
            return SklearnRuntime(manifest, pipeline)
        # a bad ONNX file (checksum, or onnxruntime refusing it) must not stop a model: anything goes here
        try:
            return OnnxRuntime(manifest, self._store.read_artifact(manifest.model, manifest.version, onnx))
        except Exception as exc:
            log.error(
                "model %s version %s: ONNX export not used, serving the joblib pipeline: %s",
                manifest.model,
                manifest.version,
                exc,
            )
            return SklearnRuntime(manifest, pipeline)
