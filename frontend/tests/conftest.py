"""A real stack with the UI behind the gateway, and the UI's settings pointing at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlstack.cli import main as mlstack
from mlstack.training.datasets import demo_dataset
from stack.keys import demo_keys, demo_login
from stack.native import NativeStack, StackOptions
from stack.procs import free_port
from waiting import poll

FRONTEND = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    store = tmp_path_factory.mktemp("ui-store")
    for args in (["--demo", "churn"], ["--demo", "maintenance", "--target", "remaining_useful_life_days"]):
        assert mlstack(["train", *args, "--rows", "800", "--search", "fast", "--store-dir", str(store)]) == 0
    assert mlstack(["train", "--demo", "recommend", "--rows", "2000", "--store-dir", str(store)]) == 0
    options = StackOptions(
        run_dir=tmp_path_factory.mktemp("ui-run"),
        store_dir=store,
        gateway_port=free_port(),
        replicas=1,
        keys=demo_keys(),
        ui_login=demo_login(),
        ui_port=free_port(),
    )
    with NativeStack(options) as stack:
        yield stack


@pytest.fixture
def ui_env(ui_stack: NativeStack, monkeypatch: pytest.MonkeyPatch) -> NativeStack:
    """The settings the start command gives the UI process, for AppTest runs in this process."""
    monkeypatch.setenv("FRONTEND_GATEWAY_URL", ui_stack.gateway_url)
    monkeypatch.setenv("FRONTEND_API_KEY", ui_stack.key("predict"))
    monkeypatch.setenv("FRONTEND_ADMIN_KEY", ui_stack.key("admin"))
    monkeypatch.setenv("FRONTEND_USERS_KEY", ui_stack.key("users"))
    monkeypatch.chdir(FRONTEND)
    return ui_stack


@pytest.fixture(scope="session")
def drift_counted(ui_stack: NativeStack) -> int:
    """Churn rows drawn like its training data, predicted through the gateway, once they are counted in
    Redis (replicas send their counts every 2 s): the Monitor page's drift has something to show."""
    frame = demo_dataset("churn", rows=250, seed=21).frame.drop(columns=["churned"])
    headers = {"X-API-Key": ui_stack.key("predict")}
    answer = httpx.post(
        f"{ui_stack.gateway_url}/v1/models/churn:predict",
        json={"instances": json.loads(frame.to_json(orient="records"))},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    url = f"{ui_stack.gateway_url}/v1/models/churn/drift"
    rows = poll(
        lambda: int(httpx.get(url, headers=headers, timeout=10).json()["rows"]), lambda n: n >= len(frame), 10
    )
    return rows
