"""GET /v1/models/{m}[/versions/{v}]/profile: the stored profile, typed, documented; clear 404s."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlstack.main import create_app
from mlstack.profile.schema import Profile
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore

from .test_store_compat import FIXTURE


@pytest.mark.parametrize("path", ["/v1/models/rul/profile", "/v1/models/rul/versions/1/profile"])
def test_the_profile_is_the_one_published_with_the_version(
    shared_client: TestClient, trained_store: Path, path: str
) -> None:
    response = shared_client.get(path)

    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == "1"
    assert Profile.model_validate_json(response.content) == ModelStore(trained_store).profile("rul", "1")


def test_a_regressors_profile_has_its_target_as_numbers(shared_client: TestClient) -> None:
    profile = Profile.model_validate_json(shared_client.get("/v1/models/rul/profile").content)

    assert profile.task == "regression"
    assert profile.target.stats is not None
    assert profile.focus_class is None
    assert all(f.target is not None and f.target.target_mean for f in profile.features)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/models/churn/versions/9/profile", "model 'churn' has no version '9'"),
        ("/v1/models/nope/profile", "model 'nope' not found"),
        ("/v1/models/nope/versions/1/profile", "model 'nope' not found"),
    ],
)
def test_unknown_models_and_versions_are_404s(shared_client: TestClient, path: str, message: str) -> None:
    response = shared_client.get(path)

    assert (response.status_code, response.json()) == (404, {"error": message})


def test_a_version_published_before_profiles_loads_and_says_it_has_none(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE, store, ignore=shutil.ignore_patterns("expected.json"))

    with TestClient(create_app(Settings(store_dir=store, redis_url=None))) as client:
        served = client.get("/v1/models/churn")
        current, pinned = (
            client.get("/v1/models/churn/profile"),
            client.get("/v1/models/churn/versions/1/profile"),
        )

    assert served.status_code == 200
    for response in (current, pinned):
        assert response.status_code == 404
        assert response.json()["error"].startswith("model 'churn' version '1' has no profile")


def test_openapi_documents_both_routes_with_the_profile_model(shared_client: TestClient) -> None:
    spec = shared_client.get("/openapi.json").json()

    for path in ("/v1/models/{model}/profile", "/v1/models/{model}/versions/{version}/profile"):
        answers = spec["paths"][path]["get"]["responses"]
        assert answers["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Profile"
        }
        assert "404" in answers
    assert {"FeatureProfile", "Bins", "TargetRelation", "Correlations"} <= set(spec["components"]["schemas"])
