"""A data set's profile from a frame: each feature alone, each against the target, the numbers together.

Features are read as the pipeline and the replica see them (`prepare_frame`: numbers and booleans as
float64, strings as str), so live rows can later be binned by the very same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlstack.frames import prepare_frame
from mlstack.profile import association
from mlstack.profile.bins import bin_indices, bin_labels, boolean_key, decile_edges, kept_categories
from mlstack.profile.schema import (
    Bins,
    Categories,
    Correlations,
    Distribution,
    FeatureProfile,
    NumericStats,
    Profile,
    TargetRelation,
)
from mlstack.store.manifest import Feature, FeatureType, Task

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
DISPLAY_BINS = 20
"""Equal-width bins of the distribution chart; integers spanning at most this many values get one each."""

DISCRETE_VALUES = 20
"""A number with at most this many values is discrete to mutual information: neighbour counts break down
on ties (0.000 nats for a 5-valued feature whose binned estimate is 0.003)."""

Codes = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Target:
    """The target as every relation needs it: codes per class (classifiers) or values (regressors)."""

    classifier: bool
    values: Floats
    """Class codes (as floats) or the numbers."""
    classes: list[str]
    focus: str | None

    @property
    def codes(self) -> Codes:
        return self.values.astype(np.intp)


def build_profile(
    frame: pd.DataFrame,
    target: str,
    features: list[Feature],
    task: Task,
    source: str,
    data_sha256: str | None = None,
) -> Profile:
    """The profile of `frame` (rows with a target), its features typed as in `features`."""
    if task == "recommendation":
        raise ValueError("a recommender's interactions have no feature profile")
    labels = frame[target]
    goal = _target(labels, task == "classification")
    prepared = prepare_frame(frame, features)
    return Profile(
        source=source,
        data_sha256=data_sha256,
        rows=len(frame),
        task=task,
        target=_target_profile(target, labels, goal),
        focus_class=goal.focus,
        features=[_feature(f.name, f.type, prepared[f.name], goal) for f in features],
        correlations=_correlations(prepared, [f.name for f in features if f.type != "string"]),
    )


def _target(labels: pd.Series, classifier: bool) -> _Target:
    if not classifier:
        return _Target(False, labels.to_numpy(dtype=np.float64), [], None)
    ordered = sorted(labels.unique().tolist())  # scikit-learn's classes_ order
    codes = labels.map({label: i for i, label in enumerate(ordered)}).to_numpy(dtype=np.float64)
    counts = np.bincount(codes.astype(np.intp), minlength=len(ordered))
    focus = 1 if len(ordered) == 2 else int(np.argmin(counts))
    return _Target(True, codes, [str(c) for c in ordered], str(ordered[focus]))


def _target_profile(name: str, labels: pd.Series, goal: _Target) -> FeatureProfile:
    if not goal.classifier:
        return _numeric(name, _type_of(labels), labels.astype("float64"), None)
    counts = np.bincount(goal.codes, minlength=len(goal.classes))
    return FeatureProfile(
        name=name,
        type=_type_of(labels),
        kind="categorical",
        count=len(labels),
        missing=0,
        missing_share=0.0,
        distinct=len(goal.classes),
        categories=Categories(counts={c: int(n) for c, n in zip(goal.classes, counts, strict=True)}),
    )


def _type_of(labels: pd.Series) -> FeatureType:
    if pd.api.types.is_bool_dtype(labels):
        return "boolean"
    if pd.api.types.is_integer_dtype(labels):
        return "integer"
    return "number" if pd.api.types.is_numeric_dtype(labels) else "string"


def _feature(name: str, kind: FeatureType, column: pd.Series, goal: _Target) -> FeatureProfile:
    if kind in ("number", "integer"):
        return _numeric(name, kind, column, goal)
    return _categorical(name, kind, column, goal)


def _numeric(name: str, kind: FeatureType, column: pd.Series, goal: _Target | None) -> FeatureProfile:
    present = column.dropna()
    values = present.to_numpy(dtype=np.float64)
    edges = decile_edges(values)
    codes = np.full(len(column), len(edges) + 1, dtype=np.intp)  # the missing bin comes last
    codes[column.notna().to_numpy()] = bin_indices(edges, values)
    relation = None
    if goal is not None:
        relation = _relation([*bin_labels(edges), "(missing)"], codes, goal, column)
    return FeatureProfile(
        name=name,
        type=kind,
        kind="numeric",
        **_counts(column),
        stats=_stats(present) if len(values) else None,
        bins=_bins(edges, codes[codes <= len(edges)], values) if len(values) else None,
        distribution=_distribution(values, kind) if len(values) else None,
        target=relation,
    )


def _counts(column: pd.Series) -> dict[str, Any]:
    missing = int(column.isna().sum())
    return {
        "count": len(column) - missing,
        "missing": missing,
        "missing_share": missing / len(column) if len(column) else 0.0,
        "distinct": int(column.nunique()),
    }


def _stats(present: pd.Series) -> NumericStats:
    quantiles = present.quantile(list(QUANTILES))
    return NumericStats(
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=_finite(present.std()),
        quantiles={str(q): float(v) for q, v in quantiles.items()},
    )


def _bins(edges: list[float], codes: Codes, values: Floats) -> Bins:
    size = len(edges) + 1
    counts = np.bincount(codes, minlength=size)
    sums = np.bincount(codes, weights=values, minlength=size)
    means = [float(s / n) if n else None for s, n in zip(sums, counts, strict=True)]
    return Bins(edges=edges, counts=[int(n) for n in counts], means=means, labels=bin_labels(edges))


def _distribution(values: Floats, kind: FeatureType) -> Distribution:
    low, high = float(values.min()), float(values.max())
    if kind == "integer" and high - low < DISPLAY_BINS:
        edges = np.arange(low - 0.5, high + 1.5)  # one bar per value
    elif low == high:
        edges = np.array([low - 0.5, high + 0.5])
    else:
        edges = np.histogram_bin_edges(values, bins=DISPLAY_BINS, range=(low, high))
    counts, _ = np.histogram(values, bins=edges)
    return Distribution(edges=[float(e) for e in edges], counts=[int(n) for n in counts])


def _categorical(name: str, kind: FeatureType, column: pd.Series, goal: _Target) -> FeatureProfile:
    keys = column.map(boolean_key, na_action="ignore") if kind == "boolean" else column
    counts = {str(k): int(n) for k, n in keys.value_counts(sort=False).items()}
    kept = kept_categories(counts, len(column))
    index = {name: i for i, name in enumerate(kept)}
    kept_or_other = keys.map(index).fillna(len(kept)).to_numpy(dtype=np.intp)
    codes = np.where(keys.isna().to_numpy(), len(kept) + 1, kept_or_other)  # the missing bin comes last
    other = sum(n for k, n in counts.items() if k not in index)
    return FeatureProfile(
        name=name,
        type=kind,
        kind="categorical",
        **_counts(keys),
        categories=Categories(
            counts={k: counts[k] for k in kept}, other=other, other_distinct=len(counts) - len(kept)
        ),
        target=_relation([*kept, "(other)", "(missing)"], codes, goal, None),
    )


def _relation(bins: list[str], codes: Codes, goal: _Target, numbers: pd.Series | None) -> TargetRelation:
    """The target per bin, and the measures that fit: `numbers` is the feature's values when it has them."""
    rows = np.bincount(codes, minlength=len(bins))
    present = numbers.notna().to_numpy() if numbers is not None else np.ones(len(codes), dtype=bool)
    x = numbers.to_numpy(dtype=np.float64)[present] if numbers is not None else codes.astype(np.float64)
    discrete = numbers is None or numbers.nunique() <= DISCRETE_VALUES
    mi = association.mutual_information(x, goal.values[present], discrete, goal.classifier)
    as_numbers = _numeric_target(goal)
    pearson, spearman = None, None
    if numbers is not None and as_numbers is not None:
        pearson, spearman = _correlations_with(x, as_numbers[present])
    if goal.classifier:
        return TargetRelation(
            bins=bins,
            rows=[int(n) for n in rows],
            class_shares={c: _per_bin(codes, goal.codes == i, rows) for i, c in enumerate(goal.classes)},
            cramers_v=association.cramers_v(codes, goal.codes),
            mutual_information=mi,
            pearson=pearson,
            spearman=spearman,
        )
    return TargetRelation(
        bins=bins,
        rows=[int(n) for n in rows],
        target_mean=_per_bin(codes, goal.values, rows),
        correlation_ratio=association.correlation_ratio(codes, goal.values) if numbers is None else None,
        mutual_information=mi,
        pearson=pearson,
        spearman=spearman,
    )


def _numeric_target(goal: _Target) -> Floats | None:
    """The target as numbers a correlation can use: a regressor's values, a binary class as 0/1."""
    if not goal.classifier:
        return goal.values
    return (goal.codes == 1).astype(np.float64) if len(goal.classes) == 2 else None


def _per_bin(codes: Codes, weights: npt.NDArray[Any], rows: Codes) -> list[float | None]:
    sums = np.bincount(codes, weights=weights.astype(np.float64), minlength=len(rows))
    return [float(s / n) if n else None for s, n in zip(sums, rows, strict=True)]


def _correlations_with(x: Floats, y: Floats) -> tuple[float | None, float | None]:
    """Pearson and Spearman; None without spread (scipy would warn)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    pair = pd.DataFrame({"x": x, "y": y})
    pearson = pair["x"].corr(pair["y"], method="pearson")
    return _finite(pearson), _finite(pair["x"].corr(pair["y"], method="spearman"))


def _correlations(prepared: pd.DataFrame, names: list[str]) -> Correlations | None:
    if len(names) < 2:
        return None
    columns = prepared[names]

    def matrix(method: Literal["pearson", "spearman"]) -> list[list[float | None]]:
        return [[_finite(v) for v in row] for row in columns.corr(method=method).to_numpy()]

    return Correlations(features=names, pearson=matrix("pearson"), spearman=matrix("spearman"))


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
