"""The one preprocessing recipe: input schema from a table, and the Pipeline (the frame every pipeline sees
is cast by mlstack.frames, which serving shares)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack.store.manifest import Feature, FeatureType


def infer_schema(frame: pd.DataFrame, target: str, reject_unknown: bool = True) -> list[Feature]:
    """Each column but the target as a Feature: type, nullable, categories or range, typical value."""
    return [_feature(str(name), frame[name], reject_unknown) for name in frame.columns if name != target]


def _feature(name: str, column: pd.Series, reject_unknown: bool) -> Feature:
    nullable = bool(column.isna().any())
    present = column.dropna()
    if _is_boolean(column, present):
        return Feature(name=name, type="boolean", nullable=nullable, typical=bool(present.mode().iloc[0]))
    if pd.api.types.is_numeric_dtype(column):
        return _numeric(name, column, present, nullable)
    values = present.astype(str)
    return Feature(
        name=name,
        type="string",
        nullable=nullable,
        categories=sorted(values.unique().tolist()),
        reject_unknown=reject_unknown,
        typical=str(values.mode().iloc[0]),
    )


def _is_boolean(column: pd.Series, present: pd.Series) -> bool:
    """A bool dtype, or (a CSV column with blanks) objects that are all True or False."""
    if pd.api.types.is_bool_dtype(column):
        return True
    flags = (bool, np.bool_)
    return column.dtype == object and len(present) > 0 and all(isinstance(v, flags) for v in present)


def _numeric(name: str, column: pd.Series, present: pd.Series, nullable: bool) -> Feature:
    kind: FeatureType = "integer" if pd.api.types.is_integer_dtype(column) else "number"
    median = float(present.median())
    typical: Any = int(round(median)) if kind == "integer" else round(median, 6)
    low, high = float(present.min()), float(present.max())
    return Feature(name=name, type=kind, nullable=nullable, typical=typical, minimum=low, maximum=high)


def build_pipeline(features: list[Feature], estimator: BaseEstimator) -> Pipeline:
    """Impute, scale numbers and booleans, impute, one-hot strings (unknown ones ignored), then a model."""
    numeric = [f.name for f in features if f.type != "string"]
    strings = [f.name for f in features if f.type == "string"]
    steps = []
    if numeric:
        steps.append(
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            )
        )
    if strings:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        steps.append(
            (
                "categorical",
                Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("one_hot", encoder)]),
                strings,
            )
        )
    # sparse_threshold=0: tree models need dense input
    preprocess = ColumnTransformer(steps, sparse_threshold=0.0, verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])
