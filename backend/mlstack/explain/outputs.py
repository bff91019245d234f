"""The model output an explanation adds up to, computed from the transformed rows by the fitted estimator.

- a regressor: its prediction, in target units;
- a binary classifier: the log-odds of the positive class (`classes_[1]`), the probability beside it;
- more classes: the predicted class's score (its softmax logit for linear and tree models; its one-vs-rest
  log-odds for the sampling method), the probability beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

OutputSpace = Literal["target", "log_odds", "class_logit"]
LOGIT_CLIP = 1e-15
"""Probabilities are kept this far from 0 and 1 so a log-odds is finite."""


@dataclass(frozen=True)
class Outputs:
    """Per row: the output in its space, the explained class's index and its probability."""

    values: np.ndarray
    classes: np.ndarray | None
    probabilities: np.ndarray | None


class ModelOutput:
    """Reads one estimator's output; `raw` uses decision_function (exact for linear and tree models),
    otherwise log-odds are taken from predict_proba (any classifier with probabilities)."""

    def __init__(self, estimator: Any, is_classifier: bool, raw: bool) -> None:
        self.estimator = estimator
        self.is_classifier = is_classifier
        self.raw = raw
        self.binary = is_classifier and len(estimator.classes_) == 2

    @property
    def space(self) -> OutputSpace:
        if not self.is_classifier:
            return "target"
        return "log_odds" if self.binary or not self.raw else "class_logit"

    def __call__(self, matrix: np.ndarray) -> Outputs:
        if not self.is_classifier:
            return Outputs(np.asarray(self.estimator.predict(matrix), dtype=np.float64), None, None)
        proba = np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)
        rows = np.arange(len(proba))
        classes = np.ones(len(proba), dtype=np.int64) if self.binary else proba.argmax(axis=1)
        return Outputs(self.of_class(matrix, classes, proba), classes, proba[rows, classes])

    def of_class(
        self, matrix: np.ndarray, classes: np.ndarray, proba: np.ndarray | None = None
    ) -> np.ndarray:
        """The output for the given class of each row (regressors ignore `classes`)."""
        if not self.is_classifier:
            return np.asarray(self.estimator.predict(matrix), dtype=np.float64)
        rows = np.arange(len(matrix))
        if self.raw:
            scores = np.asarray(self.estimator.decision_function(matrix), dtype=np.float64)
            return scores if scores.ndim == 1 else scores[rows, classes]
        if proba is None:
            proba = np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)
        chosen = np.clip(proba[rows, classes], LOGIT_CLIP, 1 - LOGIT_CLIP)
        return np.asarray(np.log(chosen) - np.log1p(-chosen), dtype=np.float64)
