"""Exact contributions of a linear model, in closed form: coef · (x − mean of the training rows), per
transformed column, with base value coef · mean + intercept (interventional SHAP of a linear model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge

from mlstack.explain.columns import ColumnMap

LINEAR_MODELS = (LogisticRegression, Ridge, LinearRegression, Lasso, ElasticNet)
"""Estimators whose raw output (decision_function or predict) is coef · x + intercept."""


class LinearMethod:
    name = "linear"
    tolerance = 1e-6

    def __init__(self, estimator: Any, reference: np.ndarray, columns: ColumnMap) -> None:
        self._coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
        self._intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
        self._reference = reference
        self._columns = columns

    def attribute(self, matrix: np.ndarray, classes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Base value per row (n,) and contributions per row and feature (n, features)."""
        # one coefficient row for a regressor or a binary classifier, one per class otherwise
        which = classes if classes is not None and len(self._coef) > 1 else np.zeros(len(matrix), np.int64)
        coef = self._coef[which]
        base = coef @ self._reference + self._intercept[which]
        return base, self._columns.group(coef * (matrix - self._reference))
