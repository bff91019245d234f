"""The explainer of one loaded tabular version: rows in, per-feature contributions out, checked to add up.

Every method answers through the same steps: the rows are transformed once, the estimator's output and
the method's contributions are taken from that one matrix, one-hot columns are summed back to their
features, and base + Σ contributions is compared with the output before anything is returned.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from mlstack.explain.artifact import ExplainData
from mlstack.explain.columns import ColumnMap, column_map
from mlstack.explain.errors import AdditivityBroken, Unexplainable
from mlstack.explain.linear import LINEAR_MODELS, LinearMethod
from mlstack.explain.outputs import ModelOutput
from mlstack.explain.result import Explained, FeatureContribution, RowExplanation
from mlstack.explain.sampling import SamplingMethod
from mlstack.explain.tree import TREE_MODELS, TreeMethod, refuse_categorical_splits
from mlstack.frames import columns_frame
from mlstack.serving.validation import Rows
from mlstack.store.manifest import ExplanationMethod, Feature

ROUNDING = 1e-12
"""Float64 rounding allowed on top of a method's tolerance, relative to the size of the terms: a row far
outside the training data (values of 1e15 and more) has terms whose sum float64 cannot carry to 1e-6.
Within the data's range it adds less than 1e-10."""


class Method(Protocol):
    name: str
    tolerance: float

    def attribute(self, matrix: np.ndarray, classes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...


def method_for(pipeline: Any, is_classifier: bool) -> ExplanationMethod:
    """Which method explains this pipeline; Unexplainable (with the reason) when none does safely."""
    if not isinstance(pipeline, Pipeline) or not isinstance(pipeline[0], ColumnTransformer):
        raise Unexplainable("not a Pipeline that starts with a ColumnTransformer")
    estimator = pipeline[-1]
    if isinstance(estimator, LINEAR_MODELS):
        return "linear"
    if isinstance(estimator, TREE_MODELS):
        refuse_categorical_splits(estimator)
        return "tree_path_dependent"
    if is_classifier and not hasattr(estimator, "predict_proba"):
        raise Unexplainable(f"{type(estimator).__name__} gives no probabilities to take log-odds of")
    return "sampling_permutation"


class TabularExplainer:
    """Built once per loaded version (the tree method imports shap at its first use)."""

    def __init__(
        self,
        pipeline: Pipeline,
        features: list[Feature],
        is_classifier: bool,
        data: ExplainData,
        permutations: int,
    ) -> None:
        self.features = features
        self._preprocess = pipeline[0]
        self._columns = column_map(self._preprocess, [f.name for f in features])
        self.method_name = method_for(pipeline, is_classifier)
        self._classes = list(pipeline.classes_) if is_classifier else None
        self._output = ModelOutput(
            pipeline[-1], is_classifier, raw=self.method_name != "sampling_permutation"
        )
        self.method = self._method(pipeline[-1], data, permutations)

    def _method(self, estimator: Any, data: ExplainData, permutations: int) -> Method:
        if self.method_name == "linear":
            if data.reference.shape != self._columns.owner.shape:
                raise Unexplainable("the stored reference does not match the transformed columns")
            return LinearMethod(estimator, data.reference, self._columns)
        if self.method_name == "tree_path_dependent":
            return TreeMethod(estimator, self._columns)
        if data.background.empty:
            raise Unexplainable("no background rows stored for the sampling method")
        background = self._matrix(data.background)
        return SamplingMethod(self._output, background, self._columns, permutations)

    @property
    def columns(self) -> ColumnMap:
        return self._columns

    @property
    def permutations(self) -> int | None:
        """The sampling method's orderings per row (its answers depend on them); None for exact methods."""
        return self.method.permutations if isinstance(self.method, SamplingMethod) else None

    def warm(self) -> None:
        """Do now the work the first explanation would do (the tree method's shap import and build)."""
        if isinstance(self.method, TreeMethod):
            self.method.warm()

    def explain(self, rows: Rows) -> Explained:
        """One explanation per row; AdditivityBroken if one would not add up (never returned)."""
        matrix = self._matrix(frame_of(rows))
        outputs = self._output(matrix)
        base, phi = self.method.attribute(matrix, outputs.classes)
        gap = np.abs(base + phi.sum(axis=1) - outputs.values)
        magnitude = np.abs(base) + np.abs(phi).sum(axis=1) + np.abs(outputs.values)
        if not np.all(gap <= self.method.tolerance + ROUNDING * magnitude):
            raise AdditivityBroken(
                f"{self.method_name}: base + contributions is off the output by {gap.max():.3g}"
            )
        explained = [
            RowExplanation(
                output=float(outputs.values[i]),
                base_value=float(base[i]),
                contributions=self._contributions(rows.values[i], phi[i]),
                probability=None if outputs.probabilities is None else float(outputs.probabilities[i]),
                explained_class=None
                if outputs.classes is None or self._classes is None
                else _plain(self._classes[outputs.classes[i]]),
            )
            for i in range(len(rows))
        ]
        return Explained(
            self.method_name,
            self._output.space,
            "joblib",
            explained,
            self.method.tolerance,
            self.permutations,
        )

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = self._preprocess.transform(frame)
        dense = matrix.toarray() if hasattr(matrix, "toarray") else matrix
        return np.asarray(dense, dtype=np.float64)

    def _contributions(self, values: tuple[Any, ...], phi: np.ndarray) -> list[FeatureContribution]:
        imputed_as = self._columns.imputed_as
        return [
            FeatureContribution(
                feature=f.name,
                value=value,
                contribution=float(phi[i]),
                imputed=value is None and imputed_as[i] is not None,
                imputed_as=imputed_as[i] if value is None else None,
            )
            for i, (f, value) in enumerate(zip(self.features, values, strict=True))
        ]


def frame_of(rows: Rows) -> pd.DataFrame:
    """Validated rows as the frame the pipeline was trained on (the same dtypes as serving's)."""
    return columns_frame(rows.features, rows.columns())


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
