"""Every published version carries its data's profile, listed with its sha256 and verified like the model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlstack.errors import ArtifactRejected
from mlstack.main import create_app
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.training.datasets import demo_dataset

from .conftest import DEMO_MODELS, ROWS
from .test_profile import assert_matches_pandas
from .test_store import flip_one_byte, version_dir


def training_frame(model: str) -> tuple[pd.DataFrame, str]:
    """The frame `mlstack train` learned from for a demo model of the session store."""
    args = DEMO_MODELS[model]
    demo = demo_dataset(args[1], rows=int(ROWS.get(model, "800")), seed=0)
    target = args[args.index("--target") + 1] if "--target" in args else demo.target
    return demo.frame.drop(columns=[t for t in demo.targets if t != target]), target


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_every_demo_version_has_a_profile_whose_figures_are_pandas_own(
    trained_store: Path, model: str
) -> None:
    store = ModelStore(trained_store)
    manifest = store.verify(model, "1")
    listed = manifest.profile_artifact
    profile = store.profile(model, "1")
    frame, target = training_frame(model)

    assert listed is not None
    assert (
        listed.sha256
        == hashlib.sha256((version_dir(trained_store, model) / listed.file).read_bytes()).hexdigest()
    )
    assert profile is not None
    assert (profile.rows, profile.task, profile.target.name) == (len(frame), manifest.task, target)
    assert [f.name for f in profile.features] == [f.name for f in manifest.inputs]
    for feature in profile.features:
        assert_matches_pandas(feature, frame[feature.name])


def test_a_changed_profile_is_refused_like_a_changed_model(store_dir: Path) -> None:
    flip_one_byte(version_dir(store_dir) / "profile.json")

    with pytest.raises(ArtifactRejected, match=r"churn/1/profile\.json: sha256 check failed"):
        ModelStore(store_dir).load("churn", "1")
    with TestClient(create_app(Settings(store_dir=store_dir, redis_url=None))) as client:
        listing = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        refused = client.post("/v1/models/churn:predict", json={"instances": [{}]})
        profile = client.get("/v1/models/churn/versions/1/profile")

    assert "profile.json: sha256 check failed" in listing["churn"]["error"]
    assert refused.status_code == 503
    assert profile.status_code == 409
    assert "profile.json: sha256 check failed" in profile.json()["error"]


def test_a_profile_removed_from_a_version_is_refused(store_dir: Path) -> None:
    (version_dir(store_dir) / "profile.json").unlink()

    with pytest.raises(ArtifactRejected, match=r"churn/1/profile\.json: missing check failed"):
        ModelStore(store_dir).verify("churn", "1")
