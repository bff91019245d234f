"""What training prepares so a version can be explained: the method, explain.json, and a check that the
explanations add up on held-out rows before anything is published. Refusals become manifest facts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlstack.explain.artifact import BACKGROUND_ROWS, ExplainData, encode
from mlstack.explain.engine import TabularExplainer, method_for
from mlstack.explain.errors import AdditivityBroken, Unexplainable
from mlstack.serving.validation import Rows
from mlstack.store.manifest import ExplanationFacts, Feature

CHECKED_ROWS = 200
"""Held-out rows whose explanations must add up before the version is published as explainable."""
CHECK_PERMUTATIONS = 2
"""Orderings for the sampling method's check: additivity does not depend on the count, only cost does."""


def prepare(
    pipeline: Any,
    features: list[Feature],
    is_classifier: bool,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int = 0,
) -> tuple[ExplanationFacts, bytes | None]:
    """The manifest facts and explain.json's bytes (None when the model cannot be explained)."""
    try:
        method_for(pipeline, is_classifier)  # refuses before anything is computed
        background = train.sample(min(BACKGROUND_ROWS, len(train)), random_state=seed)
        data = ExplainData(_reference(pipeline, train), background)
        explainer = TabularExplainer(pipeline, features, is_classifier, data, CHECK_PERMUTATIONS)
        explainer.explain(rows_of(holdout.head(CHECKED_ROWS), features))
    except (Unexplainable, AdditivityBroken) as exc:
        return ExplanationFacts(method=None, reason=str(exc)), None
    facts = ExplanationFacts(method=explainer.method_name, background_rows=len(data.background))
    return facts, encode(data, features)


def rows_of(frame: pd.DataFrame, features: list[Feature]) -> Rows:
    """A prepared frame as validated rows (NaN → None, numpy scalars → Python values)."""
    values = [
        tuple(None if pd.isna(v) else (v.item() if isinstance(v, np.generic) else v) for v in row)
        for row in frame[[f.name for f in features]].itertuples(index=False)
    ]
    return Rows(tuple(features), values)


def _reference(pipeline: Any, train: pd.DataFrame) -> np.ndarray:
    matrix = pipeline[0].transform(train)
    dense = matrix.toarray() if hasattr(matrix, "toarray") else matrix
    return np.asarray(np.asarray(dense, dtype=np.float64).mean(axis=0), dtype=np.float64)
