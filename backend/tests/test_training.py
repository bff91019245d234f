"""`mlstack train` for real on small tables: versions, CURRENT, manifests, held-out figures, refusals."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlstack.cli import main
from mlstack.frames import prepare_frame
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore
from mlstack.training.datasets import demo_dataset
from mlstack.training.publish import frame_sha256
from mlstack.training.search import split

SMALL = ["--rows", "600", "--search", "fast"]


def train(store: Path, *args: str) -> int:
    return main(["train", *args, *SMALL, "--store-dir", str(store)])


@pytest.fixture(scope="module")
def churn_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """churn published twice (both made CURRENT), then a third time without promotion."""
    root = tmp_path_factory.mktemp("store")
    assert train(root, "--demo", "churn") == 0
    assert train(root, "--demo", "churn") == 0
    assert train(root, "--demo", "churn", "--no-promote") == 0
    return root


@pytest.fixture(scope="module")
def churn(churn_store: Path) -> Manifest:
    return ModelStore(churn_store).verify("churn", "2")


def test_each_run_is_a_new_version_and_current_follows_unless_told_not_to(churn_store: Path) -> None:
    store = ModelStore(churn_store)

    assert store.versions("churn") == ["1", "2", "3"]
    assert store.current("churn") == "2"


def test_if_empty_leaves_a_model_with_a_current_version_alone(churn_store: Path) -> None:
    assert train(churn_store, "--demo", "churn", "--if-empty") == 0

    assert ModelStore(churn_store).versions("churn") == ["1", "2", "3"]


def test_the_schema_names_types_ranges_and_categories(churn: Manifest) -> None:
    inputs = {f.name: f for f in churn.inputs}

    assert "churned" not in inputs
    assert inputs["tenure_months"].type == "integer"
    assert inputs["monthly_charges"].type == "number"
    assert inputs["senior_citizen"].type == "boolean"
    assert inputs["contract"].categories == ["Month-to-month", "One year", "Two year"]
    assert inputs["contract"].reject_unknown
    assert inputs["total_charges"].nullable
    assert inputs["payment_method"].nullable
    assert not inputs["tenure_months"].nullable
    assert (
        inputs["tenure_months"].minimum <= inputs["tenure_months"].typical <= inputs["tenure_months"].maximum
    )


def test_the_manifest_records_classes_metrics_and_training_facts(churn: Manifest) -> None:
    metrics, training = churn.metrics, churn.training

    assert churn.task == "classification"
    assert churn.classes == [0, 1]
    assert {"roc_auc", "pr_auc", "f1", "accuracy", "precision", "recall"} <= set(metrics)
    assert metrics["roc_auc"] > 0.7
    assert np.sum(metrics["confusion_matrix"]) == training.test_rows
    assert metrics["confusion_matrix_labels"] == [0, 1]
    assert len(metrics["roc_curve"]["fpr"]) == len(metrics["roc_curve"]["tpr"]) <= 50
    assert training.source == "churn"
    assert training.data_sha256 == frame_sha256(demo_dataset("churn", rows=600).frame)
    assert training.train_rows + training.test_rows == training.rows == 600
    assert {row["family"] for row in training.search} == {"logistic_regression", "hist_gradient_boosting"}


def test_the_loaded_pipeline_reproduces_the_held_out_figures(churn_store: Path, churn: Manifest) -> None:
    frame = demo_dataset("churn", rows=600).frame
    X = prepare_frame(frame, churn.inputs)
    _, X_test, _, y_test = split(X, frame["churned"], "classification", seed=0)
    _, pipeline = ModelStore(churn_store).load("churn", "2")

    proba = pipeline.predict_proba(X_test)

    assert proba.shape == (len(X_test), 2)
    assert round(roc_auc_score(y_test, proba[:, 1]), 6) == churn.metrics["roc_auc"]


def test_the_same_seed_trains_the_same_model(churn_store: Path) -> None:
    store = ModelStore(churn_store)
    first, second = store.manifest("churn", "1"), store.manifest("churn", "2")

    assert first.metrics == second.metrics
    assert first.training.params == second.training.params


def test_a_regressor_from_the_maintenance_set(tmp_path: Path) -> None:
    assert train(tmp_path, "--demo", "maintenance", "--target", "remaining_useful_life_days") == 0
    manifest = ModelStore(tmp_path).verify("maintenance", "1")
    names = {f.name for f in manifest.inputs}

    assert manifest.task == "regression"
    assert manifest.classes is None
    assert "failure_within_7d" not in names
    assert {"mae", "rmse", "r2"} <= set(manifest.metrics)
    assert manifest.metrics["r2"] > 0.5
    assert 0 < len(manifest.metrics["residuals"]["y_true"]) <= 200
    assert manifest.training.estimator in {"ridge", "hist_gradient_boosting"}


def test_the_maintenance_classifier_does_not_see_the_other_answer(tmp_path: Path) -> None:
    assert train(tmp_path, "--demo", "maintenance", "--model", "failures") == 0
    manifest = ModelStore(tmp_path).verify("failures", "1")

    assert "remaining_useful_life_days" not in {f.name for f in manifest.inputs}
    assert manifest.metrics["roc_auc"] < 0.999


def test_a_csv_round_trip(tmp_path: Path) -> None:
    csv = tmp_path / "Churn Export 2024.csv"
    demo_dataset("churn", rows=600, seed=3).frame.to_csv(csv, index=False)
    store = tmp_path / "store"

    assert (
        main(
            ["train", "--csv", str(csv), "--target", "churned", "--search", "fast", "--store-dir", str(store)]
        )
        == 0
    )
    manifest = ModelStore(store).verify("churn-export-2024", "1")
    types = {f.name: f.type for f in manifest.inputs}

    assert manifest.training.source == "Churn Export 2024.csv"
    assert manifest.training.data_sha256 == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert manifest.classes == [0, 1]
    assert types["senior_citizen"] == "boolean"
    assert types["contract"] == "string"
    assert types["tenure_months"] == "integer"


def test_blank_cells_keep_booleans_boolean_and_labels_integer(tmp_path: Path) -> None:
    frame = demo_dataset("churn", rows=600).frame.astype({"senior_citizen": object, "churned": float})
    frame.loc[::7, "senior_citizen"] = None
    frame.loc[::11, "churned"] = None
    frame.to_csv(tmp_path / "blanks.csv", index=False)

    assert train(tmp_path, "--csv", str(tmp_path / "blanks.csv"), "--target", "churned") == 0
    manifest = ModelStore(tmp_path).verify("blanks", "1")
    senior = manifest.feature("senior_citizen")

    assert senior is not None
    assert (senior.type, senior.nullable) == ("boolean", True)
    assert manifest.classes == [0, 1]
    assert manifest.training.rows == 600 - len(range(0, 600, 11))


def test_unknown_categories_can_be_allowed(tmp_path: Path) -> None:
    assert train(tmp_path, "--demo", "fraud", "--allow-unknown-categories") == 0
    manifest = ModelStore(tmp_path).verify("fraud", "1")
    strings = [f for f in manifest.inputs if f.type == "string"]

    assert strings
    assert not any(f.reject_unknown for f in strings)
    assert manifest.metrics["cv_scoring"] == "average_precision"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--demo", "weather"], "invalid choice: 'weather'"),
        (["--demo", "churn", "--target", "nope"], "target column 'nope' not found"),
        (["--csv", "missing.csv", "--target", "y"], "CSV file not found: missing.csv"),
        (["--csv", "missing.csv"], "--target is required with --csv"),
        (["--demo", "churn", "--model", "Bad Name"], "model name 'Bad Name' must match"),
        (["--demo", "churn", "--rows", "3"], "--rows must be at least"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    args: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *args, "--store-dir", str(tmp_path)]) == 2

    assert problem in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_target_with_a_single_class_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "flat.csv"
    demo_dataset("churn", rows=100).frame.assign(churned=1).to_csv(csv, index=False)

    assert main(["train", "--csv", str(csv), "--target", "churned", "--store-dir", str(tmp_path)]) == 2
    assert "needs at least two classes" in capsys.readouterr().err


def test_python_m_mlstack_train_is_the_train_command(churn_store: Path) -> None:
    command = [sys.executable, "-m", "mlstack.train", "--demo", "churn", "--if-empty"]
    done = subprocess.run(
        [*command, "--store-dir", str(churn_store)], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert "already has version 2" in done.stdout
