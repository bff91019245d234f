"""Which original input feature each transformed column comes from, read from the fitted preprocessing's
structure (never by parsing generated column names: `plan_type_a` may be `plan` = `type_a` or
`plan_type` = `a`), and what a missing value of each feature is imputed as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from mlstack.explain.errors import Unexplainable

ONE_TO_ONE = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, OrdinalEncoder)
"""Steps whose output column i depends on input column i only."""


@dataclass(frozen=True)
class ColumnMap:
    """Transformed column j belongs to feature `owner[j]`; a feature may own several columns or none
    (an imputer drops a column that was empty in training)."""

    features: tuple[str, ...]
    owner: np.ndarray
    imputed_as: tuple[Any, ...]
    """Per feature, the value a missing one becomes (None when the pipeline does not impute it)."""

    @property
    def grouping(self) -> np.ndarray:
        """A 0/1 matrix (columns × features): contributions per column @ grouping = per feature."""
        matrix = np.zeros((len(self.owner), len(self.features)))
        matrix[np.arange(len(self.owner)), self.owner] = 1.0
        return matrix

    def group(self, per_column: np.ndarray) -> np.ndarray:
        """Per-row, per-column contributions summed onto the features that own the columns."""
        return np.asarray(per_column @ self.grouping, dtype=np.float64)


def column_map(preprocess: ColumnTransformer, features: list[str]) -> ColumnMap:
    """The map for a fitted ColumnTransformer; Unexplainable if a step is not understood."""
    width = sum(s.stop - s.start for s in preprocess.output_indices_.values())
    owner = np.full(width, -1, dtype=np.int64)
    imputed: dict[int, Any] = {}
    for name, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        origin = [features.index(c) for c in _names(columns, preprocess)]
        out = _walk(transformer, origin, imputed)
        span = preprocess.output_indices_[name]
        if len(out) != span.stop - span.start:
            raise Unexplainable(
                f"transformer {name!r}: {len(out)} columns expected, {span.stop - span.start} made"
            )
        owner[span] = out
    if (owner < 0).any():
        raise Unexplainable("some transformed columns come from no input feature")
    return ColumnMap(tuple(features), owner, tuple(imputed.get(i) for i in range(len(features))))


def _names(columns: Any, preprocess: ColumnTransformer) -> list[str]:
    names = list(preprocess.feature_names_in_)
    selected = [columns] if isinstance(columns, str | int) else list(columns)
    if all(isinstance(c, bool | np.bool_) for c in selected) and len(selected) == len(names):
        return [n for n, keep in zip(names, selected, strict=True) if keep]
    return [names[c] if isinstance(c, int | np.integer) else str(c) for c in selected]


def _walk(step: Any, origin: list[int], imputed: dict[int, Any]) -> list[int]:
    """The origins of a step's output columns, given the origins of its input columns."""
    if isinstance(step, str) and step == "passthrough":
        return origin
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            if inner is not None and not (isinstance(inner, str) and inner == "passthrough"):
                origin = _walk(inner, origin, imputed)
        return origin
    if isinstance(step, SimpleImputer):
        return _imputer(step, origin, imputed)
    if isinstance(step, ONE_TO_ONE):
        return origin
    if isinstance(step, OneHotEncoder):
        return _one_hot(step, origin)
    raise Unexplainable(f"preprocessing step {type(step).__name__} is not understood")


def _imputer(step: SimpleImputer, origin: list[int], imputed: dict[int, Any]) -> list[int]:
    statistics = step.statistics_
    keeps_all = step.keep_empty_features or step.strategy == "constant"
    kept = [i for i in range(len(origin)) if keeps_all or not pd.isna(statistics[i])]
    for i in kept:
        value = statistics[i]
        imputed.setdefault(origin[i], value.item() if isinstance(value, np.generic) else value)
    indicator = [origin[i] for i in step.indicator_.features_] if step.add_indicator else []
    return [origin[i] for i in kept] + indicator


def _one_hot(step: OneHotEncoder, origin: list[int]) -> list[int]:
    out: list[int] = []
    infrequent = getattr(step, "infrequent_categories_", None)
    for i, categories in enumerate(step.categories_):
        count = len(categories)
        if infrequent is not None and infrequent[i] is not None:
            count -= len(infrequent[i]) - 1
        if step.drop_idx_ is not None and step.drop_idx_[i] is not None:
            count -= 1
        out.extend([origin[i]] * count)
    return out
