"""The model store on disk: the only writer (publish, set_current) and the only reader (verify, load).

Layout (docs/CONTRACT.md): <root>/<model>/<version>/{model.joblib, manifest.json, model.onnx?} and
<root>/<model>/CURRENT. Unpickling runs code, so `load` unpickles nothing before `verify` has checked names,
files, sizes, the sha256 and the library versions. An ONNX export is read by `read_artifact`, which hashes
the very bytes it returns.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy
import pandas
import sklearn
from pydantic import ValidationError
from sklearn.exceptions import InconsistentVersionWarning

from mlstack.errors import ArtifactRejected, ModelNotFound
from mlstack.store.manifest import MODEL_NAME, VERSION_NAME, Artifact, Manifest, RuntimeVersions

ARTIFACT_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "CURRENT"
ALLOWED_FILES = frozenset({ARTIFACT_FILE, MANIFEST_FILE, ONNX_FILE, "model.sig"})
MAX_MANIFEST_BYTES = 1 << 20


def runtime_versions() -> RuntimeVersions:
    """The versions of this process's libraries, as a manifest records them."""
    return RuntimeVersions(
        python=platform.python_version(),
        sklearn=sklearn.__version__,
        numpy=numpy.__version__,
        joblib=joblib.__version__,
        pandas=pandas.__version__,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


class ModelStore:
    """A model store rooted at one directory."""

    def __init__(self, root: Path, max_artifact_bytes: int = 512 << 20) -> None:
        self.root = Path(root)
        self.max_artifact_bytes = max_artifact_bytes

    # -- reading ---------------------------------------------------------------------------------

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and MODEL_NAME.match(p.name))

    def versions(self, model: str) -> list[str]:
        model_dir = self._model_dir(model)
        names = [p.name for p in model_dir.iterdir() if p.is_dir() and VERSION_NAME.match(p.name)]
        return sorted(names, key=int)

    def current(self, model: str) -> str | None:
        """The version CURRENT names, or None when the model has no current version yet."""
        try:
            version = (self._model_dir(model) / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return version if VERSION_NAME.match(version) else None

    def manifest(self, model: str, version: str) -> Manifest:
        """The version's manifest, parsed strictly (no artifact check)."""
        path = self._version_dir(model, version) / MANIFEST_FILE
        self._check_regular_file(path)
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactRejected(self._shown(path), "size", "manifest larger than 1 MiB")
        try:
            manifest = Manifest.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise ArtifactRejected(self._shown(path), "schema", _first_error(exc)) from None
        if (manifest.model, manifest.version) != (model, version):
            raise ArtifactRejected(self._shown(path), "identity", "names another model or version")
        return manifest

    def verify(self, model: str, version: str, extras: bool = True) -> Manifest:
        """Every check that must pass before the artifact is unpickled; raises ArtifactRejected.

        `extras=False` leaves the further artifacts (the ONNX export) to `read_artifact`: a replica serves
        the joblib pipeline when only its ONNX file is broken.
        """
        version_dir = self._version_dir(model, version)
        for entry in version_dir.iterdir():
            if entry.name not in ALLOWED_FILES:
                raise ArtifactRejected(self._shown(entry), "allow-list", "file not allowed in a version")
        manifest = self.manifest(model, version)
        for artifact in (manifest.artifact, *(manifest.extra_artifacts if extras else ())):
            self._verify_artifact(version_dir, artifact)
        self._verify_versions(version_dir / manifest.artifact.file, manifest.runtime)
        return manifest

    def load(self, model: str, version: str) -> tuple[Manifest, Any]:
        """Verify, then unpickle the pipeline. Library version warnings are errors here."""
        manifest = self.verify(model, version, extras=False)
        path = self._version_dir(model, version) / manifest.artifact.file
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                pipeline = joblib.load(path)
            except InconsistentVersionWarning as exc:
                raise ArtifactRejected(self._shown(path), "sklearn version", str(exc)) from None
        return manifest, pipeline

    def read_artifact(self, model: str, version: str, artifact: Artifact) -> bytes:
        """A further artifact's bytes, once its name, size and the sha256 of exactly these bytes check out."""
        path = self._version_dir(model, version) / artifact.file
        self._check_name_and_size(path, artifact)
        data = path.read_bytes()
        self._check_sha256(path, hashlib.sha256(data).hexdigest(), artifact, len(data))
        return data

    # -- writing ---------------------------------------------------------------------------------

    def publish(
        self,
        model: str,
        pipeline: Any,
        describe: Callable[[str, Artifact], Manifest],
        extra_files: Mapping[str, bytes] | None = None,
    ) -> Manifest:
        """Write a new immutable version: a temp dir, fsync, then an atomic rename. CURRENT is untouched.

        `describe(version, artifact)` builds the manifest once the version number and checksum are known.
        """
        if not MODEL_NAME.match(model):
            raise ValueError(f"model name {model!r} must match {MODEL_NAME.pattern}")
        model_dir = self.root / model
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
        try:
            joblib.dump(pipeline, staging / ARTIFACT_FILE)
            for name, data in (extra_files or {}).items():
                (staging / name).write_bytes(data)
            return self._commit(model_dir, staging, describe)
        finally:
            if staging.exists():
                _remove_tree(staging)

    def set_current(self, model: str, version: str) -> None:
        """Point CURRENT at a version, atomically (temp file + os.replace)."""
        self._version_dir(model, version)
        target = self._model_dir(model) / CURRENT_FILE
        fd, tmp = tempfile.mkstemp(prefix=".CURRENT-", dir=target.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{version}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    # -- internals -------------------------------------------------------------------------------

    def _commit(
        self, model_dir: Path, staging: Path, describe: Callable[[str, Artifact], Manifest]
    ) -> Manifest:
        artifact_path = staging / ARTIFACT_FILE
        artifact = Artifact(
            file=ARTIFACT_FILE, sha256=file_sha256(artifact_path), size_bytes=artifact_path.stat().st_size
        )
        for _ in range(100):  # another publisher may take a number first; rename refuses a non-empty target
            version = str(max((int(v) for v in self.versions(model_dir.name)), default=0) + 1)
            manifest = describe(version, artifact)
            (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
            for path in staging.iterdir():
                path.chmod(0o444)
                _fsync_file(path)
            try:
                staging.rename(model_dir / version)
            except OSError:
                continue
            _fsync_dir(model_dir)
            return manifest
        raise RuntimeError(f"could not allocate a version number under {model_dir.name}")

    def _model_dir(self, model: str) -> Path:
        if not MODEL_NAME.match(model):
            raise ModelNotFound(model)
        path = self.root / model
        if path.is_symlink() or not path.is_dir():
            raise ModelNotFound(model)
        return path

    def _version_dir(self, model: str, version: str) -> Path:
        if not VERSION_NAME.match(version):
            raise ModelNotFound(model, version)
        path = self._model_dir(model) / version
        if path.is_symlink() or not path.is_dir():
            raise ModelNotFound(model, version)
        return path

    def _check_regular_file(self, path: Path) -> None:
        if path.is_symlink():
            raise ArtifactRejected(self._shown(path), "symlink", "symbolic links are refused")
        if not path.is_file():
            raise ArtifactRejected(self._shown(path), "missing", "file not found")

    def _verify_artifact(self, version_dir: Path, artifact: Artifact) -> None:
        path = version_dir / artifact.file
        self._check_name_and_size(path, artifact)
        self._check_sha256(path, file_sha256(path), artifact, path.stat().st_size)

    def _check_name_and_size(self, path: Path, artifact: Artifact) -> None:
        if artifact.file not in ALLOWED_FILES or artifact.file == MANIFEST_FILE:
            raise ArtifactRejected(self._shown(path), "allow-list", "artifact name not allowed")
        self._check_regular_file(path)
        size = path.stat().st_size
        if size != artifact.size_bytes or size > self.max_artifact_bytes:
            raise ArtifactRejected(
                self._shown(path), "size", f"{size} bytes, manifest says {artifact.size_bytes}"
            )

    def _check_sha256(self, path: Path, actual: str, artifact: Artifact, size: int) -> None:
        if size != artifact.size_bytes:
            raise ArtifactRejected(
                self._shown(path), "size", f"{size} bytes, manifest says {artifact.size_bytes}"
            )
        if not hmac.compare_digest(actual, artifact.sha256):
            raise ArtifactRejected(
                self._shown(path), "sha256", f"expected {artifact.sha256[:12]}…, got {actual[:12]}…"
            )

    def _verify_versions(self, path: Path, recorded: RuntimeVersions) -> None:
        if _minor(recorded.sklearn) != _minor(sklearn.__version__):
            raise ArtifactRejected(
                self._shown(path),
                "sklearn version",
                f"written by scikit-learn {recorded.sklearn}, this replica has {sklearn.__version__}",
            )
        if recorded.numpy.split(".")[0] != numpy.__version__.split(".")[0]:
            raise ArtifactRejected(
                self._shown(path),
                "numpy version",
                f"written by numpy {recorded.numpy}, this replica has {numpy.__version__}",
            )

    def _shown(self, path: Path) -> str:
        """A path relative to the store root: messages never carry absolute paths."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name


def build_manifest(**fields: Any) -> Manifest:
    """A manifest stamped with this process's library versions and the current time."""
    fields.setdefault("created_at", datetime.now(UTC))
    fields.setdefault("runtime", runtime_versions())
    return Manifest(**fields)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if sys.platform != "win32":
        _fsync_file(path)


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.chmod(0o644)
        child.unlink()
    path.rmdir()
