"""Held-out evaluation: the figures a manifest records and the UI draws (confusion matrix, ROC, residuals)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import label_binarize

CURVE_POINTS = 50
RESIDUAL_POINTS = 200


def evaluate(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, task: str) -> dict[str, Any]:
    if task == "regression":
        return _regression(y.to_numpy(dtype=float), pipeline.predict(X))
    return _classification(pipeline, X, y.to_numpy())


def _classification(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    classes = pipeline.classes_
    proba = pipeline.predict_proba(X)
    predicted = classes[proba.argmax(axis=1)]
    figures = {**_label_scores(y, predicted, classes), **_ranking_scores(y, proba, classes)}
    rounded: dict[str, Any] = {name: round(float(value), 6) for name, value in figures.items()}
    rounded["confusion_matrix"] = skm.confusion_matrix(y, predicted, labels=classes).tolist()
    rounded["confusion_matrix_labels"] = classes.tolist()
    rounded["positive_rate"] = round(float(np.mean(y == classes[-1])), 6)
    if len(classes) == 2:
        rounded["roc_curve"] = _roc_points(y == classes[1], proba[:, 1])
    return rounded


def _label_scores(y: np.ndarray, predicted: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Scores of the predicted labels; for two classes, of the second (positive) one."""
    binary = len(classes) == 2
    options = {"average": "binary" if binary else "macro", "pos_label": classes[1] if binary else None}
    return {
        "accuracy": skm.accuracy_score(y, predicted),
        "f1": skm.f1_score(y, predicted, zero_division=0, **options),
        "precision": skm.precision_score(y, predicted, zero_division=0, **options),
        "recall": skm.recall_score(y, predicted, zero_division=0, **options),
    }


def _ranking_scores(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """ROC AUC and average precision (PR AUC) of the probabilities; one-vs-rest macro for more classes."""
    if len(classes) == 2:
        return {
            "roc_auc": skm.roc_auc_score(y == classes[1], proba[:, 1]),
            "pr_auc": skm.average_precision_score(y == classes[1], proba[:, 1]),
        }
    return {
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes),
        "pr_auc": skm.average_precision_score(label_binarize(y, classes=classes), proba, average="macro"),
    }


def _roc_points(truth: np.ndarray, score: np.ndarray) -> dict[str, list[float]]:
    fpr, tpr, _ = skm.roc_curve(truth, score)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(CURVE_POINTS, len(fpr))).round().astype(int))
    return {"fpr": fpr[keep].round(4).tolist(), "tpr": tpr[keep].round(4).tolist()}


def _regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    sample = np.unique(np.linspace(0, len(y) - 1, min(RESIDUAL_POINTS, len(y))).round().astype(int))
    return {
        "mae": round(float(skm.mean_absolute_error(y, predicted)), 6),
        "rmse": round(float(np.sqrt(skm.mean_squared_error(y, predicted))), 6),
        "r2": round(float(skm.r2_score(y, predicted)), 6),
        "residuals": {"y_true": y[sample].round(4).tolist(), "y_pred": predicted[sample].round(4).tolist()},
    }
