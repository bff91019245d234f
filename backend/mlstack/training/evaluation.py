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
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    positive = classes[1] if binary else None
    figures: dict[str, Any] = {
        "accuracy": skm.accuracy_score(y, predicted),
        "f1": skm.f1_score(y, predicted, average=average, pos_label=positive, zero_division=0),
        "precision": skm.precision_score(y, predicted, average=average, pos_label=positive, zero_division=0),
        "recall": skm.recall_score(y, predicted, average=average, pos_label=positive, zero_division=0),
    }
    if binary:
        figures["roc_auc"] = skm.roc_auc_score(y, proba[:, 1])
        figures["pr_auc"] = skm.average_precision_score(y, proba[:, 1], pos_label=positive)
        figures["roc_curve"] = _roc_points(y == positive, proba[:, 1])
    else:
        figures["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
        figures["pr_auc"] = skm.average_precision_score(
            label_binarize(y, classes=classes), proba, average="macro"
        )
    rounded = {name: round(float(value), 6) for name, value in figures.items() if name != "roc_curve"}
    rounded["confusion_matrix"] = skm.confusion_matrix(y, predicted, labels=classes).tolist()
    rounded["confusion_matrix_labels"] = classes.tolist()
    rounded["positive_rate"] = round(float(np.mean(y == classes[-1])), 6)
    if "roc_curve" in figures:
        rounded["roc_curve"] = figures["roc_curve"]
    return rounded


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
