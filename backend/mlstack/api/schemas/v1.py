"""KServe V1 / TF Serving style shapes: `instances` in, `predictions` (and probabilities) out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlstack.store.manifest import Manifest


def instances(limit_setting: str) -> Any:
    """`instances`: at least one row, at most the named setting's number (openapi.py fills it in)."""
    return Field(
        min_length=1,
        examples=[[{"tenure_months": 12, "contract": "One year"}]],
        json_schema_extra={"x-max-items-setting": limit_setting},
    )


class V1PredictRequest(BaseModel):
    """One row per instance: an object of feature name → value, exactly the model's inputs."""

    model_config = ConfigDict(extra="forbid")

    instances: list[dict[str, Any]] = instances("max_instances")


class V1PredictResponse(BaseModel):
    """Predictions in the order of `instances`; `probabilities` per class for classifiers."""

    model_name: str
    model_version: str
    predictions: list[Any]
    """Labels or numbers; for a recommender, lists of item ids, best first."""
    probabilities: list[dict[str, float]] | None = None
    scores: list[list[float]] | None = None
    """A recommender's score of each item it recommends."""
    sources: list[str] | None = None
    """A recommender's source of each list: personal, or the popular fallback."""


class ServedManifest(Manifest):
    """The manifest of the version a replica serves, and the runtime it serves it with."""

    engine: Literal["joblib", "onnx"]
    """The runtime this replica serves the version with."""


class ModelSummary(BaseModel):
    """A model in the store and what this replica serves of it."""

    name: str
    task: str | None
    versions: list[str]
    current: str | None
    """The version the store's CURRENT names."""
    serving: str | None
    """The version this replica answers with by default (differs from `current` until a reload)."""
    loaded: list[str]
    error: str | None = None


class ModelList(BaseModel):
    models: list[ModelSummary]


class ReloadResult(BaseModel):
    """The version served before and after a reload."""

    model: str
    previous_version: str | None
    version: str
