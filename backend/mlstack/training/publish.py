"""One training run end to end: schema, search, manifest, a new immutable version, then CURRENT."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pandas as pd

from mlstack.explain import preparation
from mlstack.profile.build import build_profile
from mlstack.profile.schema import Profile
from mlstack.store.manifest import Artifact, ArtifactFormat, ExplanationFacts, Feature, Manifest, Training
from mlstack.store.model_store import (
    ARTIFACT_FILE,
    EXPLAIN_FILE,
    ONNX_FILE,
    PROFILE_FILE,
    ModelStore,
    build_manifest,
)
from mlstack.training import onnx_export
from mlstack.training.pipeline import infer_schema
from mlstack.training.search import SearchResult, Task, search


@dataclass(frozen=True)
class TrainingRequest:
    """What to train on and how; `source` is a demo name or a file *name*, never a path."""

    model: str
    frame: pd.DataFrame
    target: str
    source: str
    task: Task
    data_sha256: str
    description: str = ""
    effort: str = "full"
    seed: int = 0
    reject_unknown: bool = True
    promote: bool = True
    onnx: bool = True
    """Also export the pipeline to ONNX (published only if it passes the parity check)."""


def frame_sha256(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def guess_task(target: pd.Series) -> Task:
    """Few distinct integer, boolean or string values: classification; otherwise regression."""
    discrete = not pd.api.types.is_float_dtype(target) or bool((target.dropna() % 1 == 0).all())
    return "classification" if discrete and target.nunique() <= 20 else "regression"


def clean_target(frame: pd.DataFrame, target: str, task: Task) -> pd.DataFrame:
    """Rows with a target only; whole-number float labels (a CSV column with blanks) back to ints."""
    frame = frame.dropna(subset=[target])
    labels = frame[target]
    if task == "classification" and pd.api.types.is_float_dtype(labels) and bool((labels % 1 == 0).all()):
        frame = frame.assign(**{target: labels.astype("int64")})
    return frame


def train_and_publish(request: TrainingRequest, store: ModelStore) -> Manifest:
    """Search, publish a new version and, unless told not to, make it CURRENT."""
    started = time.perf_counter()
    frame = clean_target(request.frame, request.target, request.task)
    features = infer_schema(frame, request.target, request.reject_unknown)
    result = search(frame, request.target, features, request.task, request.effort, request.seed)
    training = _training(request, frame, result, time.perf_counter() - started)
    classes = result.pipeline.classes_.tolist() if request.task == "classification" else None
    metrics = {**result.metrics, "cv_scoring": result.scoring, "cv_score": round(result.cv_score, 6)}
    fields = {
        "model": request.model,
        "task": request.task,
        "description": request.description,
        "inputs": features,
        "classes": classes,
        "metrics": metrics,
        "training": training,
    }
    exported = _export(request, result, build_manifest(version="1", artifact=_DRAFT_ARTIFACT, **fields))
    explanation, explain_data = _explanation(request, result, features)
    profile = build_profile(
        frame, request.target, features, request.task, request.source, request.data_sha256
    )
    written: dict[str, bytes | None] = {
        ONNX_FILE: exported.data,
        EXPLAIN_FILE: explain_data,
        PROFILE_FILE: profile_bytes(profile),
    }
    files = {name: data for name, data in written.items() if data is not None}
    extra = [_artifact(name, EXTRA_FORMATS[name], data) for name, data in files.items()]

    def describe(version: str, artifact: Artifact) -> Manifest:
        return build_manifest(
            version=version,
            artifact=artifact,
            extra_artifacts=extra,
            onnx=exported.facts,
            explanation=explanation,
            **fields,
        )

    manifest = store.publish(request.model, result.pipeline, describe, extra_files=files)
    if request.promote:
        store.set_current(request.model, manifest.version)
    return manifest


def profile_bytes(profile: Profile) -> bytes:
    """profile.json: compact (the replica parses it at load), the same bytes for the same data."""
    return profile.model_dump_json().encode() + b"\n"


EXTRA_FORMATS: dict[str, ArtifactFormat] = {
    ONNX_FILE: "onnx",
    EXPLAIN_FILE: "explain",
    PROFILE_FILE: "profile",
}

_DRAFT_ARTIFACT = Artifact(file=ARTIFACT_FILE, sha256="0" * 64, size_bytes=1)
"""Stands in for the joblib file in the manifest the parity check runs with, before the file exists."""


def _export(request: TrainingRequest, result: SearchResult, draft: Manifest) -> onnx_export.Export:
    if not request.onnx or result.train_frame is None or result.holdout is None:
        return onnx_export.not_requested()
    return onnx_export.export(result.pipeline, draft, result.train_frame, result.holdout)


def _explanation(
    request: TrainingRequest, result: SearchResult, features: list[Feature]
) -> tuple[ExplanationFacts, bytes | None]:
    if result.train_frame is None or result.holdout is None:
        return ExplanationFacts(method=None, reason="no training rows kept to prepare explanations"), None
    classifier = request.task == "classification"
    return preparation.prepare(
        result.pipeline, features, classifier, result.train_frame, result.holdout, request.seed
    )


def _artifact(name: str, kind: ArtifactFormat, data: bytes) -> Artifact:
    return Artifact(file=name, format=kind, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def _training(
    request: TrainingRequest, frame: pd.DataFrame, result: SearchResult, seconds: float
) -> Training:
    return Training(
        source=request.source,
        target=request.target,
        rows=len(frame),
        data_sha256=request.data_sha256,
        train_rows=result.train_rows,
        test_rows=result.test_rows,
        estimator=result.family,
        params=result.params,
        search=result.summary,
        seconds=round(seconds, 2),
    )
