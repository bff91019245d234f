"""Which runtime serves a loaded version, and the validator its rows go through."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from mlstack.explain.loading import Explainer, explainer_for
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


class RuntimeFactory:
    """Builds a version's runtime from its verified artifact: a recommender for that task; otherwise its
    ONNX export when there is one, it verifies and it loads, else the joblib pipeline."""

    def __init__(self, settings: Settings, store: ModelStore, users: UserStore | None = None) -> None:
        self._settings = settings
        self._store = store
        self._users = users

    def build(self, manifest: Manifest, artifact: Any) -> tuple[Runtime, RowValidator]:
        settings = self._settings
        rows = Validator(manifest, settings.max_instances, settings.max_string_length)
        if manifest.task == "recommendation":
            recommender = RecommenderRuntime(manifest, artifact, self._users)
            return recommender, QueryValidator(manifest, recommender, rows, settings.recommend_max_k)
        return self._tabular(manifest, artifact), rows

    def explainer(self, manifest: Manifest, artifact: Any) -> Explainer:
        """The version's explainer, or an Unavailable saying why it has none (never raises)."""
        return explainer_for(
            manifest,
            artifact,
            lambda extra: self._store.read_artifact(manifest.model, manifest.version, extra),
            self._settings.explain_permutations,
        )

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
