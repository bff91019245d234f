"""The ONNX export at training time: every searched family converts, parity gates publishing, and a
pipeline that does not convert is published without ONNX and still served."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlstack.cli import main as cli
from mlstack.frames import prepare_frame
from mlstack.main import create_app
from mlstack.settings import Settings
from mlstack.store.manifest import Feature, Training
from mlstack.store.model_store import ModelStore, build_manifest
from mlstack.training import onnx_export, search
from mlstack.training.datasets import demo_dataset
from mlstack.training.pipeline import build_pipeline, infer_schema
from mlstack.training.publish import _DRAFT_ARTIFACT

from .conftest import assert_same_answers, in_process
from .test_api_v1 import varied_rows

SETS = {"classification": ("churn", "churned"), "regression": ("maintenance", "remaining_useful_life_days")}


def train(store: Path, *args: str) -> int:
    return cli(
        ["train", "--demo", "churn", "--rows", "600", "--search", "fast", "--store-dir", str(store), *args]
    )


def fitted(task: str, family: search.Family) -> tuple[Pipeline, Any, list[Any]]:
    name, target = SETS[task]
    demo = demo_dataset(name, rows=2000)
    frame = demo.frame.drop(columns=[t for t in demo.targets if t != target])
    features = infer_schema(frame, target)
    X_train, X_test, y_train, _ = search.split(prepare_frame(frame, features), frame[target], task)  # type: ignore[arg-type]  # the task as a plain string, as the CLI passes it
    pipeline = build_pipeline(features, clone(family.estimator)).fit(X_train, y_train)
    classes = pipeline.classes_.tolist() if task == "classification" else None
    draft = build_manifest(
        model=name,
        version="1",
        task=task,
        inputs=features,
        classes=classes,
        training=Training(
            source=name,
            target=target,
            rows=2000,
            data_sha256="0",
            train_rows=1,
            test_rows=1,
            estimator=family.name,
        ),
        artifact=_DRAFT_ARTIFACT,
    )
    return pipeline, draft, [X_train, X_test]


@pytest.mark.parametrize(
    ("task", "family"),
    [(task, f.name) for task in ("classification", "regression") for f in search.families(task, 0)],  # type: ignore[arg-type]  # the task as a plain string, as the CLI passes it
)
def test_every_family_the_search_tries_converts_and_passes_parity(task: str, family: str) -> None:
    chosen = next(f for f in search.families(task, 0) if f.name == family)  # type: ignore[arg-type]  # the task as a plain string, as the CLI passes it
    pipeline, draft, (X_train, X_test) = fitted(task, chosen)

    exported = onnx_export.export(pipeline, draft, X_train, X_test)

    assert exported.facts.reason is None
    assert exported.facts.published
    assert exported.data is not None
    assert exported.facts.checked_rows == 2 * len(X_test)  # each row as is and with its nullables null
    assert exported.facts.max_abs_diff is not None
    assert exported.facts.max_abs_diff < exported.facts.tolerance  # type: ignore[operator]  # an exported pipeline's facts carry both figures


def test_the_manifest_records_the_onnx_file_and_its_parity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(tmp_path) == 0

    manifest = ModelStore(tmp_path).verify("churn", "1")
    artifact, facts = manifest.onnx_artifact, manifest.onnx
    data = (tmp_path / "churn" / "1" / "model.onnx").read_bytes()
    assert artifact is not None
    assert facts is not None
    assert (artifact.format, artifact.sha256, artifact.size_bytes) == (
        "onnx",
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    assert facts.published
    assert facts.max_abs_diff is not None
    assert facts.max_abs_diff < 1e-5
    assert facts.onnxruntime
    assert "onnx: published, max difference" in capsys.readouterr().out


def test_a_failed_parity_check_publishes_no_onnx_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(onnx_export, "PROBA_TOLERANCE", 0.0)

    assert train(tmp_path) == 0

    manifest = ModelStore(tmp_path).verify("churn", "1")
    assert manifest.onnx_artifact is None
    assert not (tmp_path / "churn" / "1" / "model.onnx").exists()
    assert manifest.onnx is not None
    assert not manifest.onnx.published
    assert (manifest.onnx.reason or "").startswith("parity check failed: max |probability difference|")
    assert "onnx: not published: parity check failed" in capsys.readouterr().out


def with_an_unconvertible_step(features: list[Feature], estimator: Any) -> Pipeline:
    pipeline = build_pipeline(features, estimator)
    # a function skl2onnx cannot translate (it converts FunctionTransformer only without a function)
    step = ("identity", FunctionTransformer(np.positive))
    return Pipeline([pipeline.steps[0], step, pipeline.steps[1]])


def test_a_pipeline_that_does_not_convert_is_published_and_served_with_joblib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "build_pipeline", with_an_unconvertible_step)
    assert train(tmp_path) == 0

    manifest = ModelStore(tmp_path).verify("churn", "1")
    assert manifest.onnx is not None
    assert not manifest.onnx.published
    assert "FunctionTransformer" in (manifest.onnx.reason or "")
    assert not (tmp_path / "churn" / "1" / "model.onnx").exists()
    with TestClient(create_app(Settings(store_dir=tmp_path, redis_url=None))) as client:
        served = client.get("/v1/models/churn").json()
        rows = varied_rows(served, 20, nulls=True)
        body = client.post("/v1/models/churn:predict", json={"instances": rows}).json()
    assert served["engine"] == "joblib"
    assert served["onnx"]["published"] is False
    assert_same_answers(body, served, rows, in_process(tmp_path, "churn"))


def test_old_manifests_without_onnx_facts_still_load(store_dir: Path) -> None:
    path = store_dir / "churn" / "1" / "manifest.json"
    raw = json.loads(path.read_text())
    raw.pop("onnx")
    raw["extra_artifacts"] = []
    path.write_text(json.dumps(raw))
    (store_dir / "churn" / "1" / "model.onnx").unlink()

    manifest = ModelStore(store_dir).verify("churn", "1")

    assert (manifest.onnx, manifest.onnx_artifact) == (None, None)
