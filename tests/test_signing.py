"""Signed models on the native stack: the public key reaches every replica through the start command's
replica environment; a version signed by another key is refused by promote and by the store watcher, and
the replicas go on serving the version they had."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_compose import resolved

from mlstack.cli import main as mlstack
from mlstack.store.model_store import ModelStore
from stack.native import NativeStack
from stack.procs import wait_for
from stacks import predict, running_stack


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("ours", "theirs"):
        assert mlstack(["keygen", "--key", str(folder / f"{name}.key")]) == 0
    return {name: folder / f"{name}.key" for name in ("ours", "theirs")}


@pytest.fixture(scope="module")
def signed_stack(
    store_dir: Path, keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NativeStack]:
    """A signed copy of the session's store, two replicas that trust only our key and poll the store."""
    store = tmp_path_factory.mktemp("signed") / "store"
    shutil.copytree(store_dir, store)
    assert mlstack(["sign", "--key", str(keys["ours"]), "--store-dir", str(store)]) == 0
    public = keys["ours"].with_suffix(".pub").read_text().strip()
    replica_env = {"BACKEND_SIGNING_PUBLIC_KEY": public, "BACKEND_STORE_POLL_S": "0.5"}
    run_dir = tmp_path_factory.mktemp("signed-run")
    with running_stack(run_dir, store, replicas=2, with_ui=False, replica_env=replica_env) as stack:
        yield stack


def copy_as_version(store: Path, version: str) -> None:
    """Version 1 again under another number: a version anyone who can write the store could add."""
    target = store / "churn" / version
    shutil.copytree(store / "churn" / "1", target, ignore=shutil.ignore_patterns("model.sig"))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    (target / "manifest.json").chmod(0o644)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))


def served_versions(stack: NativeStack, row: dict[str, object], n: int = 20) -> Counter[tuple[int, str]]:
    answers = [predict(stack, [row]) for _ in range(n)]
    return Counter((a.status_code, a.headers.get("X-Model-Version", "")) for a in answers)


@pytest.mark.stack
def test_a_version_signed_by_another_key_is_refused_and_both_replicas_keep_serving(
    signed_stack: NativeStack, keys: dict[str, Path]
) -> None:
    store = signed_stack.options.store_dir
    admin = {"X-API-Key": signed_stack.key("admin")}
    manifest = httpx.get(f"{signed_stack.gateway_url}/v1/models/churn", headers=admin).json()
    row = {f["name"]: f["typical"] for f in manifest["inputs"]}
    assert served_versions(signed_stack, row) == {(200, "1"): 20}
    copy_as_version(store, "2")
    assert mlstack(["sign", "churn", "2", "--key", str(keys["theirs"]), "--store-dir", str(store)]) == 0

    promote = httpx.put(
        f"{signed_stack.gateway_url}/v1/models/churn/current",
        json={"version": "2", "force": True},
        headers=admin,
    )
    assert promote.status_code == 409
    assert promote.json()["error"].startswith("churn/2/model.sig: signature check failed: made by key")

    ModelStore(store).set_current("churn", "2")  # CURRENT moved behind the replicas' back
    logs = [p.log for p in signed_stack.replicas]
    wait_for(
        lambda: all("keeps version 1: churn/2/model.sig: signature check" in log.read_text() for log in logs),
        "both replicas to refuse version 2",
        15,
    )
    assert served_versions(signed_stack, row) == {(200, "1"): 20}


def test_compose_gives_the_public_key_to_the_replicas_only() -> None:
    config = resolved(GATEWAY_TOKEN="t" * 43, BACKEND_SIGNING_PUBLIC_KEY="k" * 44)
    unset = resolved(GATEWAY_TOKEN="t" * 43)

    holders = {name for name, s in config["services"].items() if "k" * 44 in json.dumps(s)}
    assert holders == {"backend"}
    assert unset["services"]["backend"]["environment"]["BACKEND_SIGNING_PUBLIC_KEY"] == ""  # no check
