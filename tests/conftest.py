"""Whole-stack fixtures: a trained store and the real native stack (nginx, redis-server, uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlstack.cli import main as mlstack
from stack.native import NativeStack
from stacks import running_stack


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    assert (
        mlstack(["train", "--demo", "churn", "--rows", "800", "--search", "fast", "--store-dir", str(root)])
        == 0
    )
    return root


@pytest.fixture(scope="session")
def stack(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """One stack with two replicas for the session; fault tests restore what they break."""
    with running_stack(tmp_path_factory.mktemp("run"), store_dir, replicas=2, with_ui=False) as stack:
        yield stack


@pytest.fixture(scope="session")
def churn_row(stack: NativeStack) -> dict[str, Any]:
    manifest = httpx.get(
        f"{stack.gateway_url}/v1/models/churn", headers={"X-API-Key": stack.key("predict")}
    ).json()
    return {feature["name"]: feature["typical"] for feature in manifest["inputs"]}
