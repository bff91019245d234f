"""The model store verifies before it unpickles: names, allowed files, size, sha256, library versions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from mlstack.errors import ArtifactRejected, ModelNotFound
from mlstack.store.model_store import ModelStore


def version_dir(store_dir: Path, model: str = "churn", version: str = "1") -> Path:
    return store_dir / model / version


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite_manifest(path: Path, **runtime: str) -> None:
    manifest = json.loads(path.read_text())
    manifest["runtime"].update(runtime)
    path.write_text(json.dumps(manifest))


def test_a_published_version_verifies_and_loads(store_dir: Path) -> None:
    manifest, pipeline = ModelStore(store_dir).load("churn", "1")

    assert manifest.version == "1"
    assert hasattr(pipeline, "predict_proba")


def test_one_changed_byte_is_refused_naming_the_file(store_dir: Path) -> None:
    flip_one_byte(version_dir(store_dir) / "model.joblib")

    with pytest.raises(ArtifactRejected, match=r"churn/1/model\.joblib: sha256 check failed"):
        ModelStore(store_dir).load("churn", "1")


def test_a_truncated_artifact_is_refused_before_hashing(store_dir: Path) -> None:
    artifact = version_dir(store_dir) / "model.joblib"
    artifact.write_bytes(artifact.read_bytes()[:100])

    with pytest.raises(ArtifactRejected, match="size check failed"):
        ModelStore(store_dir).verify("churn", "1")


def test_an_extra_file_in_a_version_is_refused(store_dir: Path) -> None:
    (version_dir(store_dir) / "x.pkl").write_bytes(b"not allowed")

    with pytest.raises(ArtifactRejected, match=r"churn/1/x\.pkl: allow-list"):
        ModelStore(store_dir).verify("churn", "1")


def test_a_symlinked_artifact_is_refused(store_dir: Path, tmp_path: Path) -> None:
    artifact = version_dir(store_dir) / "model.joblib"
    moved = tmp_path / "elsewhere.joblib"
    artifact.rename(moved)
    os.symlink(moved, artifact)

    with pytest.raises(ArtifactRejected, match="symlink"):
        ModelStore(store_dir).verify("churn", "1")


def test_another_scikit_learn_minor_version_is_refused(store_dir: Path) -> None:
    rewrite_manifest(version_dir(store_dir) / "manifest.json", sklearn="1.2.0")

    with pytest.raises(ArtifactRejected, match="sklearn version check failed.*1.2.0"):
        ModelStore(store_dir).verify("churn", "1")


def test_a_manifest_with_unknown_fields_is_refused(store_dir: Path) -> None:
    path = version_dir(store_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["trusted_types"] = ["os.system"]
    path.write_text(json.dumps(manifest))

    with pytest.raises(ArtifactRejected, match="schema check failed"):
        ModelStore(store_dir).verify("churn", "1")


@pytest.mark.parametrize(
    ("model", "version"), [("../churn", "1"), ("churn", "../1"), ("churn", "0"), ("nosuch", "1")]
)
def test_names_outside_the_store_layout_are_not_found(store_dir: Path, model: str, version: str) -> None:
    with pytest.raises(ModelNotFound):
        ModelStore(store_dir).verify(model, version)


def test_publish_writes_a_new_read_only_version_and_current_moves_only_on_request(store_dir: Path) -> None:
    store = ModelStore(store_dir)
    old = store.manifest("churn", "1")

    new = store.publish(
        "churn",
        DummyClassifier().fit([[0], [1]], [0, 1]),
        lambda v, a: old.model_copy(update={"version": v, "artifact": a}),
    )

    assert (new.version, store.current("churn")) == ("2", "1")
    assert all(
        not os.access(p, os.W_OK) or os.geteuid() == 0 for p in version_dir(store_dir, version="2").iterdir()
    )
    assert oct(version_dir(store_dir, version="2").joinpath("model.joblib").stat().st_mode)[-3:] == "444"
    store.set_current("churn", "2")
    assert store.current("churn") == "2"
    assert not [p for p in (store_dir / "churn").iterdir() if p.name.startswith(".")]
