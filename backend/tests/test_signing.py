"""Signed versions: published signed, signed afterwards, and refused before unpickling when the signature
is missing, made by another key, or no longer matches; a refused version runs none of its code."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from mlstack.cli import main as mlstack
from mlstack.errors import ArtifactRejected
from mlstack.main import create_app
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.store.signing import Signer, verifier_for

from .conftest import example_row
from .servers import running_replica
from .test_store import flip_one_byte


class CreatesMarker:
    """What an attacker plants: unpickling it creates the marker file, proof that its code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def keygen(tmp_path: Path, name: str) -> tuple[Path, str]:
    """`mlstack keygen`: a key file and the public key line it prints for .env."""
    key = tmp_path / "keys" / f"{name}.key"
    assert mlstack(["keygen", "--key", str(key)]) == 0
    return key, (tmp_path / "keys" / f"{name}.pub").read_text().strip()


@pytest.fixture
def ours(tmp_path: Path) -> tuple[Path, str]:
    return keygen(tmp_path, "ours")


@pytest.fixture
def theirs(tmp_path: Path) -> tuple[Path, str]:
    return keygen(tmp_path, "theirs")


@pytest.fixture
def signed_store(store_dir: Path, ours: tuple[Path, str]) -> Path:
    """The trained store, published unsigned, then signed with `mlstack sign`."""
    assert mlstack(["sign", "--key", str(ours[0]), "--store-dir", str(store_dir)]) == 0
    return store_dir


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "artifact-code-ran"


def store_with_key(root: Path, public_key: str, signing_key: Path | None = None) -> ModelStore:
    signer = Signer.from_file(signing_key) if signing_key else None
    return ModelStore(root, signer=signer, verifier=verifier_for(public_key))


def plant(store: Path, marker: Path, version: str = "2", pad_to: int | None = None) -> Path:
    """A version 2 of churn whose pickle creates `marker`, with a manifest that matches it (a copy of
    version 1's with the pickle's size and sha256), as anyone who can write the store could make."""
    version_dir = store / "churn" / version
    version_dir.mkdir()
    joblib.dump(CreatesMarker(marker), version_dir / "model.joblib")
    if pad_to is not None:  # pickle stops at its STOP opcode: trailing bytes change only the checksum
        with (version_dir / "model.joblib").open("ab") as fh:
            fh.write(b"\0" * (pad_to - fh.tell()))
    data = (version_dir / "model.joblib").read_bytes()
    manifest = json.loads((store / "churn" / "1" / "manifest.json").read_text())
    manifest["version"] = version
    manifest["artifact"].update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    kept = [a for a in manifest["extra_artifacts"] if a["format"] != "onnx"]  # profile, explanation data
    for artifact in kept:
        shutil.copy(store / "churn" / "1" / artifact["file"], version_dir / artifact["file"])
    manifest["extra_artifacts"], manifest["onnx"] = kept, None
    (version_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return version_dir


def sign_with(store: Path, key: Path, *args: str) -> int:
    return mlstack(["sign", *args, "--key", str(key), "--store-dir", str(store)])


# -- keys and signing ---------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_replaces_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, public = keygen(tmp_path, "k")
    out = capsys.readouterr().out

    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert f"BACKEND_SIGNING_PUBLIC_KEY={public}" in out
    assert f"BACKEND_SIGNING_KEY_FILE={key}" in out
    before = key.read_bytes()
    assert mlstack(["keygen", "--key", str(key)]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert key.read_bytes() == before
    store = tmp_path / "store"
    assert mlstack(["keygen", "--key", str(store / "k.key"), "--store-dir", str(store)]) == 2
    assert "inside the model store" in capsys.readouterr().err


def test_mlstack_sign_signs_versions_published_before_keys_existed(
    store_dir: Path,
    ours: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BACKEND_SIGNING_PUBLIC_KEY", ours[1])
    assert mlstack(["verify", "--store-dir", str(store_dir)]) == 1
    assert "churn/1/model.sig: signature check failed: missing" in capsys.readouterr().out

    assert sign_with(store_dir, ours[0]) == 0
    assert "signed          churn/1" in capsys.readouterr().out
    assert sign_with(store_dir, ours[0], "churn") == 0
    assert "already signed  churn/1" in capsys.readouterr().out
    assert mlstack(["verify", "--store-dir", str(store_dir)]) == 0
    assert (store_dir / "churn" / "1" / "model.sig").stat().st_mode & 0o777 == 0o444
    assert not [p for p in (store_dir / "churn").iterdir() if p.name.startswith(".")]


def test_the_key_can_come_on_standard_input_as_into_a_container(
    store_dir: Path, ours: tuple[Path, str], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "mlstack.cli", "sign", "churn", "--key", "-"]
    command += ["--store-dir", str(store_dir)]
    done = subprocess.run(command, input=ours[0].read_bytes(), capture_output=True, cwd=tmp_path, timeout=120)

    assert done.returncode == 0, done.stderr
    store_with_key(store_dir, ours[1]).verify("churn", "1")


def test_sign_refuses_a_tampered_version_and_one_signed_by_another_key(
    store_dir: Path, ours: tuple[Path, str], theirs: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    flip_one_byte(store_dir / "fraud" / "1" / "model.joblib")
    assert sign_with(store_dir, theirs[0], "churn") == 0

    assert sign_with(store_dir, ours[0], "fraud") == 1
    assert "NOT SIGNED      fraud/1: fraud/1/model.joblib: sha256 check failed" in capsys.readouterr().out
    assert not (store_dir / "fraud" / "1" / "model.sig").exists()
    assert sign_with(store_dir, ours[0], "churn", "1") == 1
    assert "signed by another key" in capsys.readouterr().out
    assert sign_with(store_dir, ours[0], "churn", "1", "--replace") == 0  # a key rotation
    store_with_key(store_dir, ours[1]).verify("churn", "1")


def test_a_version_published_with_the_key_is_signed_and_serves(
    signed_store: Path, ours: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_SIGNING_KEY_FILE", str(ours[0]))
    monkeypatch.setenv("BACKEND_SIGNING_PUBLIC_KEY", ours[1])
    train = ["train", "--demo", "churn", "--rows", "800", "--seed", "5", "--search", "fast", "--no-onnx"]
    assert mlstack([*train, "--no-promote", "--store-dir", str(signed_store)]) == 0

    assert (signed_store / "churn" / "2" / "model.sig").stat().st_mode & 0o777 == 0o444
    settings = Settings(store_dir=signed_store, redis_url=None, signing_public_key=ours[1])
    with TestClient(create_app(settings)) as client:
        row = example_row(client.get("/v1/models/churn").json())
        pinned = client.post("/v1/models/churn/versions/2:predict", json={"instances": [row]})
        current = client.post("/v1/models/churn:predict", json={"instances": [row]})
    assert pinned.status_code == 200, pinned.text
    assert (current.status_code, current.headers["X-Model-Version"]) == (200, "1")


def test_publishing_with_a_key_that_does_not_match_the_public_key_is_refused(
    store_dir: Path,
    ours: tuple[Path, str],
    theirs: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BACKEND_SIGNING_KEY_FILE", str(theirs[0]))
    monkeypatch.setenv("BACKEND_SIGNING_PUBLIC_KEY", ours[1])

    assert mlstack(["train", "--demo", "churn", "--rows", "800", "--store-dir", str(store_dir)]) == 2
    assert "does not match BACKEND_SIGNING_PUBLIC_KEY" in capsys.readouterr().err
    assert ModelStore(store_dir).versions("churn") == ["1"]


def test_signed_versions_load_without_a_key_and_a_malformed_key_stops_the_replica(signed_store: Path) -> None:
    ModelStore(signed_store).load("churn", "1")  # no key configured: signatures are not asked for

    with pytest.raises(ValidationError, match="signing_public_key"):
        Settings(signing_public_key="not-a-key")


# -- refusals: nothing of a refused version is unpickled ----------------------------------------------


def test_the_planted_pickle_runs_its_code_when_no_signature_is_asked_for(
    signed_store: Path, marker: Path
) -> None:
    """The control: without a public key the planted version passes every checksum and runs."""
    plant(signed_store, marker)

    ModelStore(signed_store).load("churn", "2")

    assert marker.exists()


def _unsigned(store: Path, marker: Path, keys: dict[str, Path]) -> None:
    plant(store, marker)


def _signed_by_another_key(store: Path, marker: Path, keys: dict[str, Path]) -> None:
    plant(store, marker)
    assert sign_with(store, keys["theirs"], "churn", "2") == 0


def _model_swapped(store: Path, marker: Path, keys: dict[str, Path]) -> None:
    """A signed version whose pickle is replaced by one of the same size: a changed model."""
    assert sign_with(store, keys["ours"]) == 0
    model = store / "churn" / "1" / "model.joblib"
    size = model.stat().st_size
    model.unlink()
    planted = plant(store, marker, version="9", pad_to=size)
    (planted / "model.joblib").rename(model)
    shutil.rmtree(planted)


def _manifest_rewritten(store: Path, marker: Path, keys: dict[str, Path]) -> None:
    """What a store writer does to pass the checksums: new pickle, manifest updated to match it."""
    assert sign_with(store, keys["ours"]) == 0
    version = store / "churn" / "1"
    planted = plant(store, marker, version="9")
    manifest = json.loads((planted / "manifest.json").read_text())
    manifest["version"] = "1"
    for name in ("model.joblib", "manifest.json", "model.onnx"):
        (version / name).unlink(missing_ok=True)
    (planted / "model.joblib").rename(version / "model.joblib")
    (version / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(planted)


def _manifest_byte_flipped(store: Path, marker: Path, keys: dict[str, Path]) -> None:
    """One digit of a signed manifest changed: still valid, every other check would pass it."""
    assert sign_with(store, keys["ours"]) == 0
    path = store / "churn" / "1" / "manifest.json"
    path.chmod(0o644)
    text = path.read_text()
    changed = text.replace('"rows": 800', '"rows": 900', 1)
    assert changed != text
    path.write_text(changed)
    ModelStore(store).verify("churn", "1")  # without a key, nothing notices


TAMPERINGS = {
    "unsigned": (_unsigned, "2", "churn/2/model.sig", "missing"),
    "signed by another key": (_signed_by_another_key, "2", "churn/2/model.sig", "made by key"),
    "a byte of the model changed": (_model_swapped, "1", "churn/1/model.joblib", None),
    "manifest rewritten to match a new model": (_manifest_rewritten, "1", "churn/1/manifest.json", "changed"),
    "a byte of the manifest changed": (_manifest_byte_flipped, "1", "churn/1/manifest.json", "changed"),
}


@pytest.mark.parametrize("case", TAMPERINGS, ids=list(TAMPERINGS))
def test_a_refused_version_is_named_with_its_check_and_runs_no_code(
    store_dir: Path, ours: tuple[Path, str], theirs: tuple[Path, str], marker: Path, case: str
) -> None:
    tamper, version, file, detail = TAMPERINGS[case]
    tamper(store_dir, marker, {"ours": ours[0], "theirs": theirs[0]})

    with pytest.raises(ArtifactRejected) as refused:
        store_with_key(store_dir, ours[1]).load("churn", version)

    assert refused.value.file == file
    assert refused.value.check == ("sha256" if detail is None else "signature")
    assert detail is None or detail in str(refused.value)
    assert not marker.exists()


def test_a_file_the_signed_manifest_does_not_list_is_neither_signed_nor_accepted(
    store_dir: Path, ours: tuple[Path, str]
) -> None:
    version = store_dir / "churn" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    kept = [a for a in manifest["extra_artifacts"] if a["format"] != "onnx"]  # the profile stays listed
    manifest["extra_artifacts"], manifest["onnx"] = kept, None
    (version / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (version / "model.onnx").write_bytes(b"an ONNX file the manifest does not list")

    assert sign_with(store_dir, ours[0], "churn") == 1
    (version / "model.onnx").unlink()
    assert sign_with(store_dir, ours[0], "churn") == 0
    (version / "model.onnx").write_bytes(b"an ONNX file the manifest does not list")

    with pytest.raises(ArtifactRejected, match=r"churn/1/model\.onnx: signature check failed: not listed"):
        store_with_key(store_dir, ours[1]).verify("churn", "1")


# -- the replica keeps serving what it had --------------------------------------------------------------


@pytest.fixture
def guarded(signed_store: Path, ours: tuple[Path, str]) -> Iterator[TestClient]:
    settings = Settings(store_dir=signed_store, redis_url=None, store_poll_s=0, signing_public_key=ours[1])
    with TestClient(create_app(settings)) as client:
        yield client


def test_promote_or_canary_to_a_badly_signed_version_answers_409_and_the_old_version_serves(
    guarded: TestClient, signed_store: Path, theirs: tuple[Path, str], marker: Path
) -> None:
    row = example_row(guarded.get("/v1/models/churn").json())
    _signed_by_another_key(signed_store, marker, {"theirs": theirs[0]})

    promote = guarded.put("/v1/models/churn/current", json={"version": "2", "force": True})
    canary = guarded.put("/v1/models/churn/canary", json={"version": "2", "percent": 50})
    pinned = guarded.post("/v1/models/churn/versions/2:predict", json={"instances": [row]})
    answer = guarded.post("/v1/models/churn:predict", json={"instances": [row]})

    assert promote.status_code == 409
    assert promote.json()["error"].startswith("churn/2/model.sig: signature check failed: made by key")
    assert canary.status_code == 409
    assert pinned.status_code == 409
    assert (answer.status_code, answer.headers["X-Model-Version"]) == (200, "1")
    assert not marker.exists()


def test_a_reload_onto_an_unsigned_version_keeps_the_old_one(
    guarded: TestClient, signed_store: Path, marker: Path
) -> None:
    row = example_row(guarded.get("/v1/models/churn").json())
    plant(signed_store, marker)
    ModelStore(signed_store).set_current("churn", "2")  # CURRENT moved behind the replicas' back

    reload = guarded.post("/v1/models/churn:reload")
    answer = guarded.post("/v1/models/churn:predict", json={"instances": [row]})

    assert reload.status_code == 409
    assert "churn/2/model.sig: signature check failed: missing" in reload.json()["error"]
    assert (answer.status_code, answer.headers["X-Model-Version"]) == (200, "1")
    assert not marker.exists()


def test_a_replica_process_given_the_key_in_its_environment_loads_nothing_unsigned(
    signed_store: Path, ours: tuple[Path, str], marker: Path, tmp_path: Path
) -> None:
    row = example_row(ModelStore(signed_store).manifest("churn", "1").public())
    plant(signed_store, marker)
    ModelStore(signed_store).set_current("churn", "2")
    log = tmp_path / "replica.log"

    with running_replica(signed_store, log, signing_public_key=ours[1]) as url:
        churn = httpx.post(f"{url}/v1/models/churn:predict", json={"instances": [row]})
        fraud = httpx.get(f"{url}/v2/models/fraud/ready")

    assert churn.status_code == 503
    assert "churn/2/model.sig: signature check failed: missing" in churn.json()["error"]
    assert fraud.status_code == 200
    assert "churn/2/model.sig: signature check failed" in log.read_text()
    assert not marker.exists()


# -- atomic: a replica sees a version unsigned or signed, never half-signed -----------------------------

AUDITED = r"""
import json, os, sys
root, out, argv = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3:]
events, busy = [], [False]
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def shown(path):
    return os.path.relpath(os.path.realpath(os.fsdecode(path)), root)

def hook(event, args):
    if busy[0] or event not in ("open", "os.link", "os.rename"):
        return
    busy[0] = True  # the hook's own listdir and stat raise events too
    try:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and args[2] & WRITES:
            events.append(["write", shown(args[0])])
        elif event != "open":
            src = args[0]
            state = sorted(os.listdir(src)) if os.path.isdir(src) else os.path.getsize(src)
            events.append([event, shown(src), shown(args[1]), state])
    finally:
        busy[0] = False

sys.addaudithook(hook)
from mlstack.cli import main
code = main(argv)
json.dump({"code": code, "events": [e for e in events if not e[1].startswith("..")]}, open(out, "w"))
"""


def audited(store: Path, tmp_path: Path, *argv: str, **env: str) -> list[list[object]]:
    """Run `mlstack ARGV` in a child process, recording every file it opens for writing, links or renames
    under the store (Python's audit hooks: the real code, nothing patched)."""
    out = tmp_path / "events.json"
    environment = {**os.environ, **{f"BACKEND_{k.upper()}": v for k, v in env.items()}}
    command = [sys.executable, "-c", AUDITED, str(store), str(out), *argv, "--store-dir", str(store)]
    subprocess.run(command, env=environment, cwd=tmp_path, check=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["code"] == 0
    return result["events"]  # type: ignore[no-any-return]  # parsed JSON or YAML is Any


def test_mlstack_sign_links_a_complete_signature_into_the_version_in_one_step(
    store_dir: Path, ours: tuple[Path, str], tmp_path: Path
) -> None:
    events = audited(store_dir, tmp_path, "sign", "churn", "--key", str(ours[0]))

    writes = [e[1] for e in events if e[0] == "write"]
    links = [e for e in events if e[0] != "write"]
    signature = store_dir / "churn" / "1" / "model.sig"
    assert writes
    assert all(re.fullmatch(r"churn/\.sign-[^/]+", str(w)) for w in writes)  # beside 1/, never inside it
    assert links == [["os.link", writes[0], "churn/1/model.sig", signature.stat().st_size]]
    store_with_key(store_dir, ours[1]).verify("churn", "1")


def test_publish_signs_in_staging_and_the_version_appears_signed_in_one_rename(
    store_dir: Path, ours: tuple[Path, str], tmp_path: Path
) -> None:
    train = ["train", "--demo", "churn", "--rows", "800", "--search", "fast", "--no-onnx", "--no-promote"]
    events = audited(store_dir, tmp_path, *train, signing_key_file=str(ours[0]))

    writes = [str(e[1]) for e in events if e[0] == "write"]
    renames = [e for e in events if e[0] != "write"]
    published = sorted(p.name for p in (store_dir / "churn" / "2").iterdir())
    assert "model.sig" in published
    assert all(re.fullmatch(r"churn/\.staging-[^/]+/[a-z.]+", w) for w in writes)
    assert {w.rsplit("/", 1)[1] for w in writes} == set(published)
    assert len(renames) == 1
    assert renames[0][0] == "os.rename"
    assert re.fullmatch(r"churn/\.staging-[^/]+", str(renames[0][1]))
    assert renames[0][2:] == ["churn/2", published]
    store_with_key(store_dir, ours[1]).verify("churn", "2")
