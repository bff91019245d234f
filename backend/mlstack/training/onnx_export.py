"""The fitted pipeline as ONNX (skl2onnx), published only if it answers like the pipeline on held-out rows.

Parity, checked through the two serving runtimes on the same validated rows (each held-out row once as
it is and once with every nullable feature null):
- classifiers: identical labels, max |probability difference| < PROBA_TOLERANCE (1e-5);
- regressors: max |difference| / max(1, max |prediction|) < REGRESSION_TOLERANCE (1e-5), i.e. relative to
  the scale of the predictions: float32 keeps about 7 significant digits, and sums of a few hundred trees
  or of scaled features lose a few of them to rounding at the scale of the target, not of each value
  (measured: ~6e-7 for gradient boosting and ~1e-7 for ridge on the maintenance set).

The graph computes in float32 (onnxruntime has no double Imputer), while scikit-learn's
HistGradientBoosting compares float64 values with its thresholds, and a threshold often *equals* a data
value, or lies one float64 step beside it (a quantile of a column with repeated values). Such a value
goes one way in scikit-learn and, after float32 rounding, either way in ONNX (measured: |Δp| up to 0.05
on the churn set). So before converting, each split threshold is raised by a few times the float32
error measured on the training rows for its feature (a value on the threshold goes left in both), but
never past a training value that scikit-learn sends right. Only a value unseen in training and within
that sliver above a threshold (~1e-6 of the feature's scale) may still go the other way.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import skl2onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from mlstack.serving.runtime import ONNX_MISSING, OnnxRuntime, SklearnRuntime, onnx_feed
from mlstack.serving.validation import Rows
from mlstack.store.manifest import Feature, Manifest, OnnxExport

PROBA_TOLERANCE = 1e-5
REGRESSION_TOLERANCE = 1e-5
EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Export:
    """The ONNX file to publish (None when there is none) and the facts the manifest records."""

    data: bytes | None
    facts: OnnxExport


def not_requested() -> Export:
    return Export(None, OnnxExport(published=False, reason="not requested (--no-onnx)"))


def export(pipeline: Pipeline, draft: Manifest, train: pd.DataFrame, holdout: pd.DataFrame) -> Export:
    """Convert, then compare both runtimes on `holdout`; `draft` is the manifest the version will have."""
    versions = {"skl2onnx": skl2onnx.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        data = convert(pipeline, draft.inputs, train, draft.is_classifier)
        onnx_runtime = OnnxRuntime(draft, data)
    except Exception as exc:  # skl2onnx raises anything from NotImplementedError to RuntimeError
        reason = f"conversion failed: {_short(exc)}"
        return Export(None, OnnxExport(published=False, reason=reason, **versions))
    rows = frame_rows(holdout, draft.inputs)
    rows = Rows(rows.features, rows.values + [_nulled(row, rows.features) for row in rows.values])
    try:
        diff, problem = parity(SklearnRuntime(draft, pipeline), onnx_runtime, rows)
    except Exception as exc:  # onnxruntime refusing the rows is a failed check, not a failed training
        diff, problem = None, f"onnxruntime: {_short(exc)}"
    tolerance = PROBA_TOLERANCE if draft.is_classifier else REGRESSION_TOLERANCE
    facts = OnnxExport(
        published=problem is None,
        reason=None if problem is None else f"parity check failed: {problem}",
        max_abs_diff=diff,
        tolerance=tolerance,
        checked_rows=len(rows),
        **versions,
    )
    return Export(data if problem is None else None, facts)


def convert(pipeline: Pipeline, features: list[Feature], train: pd.DataFrame, classifier: bool) -> bytes:
    """The ONNX bytes of a copy of the pipeline: string imputers see ONNX_MISSING, thresholds widened."""
    original, pipeline = pipeline, copy.deepcopy(pipeline)
    _strings_missing_as_marker(pipeline)
    types = [(f.name, _tensor_type(f)) for f in features]
    estimator = pipeline.steps[-1][1]
    if hasattr(estimator, "_predictors"):  # HistGradientBoosting*: float64 splits, see the module docstring
        preprocess = Pipeline(pipeline.steps[:-1])
        exact, ours = _transformed(preprocess, Pipeline(original.steps[:-1]), types, features, train)
        _place_thresholds(estimator, exact, ours)
    options = {id(estimator): {"zipmap": False}} if classifier else None
    return _convert(pipeline, types, options)


def _convert(pipeline: Pipeline, types: list[Any], options: dict[int, Any] | None = None) -> bytes:
    with warnings.catch_warnings():
        # skl2onnx 1.20 puts False into integer tree attributes; protobuf 6 warns (7 refuses: pinned to 6)
        warnings.filterwarnings("ignore", "Field onnx.AttributeProto.ints", DeprecationWarning)
        data: bytes = convert_sklearn(pipeline, initial_types=types, options=options).SerializeToString()
    return data


def parity(reference: SklearnRuntime, candidate: OnnxRuntime, rows: Rows) -> tuple[float, str | None]:
    """The largest difference and, when the candidate breaks the tolerance, what went wrong."""
    want, got = reference.predict(rows), candidate.predict(rows)
    if want.probabilities is None or got.probabilities is None:
        expected, actual = np.asarray(want.labels, dtype=float), np.asarray(got.labels, dtype=float)
        diff = float(np.max(np.abs(expected - actual)) / max(1.0, float(np.max(np.abs(expected)))))
        bad = diff >= REGRESSION_TOLERANCE
        return diff, f"relative difference {diff:.2e} >= {REGRESSION_TOLERANCE:g}" if bad else None
    diff = float(np.max(np.abs(np.asarray(want.probabilities) - np.asarray(got.probabilities))))
    differing = sum(a != b for a, b in zip(want.labels, got.labels, strict=True))
    if differing:
        return diff, f"labels differ on {differing} of {len(rows)} rows"
    if diff >= PROBA_TOLERANCE:
        return diff, f"max |probability difference| {diff:.2e} >= {PROBA_TOLERANCE:g}"
    return diff, None


def frame_rows(frame: pd.DataFrame, features: list[Feature]) -> Rows:
    """Table rows as the validator hands them over: JSON-native values, None for missing."""
    columns = [[_native(v, f.type) for v in frame[f.name]] for f in features]
    return Rows(tuple(features), list(zip(*columns, strict=True)))


def _native(value: Any, kind: str) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if kind == "string":
        return str(value)
    return bool(value) if kind == "boolean" else float(value)


def _nulled(row: tuple[Any, ...], features: tuple[Feature, ...]) -> tuple[Any, ...]:
    return tuple(None if f.nullable else v for f, v in zip(features, row, strict=True))


def _strings_missing_as_marker(step: Any) -> None:
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            _strings_missing_as_marker(inner)
    elif isinstance(step, ColumnTransformer):
        for _, inner, _ in step.transformers_:
            _strings_missing_as_marker(inner)
    elif isinstance(step, SimpleImputer) and step.statistics_.dtype == object:
        step.missing_values = ONNX_MISSING


def _tensor_type(feature: Feature) -> Any:
    return StringTensorType([None, 1]) if feature.type == "string" else FloatTensorType([None, 1])


def _transformed(
    preprocess: Pipeline, reference: Pipeline, types: list[Any], features: list[Feature], train: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows as the trees see them: float64 from scikit-learn, float32 from the ONNX graph."""
    session = onnxruntime.InferenceSession(_convert(preprocess, types), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, onnx_feed(frame_rows(train, features)))
    return np.asarray(reference.transform(train), dtype=np.float64), ours.astype(np.float32)


def _place_thresholds(estimator: Any, exact: np.ndarray, ours: np.ndarray) -> None:
    """Raise each threshold by the float32 error of its feature (a value on it goes left in both), but
    never past a training value that scikit-learn sends right, nor below one it sends left."""
    margin = 4 * np.max(np.abs(ours - exact), axis=0)
    order = np.argsort(exact, axis=0, kind="stable")
    sorted_exact = np.take_along_axis(exact, order, axis=0)
    sorted_ours = np.take_along_axis(ours, order, axis=0)
    left_max = np.maximum.accumulate(sorted_ours, axis=0)  # the largest float32 value among the first k
    right_min = np.minimum.accumulate(sorted_ours[::-1], axis=0)[::-1]  # the smallest from k on
    for iteration in estimator._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            for i in np.flatnonzero(nodes["is_leaf"] == 0):
                j, exact_threshold = nodes["feature_idx"][i], nodes["num_threshold"][i]
                k = int(np.searchsorted(sorted_exact[:, j], exact_threshold, side="right"))
                threshold = np.float32(exact_threshold + margin[j] + 4 * EPS32 * abs(exact_threshold))
                if k < len(sorted_exact) and right_min[k, j] <= threshold:
                    threshold = np.nextafter(right_min[k, j], np.float32(-np.inf))
                if k > 0 and left_max[k - 1, j] > threshold:
                    threshold = left_max[k - 1, j]
                nodes["num_threshold"][i] = float(threshold)


def _short(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}"
