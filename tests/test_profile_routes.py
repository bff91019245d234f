"""The profile routes through the gateway: every API scope reads them, no key is a 401, errors are JSON."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlstack.profile.schema import Profile
from mlstack.store.model_store import ModelStore
from stack.native import NativeStack

pytestmark = pytest.mark.stack
PATHS = ("/v1/models/churn/profile", "/v1/models/churn/versions/1/profile")


@pytest.mark.parametrize("scope", ["predict", "users", "admin"])
def test_every_scope_reads_the_published_profile(stack: NativeStack, store_dir: Path, scope: str) -> None:
    published = ModelStore(store_dir).profile("churn", "1")

    for path in PATHS:
        response = httpx.get(stack.gateway_url + path, headers={"X-API-Key": stack.key(scope)})
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == "1"
        assert response.headers["X-Request-ID"]
        assert Profile.model_validate_json(response.content) == published


def test_without_a_key_it_is_a_json_401(stack: NativeStack) -> None:
    for path in PATHS:
        response = httpx.get(stack.gateway_url + path)
        assert response.status_code == 401
        assert response.json()["error"].startswith("missing or unknown API key")


def test_an_unknown_version_and_a_write_are_json_errors(stack: NativeStack) -> None:
    headers = {"X-API-Key": stack.key("admin")}
    missing = httpx.get(f"{stack.gateway_url}/v1/models/churn/versions/7/profile", headers=headers)
    written = httpx.delete(stack.gateway_url + PATHS[0], headers=headers)

    assert (missing.status_code, missing.json()) == (404, {"error": "model 'churn' has no version '7'"})
    assert (written.status_code, written.json()["error"]) == (405, "method not allowed")
    assert written.headers["Allow"] == "GET"
