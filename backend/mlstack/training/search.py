"""A data scientist's search: split, cross-validated random search over model families, evaluation."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import loguniform, uniform
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    KFold,
    ParameterSampler,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from tqdm import tqdm

from mlstack.frames import prepare_frame
from mlstack.store.manifest import Feature
from mlstack.training import evaluation
from mlstack.training.pipeline import build_pipeline

Task = Literal["classification", "regression"]
CANDIDATES = {"fast": 2, "full": 6}
TEST_SHARE = 0.2


@dataclass(frozen=True)
class Family:
    """A model family and the distributions its hyper-parameters are drawn from."""

    name: str
    estimator: BaseEstimator
    space: dict[str, Any]


@dataclass
class SearchResult:
    """The refitted best pipeline, how it was chosen and how it did on the held-out test set."""

    pipeline: Pipeline
    family: str
    params: dict[str, Any]
    scoring: str
    cv_score: float
    metrics: dict[str, Any]
    train_rows: int
    test_rows: int
    summary: list[dict[str, Any]] = field(default_factory=list)
    train_frame: pd.DataFrame | None = None
    """The prepared training rows (features only), for the ONNX export's float32 error estimate."""
    holdout: pd.DataFrame | None = None
    """The prepared held-out rows (features only), for the ONNX parity check."""


def families(task: Task, seed: int) -> list[Family]:
    if task == "classification":
        return [
            Family(
                "logistic_regression",
                LogisticRegression(max_iter=1000),
                {"model__C": loguniform(0.01, 10), "model__class_weight": [None, "balanced"]},
            ),
            Family(
                "hist_gradient_boosting",
                HistGradientBoostingClassifier(random_state=seed),
                {
                    "model__learning_rate": loguniform(0.03, 0.3),
                    "model__max_leaf_nodes": [15, 31, 63],
                    "model__max_iter": [100, 200],
                    "model__l2_regularization": uniform(0, 1),
                },
            ),
        ]
    return [
        Family("ridge", Ridge(), {"model__alpha": loguniform(0.01, 100)}),
        Family(
            "hist_gradient_boosting",
            HistGradientBoostingRegressor(random_state=seed),
            {
                "model__learning_rate": loguniform(0.03, 0.3),
                "model__max_leaf_nodes": [15, 31, 63],
                "model__max_iter": [100, 200],
                "model__l2_regularization": uniform(0, 1),
            },
        ),
    ]


def scoring_for(task: Task, target: pd.Series) -> str:
    if task == "regression":
        return "neg_root_mean_squared_error"
    if target.nunique() > 2:
        return "f1_macro"
    # with rare positives ROC AUC flatters every model; precision-recall tells them apart
    return "average_precision" if target.value_counts(normalize=True).min() < 0.05 else "roc_auc"


def search(
    frame: pd.DataFrame,
    target: str,
    features: list[Feature],
    task: Task,
    effort: str = "full",
    seed: int = 0,
) -> SearchResult:
    """Split 80/20, search each family with 3-fold CV on the training part, refit the best, evaluate."""
    X_train, X_test, y_train, y_test = split(prepare_frame(frame, features), frame[target], task, seed)
    scoring = scoring_for(task, frame[target])
    candidates = _candidates(families(task, seed), CANDIDATES[effort], seed)
    folds = _folds(task, seed)
    summary, (family, params, score) = _run_candidates(candidates, features, X_train, y_train, scoring, folds)
    pipeline = _pipeline(features, family, params).fit(X_train, y_train)
    metrics = evaluation.evaluate(pipeline, X_test, y_test, task)
    return SearchResult(
        pipeline,
        family.name,
        _plain(params),
        scoring,
        score,
        metrics,
        len(X_train),
        len(X_test),
        summary,
        X_train,
        X_test,
    )


def split(X: pd.DataFrame, y: pd.Series, task: Task, seed: int = 0) -> list[Any]:
    """X_train, X_test, y_train, y_test: 20% held out, stratified for classifiers, the same for a seed."""
    stratify = y if task == "classification" else None
    parts: list[Any] = train_test_split(X, y, test_size=TEST_SHARE, random_state=seed, stratify=stratify)
    return parts


def _folds(task: Task, seed: int) -> KFold | StratifiedKFold:
    if task == "classification":
        return StratifiedKFold(3, shuffle=True, random_state=seed)
    return KFold(3, shuffle=True, random_state=seed)


def _candidates(options: list[Family], per_family: int, seed: int) -> list[tuple[Family, dict[str, Any]]]:
    return [
        (fam, params)
        for fam in options
        for params in ParameterSampler(fam.space, n_iter=per_family, random_state=seed)
    ]


def _run_candidates(
    candidates: list[tuple[Family, dict[str, Any]]],
    features: list[Feature],
    X: pd.DataFrame,
    y: pd.Series,
    scoring: str,
    folds: KFold | StratifiedKFold,
) -> tuple[list[dict[str, Any]], tuple[Family, dict[str, Any], float]]:
    best: dict[str, tuple[Family, dict[str, Any], float]] = {}
    progress = tqdm(candidates, desc="search", unit="candidate", file=sys.stderr, dynamic_ncols=True)
    for fam, params in progress:
        scores = cross_val_score(_pipeline(features, fam, params), X, y, scoring=scoring, cv=folds, n_jobs=1)
        score = float(np.mean(scores))
        if fam.name not in best or score > best[fam.name][2]:
            best[fam.name] = (fam, params, score)
        progress.set_postfix_str(f"{fam.name} {scoring}={score:.4f}")
    summary = [
        {"family": name, "best_cv_score": round(s, 6), "params": _plain(p)}
        for name, (_, p, s) in best.items()
    ]
    for row in summary:
        print(
            f"  {row['family']:<24} best cross-validated {scoring}: {row['best_cv_score']:.4f}",
            file=sys.stderr,
        )
    return summary, max(best.values(), key=lambda item: item[2])


def _pipeline(features: list[Feature], fam: Family, params: dict[str, Any]) -> Pipeline:
    return build_pipeline(features, clone(fam.estimator)).set_params(**params)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as JSON-native values, without the pipeline step prefix."""
    plain = {}
    for key, value in params.items():
        plain[key.removeprefix("model__")] = value.item() if isinstance(value, np.generic) else value
    return plain
