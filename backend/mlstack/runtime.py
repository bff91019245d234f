"""A loaded model version behind one interface: rows in, labels and class probabilities out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlstack.manifest import Manifest
from mlstack.training.pipeline import prepare_frame
from mlstack.validation import Rows


@dataclass(frozen=True, slots=True)
class Prediction:
    """Per-row outputs, in the order of the rows given."""

    labels: list[Any]
    probabilities: list[list[float]] | None = None


class Runtime(Protocol):
    """A verified, loaded model version. Only the registry builds one; routes never see its artifact."""

    manifest: Manifest
    engine: str

    def predict(self, rows: Rows) -> Prediction: ...


class SklearnRuntime:
    """A joblib-serialised scikit-learn Pipeline: preprocessing and estimator in one object."""

    engine = "joblib"

    def __init__(self, manifest: Manifest, pipeline: Any) -> None:
        self.manifest = manifest
        self._pipeline = pipeline
        self._classes = np.asarray(pipeline.classes_) if manifest.is_classifier else None

    def frame(self, rows: Rows) -> pd.DataFrame:
        raw = {f.name: rows.column(i) for i, f in enumerate(rows.features)}
        return prepare_frame(pd.DataFrame(raw), list(rows.features))

    def predict(self, rows: Rows) -> Prediction:
        frame = self.frame(rows)
        if self._classes is None:
            return Prediction(labels=self._pipeline.predict(frame).tolist())
        proba = self._pipeline.predict_proba(frame)
        # the most probable class is what predict() answers; taking it here saves a second pipeline pass
        labels = self._classes[proba.argmax(axis=1)].tolist()
        return Prediction(labels=labels, probabilities=proba.tolist())
