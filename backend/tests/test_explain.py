"""Explanations of the demo models as published: they add up to the model's own output, row by row.

The model output is computed here from the published pipeline (decision_function for the classifiers,
predict for the regressor), not taken from the explainer, so a wrong base value, a lost one-hot column or
a mis-routed missing value shows as a gap.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlstack.errors import ArtifactRejected, NotExplainable
from mlstack.explain.engine import TabularExplainer
from mlstack.explain.loading import BEFORE_EXPLANATIONS, Explainer, Unavailable, explainer_for
from mlstack.explain.preparation import rows_of
from mlstack.frames import prepare_frame
from mlstack.main import create_app
from mlstack.serving.validation import Rows
from mlstack.settings import Settings
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import EXPLAIN_FILE, ModelStore
from mlstack.training.datasets import demo_dataset

from .conftest import DEMO_MODELS, example_row

EXACT = 1e-6
DEMO_OF = {"churn": "churn", "fraud": "fraud", "maintenance": "maintenance", "rul": "maintenance"}
FIXTURE = Path(__file__).parent / "fixtures" / "store-0c08bbb"


def load(store_dir: Path, model: str) -> tuple[Manifest, Any, Explainer]:
    store = ModelStore(store_dir)
    version = store.current(model) or "1"
    manifest, pipeline = store.load(model, version)
    return (
        manifest,
        pipeline,
        explainer_for(manifest, pipeline, lambda a: store.read_artifact(model, version, a), 10),
    )


def held_out_rows(manifest: Manifest, model: str, count: int = 300) -> tuple[Rows, pd.DataFrame]:
    """Rows the model never saw (another seed), every third with its nullable features null."""
    features = list(manifest.inputs)
    frame = prepare_frame(demo_dataset(DEMO_OF[model], rows=count, seed=77).frame, features)
    nullable = [f.name for f in features if f.nullable]
    frame.loc[frame.index[::3], nullable] = np.nan
    return rows_of(frame, features), frame


def model_output(pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    if hasattr(pipeline, "decision_function"):
        return np.asarray(pipeline.decision_function(frame), dtype=np.float64)
    return np.asarray(pipeline.predict(frame), dtype=np.float64)


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_every_demo_model_adds_up_to_its_output_on_held_out_rows_with_missing_values(
    trained_store: Path, model: str
) -> None:
    manifest, pipeline, explainer = load(trained_store, model)
    rows, frame = held_out_rows(manifest, model)

    explained = explainer.explain(rows)

    totals = np.array([r.base_value + sum(c.contribution for c in r.contributions) for r in explained.rows])
    assert np.max(np.abs(totals - model_output(pipeline, frame))) <= EXACT
    assert explained.method in {"linear", "tree_path_dependent"}
    assert explained.adds_up_to == "joblib"
    assert sum(c.imputed for r in explained.rows for c in r.contributions) > len(rows) // 3


@pytest.mark.parametrize("model", ["churn", "fraud", "maintenance"])
def test_a_classifier_is_explained_in_log_odds_with_its_probability_beside(
    trained_store: Path, model: str
) -> None:
    manifest, pipeline, explainer = load(trained_store, model)
    rows, frame = held_out_rows(manifest, model, count=50)

    explained = explainer.explain(rows)

    positive = pipeline.predict_proba(frame)[:, 1]
    outputs = np.array([r.output for r in explained.rows])
    assert explained.output_space == "log_odds"
    assert {r.explained_class for r in explained.rows} == {manifest.classes[1]}
    np.testing.assert_allclose([r.probability for r in explained.rows], positive, rtol=0, atol=1e-12)
    np.testing.assert_allclose(1 / (1 + np.exp(-outputs)), positive, rtol=0, atol=1e-12)


def test_the_regressor_is_explained_in_target_units(trained_store: Path) -> None:
    manifest, pipeline, explainer = load(trained_store, "rul")
    rows, frame = held_out_rows(manifest, "rul", count=50)

    explained = explainer.explain(rows)

    assert (explained.method, explained.output_space) == ("tree_path_dependent", "target")
    np.testing.assert_allclose([r.output for r in explained.rows], pipeline.predict(frame), rtol=0, atol=1e-9)
    assert all(r.probability is None for r in explained.rows)


def test_contributions_name_the_original_features_in_schema_order(trained_store: Path) -> None:
    manifest, _, explainer = load(trained_store, "churn")
    rows, _ = held_out_rows(manifest, "churn", count=20)

    explained = explainer.explain(rows)

    names = [f.name for f in manifest.inputs]
    assert all([c.feature for c in r.contributions] == names for r in explained.rows)
    strings = [f.name for f in manifest.inputs if f.type == "string"]
    assert strings, "churn has categorical features"
    contract = [c for r in explained.rows for c in r.contributions if c.feature == "contract"]
    assert any(abs(c.contribution) > 0.1 for c in contract)  # the one-hot columns landed on the feature


def test_a_missing_value_is_marked_imputed_with_what_it_became(trained_store: Path) -> None:
    manifest, pipeline, explainer = load(trained_store, "churn")
    rows, _ = held_out_rows(manifest, "churn", count=3)  # row 0 has its nullable features null

    first = explainer.explain(rows.subset([0])).rows[0]

    nulls = {c.feature: c for c in first.contributions if c.value is None}
    assert nulls
    assert all(c.imputed for c in nulls.values())
    medians = pipeline[0].named_transformers_["numeric"]["impute"].statistics_
    numeric = [f.name for f in manifest.inputs if f.type != "string"]
    for name, contribution in nulls.items():
        if name in numeric:
            assert contribution.imputed_as == pytest.approx(medians[numeric.index(name)])
    assert not any(c.imputed for c in first.contributions if c.value is not None)


def test_the_same_rows_give_the_same_explanation_alone_and_in_a_batch(trained_store: Path) -> None:
    manifest, _, explainer = load(trained_store, "rul")
    rows, _ = held_out_rows(manifest, "rul", count=12)

    batch = explainer.explain(rows).rows
    alone = [explainer.explain(rows.subset([i])).rows[0] for i in range(len(rows))]

    for a, b in zip(batch, alone, strict=True):
        assert a.base_value == pytest.approx(b.base_value, abs=1e-12)
        for x, y in zip(a.contributions, b.contributions, strict=True):
            assert x.contribution == pytest.approx(y.contribution, abs=1e-12)


def test_training_lists_the_explanation_data_in_the_manifest_and_it_verifies(trained_store: Path) -> None:
    store = ModelStore(trained_store)
    for model in DEMO_MODELS:
        manifest = store.verify(model, store.current(model) or "1")  # extras included: sha256 checked
        assert manifest.explanation is not None
        assert manifest.explanation.method is not None
        assert manifest.explanation.background_rows == 100
        assert manifest.explain_artifact is not None
        assert manifest.explain_artifact.file == EXPLAIN_FILE


def test_a_version_from_before_explanations_says_it_cannot_be_explained(tmp_path: Path) -> None:
    manifest, _, explainer = load(FIXTURE, "churn")
    assert manifest.explanation is None
    rows = rows_of(
        prepare_frame(demo_dataset("churn", rows=2, seed=1).frame, list(manifest.inputs)),
        list(manifest.inputs),
    )

    assert isinstance(explainer, Unavailable)
    with pytest.raises(NotExplainable, match=BEFORE_EXPLANATIONS) as refused:
        explainer.explain(rows)
    assert refused.value.status_code == 409


def test_a_tampered_explanation_file_is_refused_like_a_changed_model(store_dir: Path) -> None:
    """Every file a manifest lists is checked before anything is unpickled (the contract); only the ONNX
    export may fail alone, since the joblib pipeline answers for it."""
    path = store_dir / "churn" / "1" / EXPLAIN_FILE
    path.write_bytes(path.read_bytes().replace(b'"format":1', b'"format":1 '))

    with pytest.raises(ArtifactRejected, match=r"churn/1/explain\.json: (size|sha256) check failed"):
        ModelStore(store_dir).load("churn", "1")


def test_the_registry_builds_each_versions_explainer_at_load(trained_store: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old, ignore=shutil.ignore_patterns("expected.json"))
    for store, expected in ((trained_store, TabularExplainer), (old, Unavailable)):
        with TestClient(create_app(Settings(store_dir=store, redis_url=None))) as client:
            loaded = client.portal.call(client.app.state.registry.get, "churn")  # type: ignore[attr-defined]  # Starlette's State holds what the app set at start
            answer = client.post(
                "/v1/models/churn:predict", json={"instances": [example_row(loaded.manifest.public())]}
            )

        assert isinstance(loaded.explaining.runtime.explainer, expected)
        assert answer.status_code == 200
