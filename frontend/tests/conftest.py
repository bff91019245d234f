"""A real stack with the UI behind the gateway, and the UI's settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.cli import main as mlstack
from stack.keys import demo_keys, demo_login
from stack.native import NativeStack, StackOptions
from stack.procs import free_port

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
